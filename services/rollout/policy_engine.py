"""Builds the rollout worker's engine from its settings: which model, which engine, threads."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from hybridrl_services.rollout.settings import TINY_MODEL, RolloutSettings
from transformers import PreTrainedTokenizerBase

from hybridrl.engines.base import GenerationEngine
from hybridrl.engines.cpu import TransformersEngine
from hybridrl.models.vlm_config import VisionLanguageModelConfig
from hybridrl.rollout.policy_source import (
    LoadedPolicy,
    load_tokenizer,
    local_model_directory,
    policy_config_from_directory,
    policy_from_directory,
    tiny_policy,
)

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True, eq=False)
class PolicyEngine:
    """The engine and what lays out prompts for its policy."""

    engine: GenerationEngine
    tokenizer: PreTrainedTokenizerBase
    config: VisionLanguageModelConfig


def _loaded_policy(settings: RolloutSettings) -> LoadedPolicy:
    source = settings.model
    if source.source == TINY_MODEL:
        return tiny_policy(source.tiny_seed)
    directory = local_model_directory(source.source, source.cache_dir, settings.object_store)
    dtype = None if source.dtype is None else _DTYPES[source.dtype]
    return policy_from_directory(directory, source.tokenizer, dtype)


def _vllm_engine(settings: RolloutSettings) -> PolicyEngine:
    from hybridrl.engines.vllm_engine import VLLMEngine  # the optional `vllm` extra

    source = settings.model
    if source.source == TINY_MODEL:
        tiny = tiny_policy(source.tiny_seed)
        tokenizer, config = tiny.tokenizer, tiny.config
    else:
        directory = local_model_directory(source.source, source.cache_dir, settings.object_store)
        tokenizer = load_tokenizer(source.tokenizer, directory)
        config = policy_config_from_directory(directory)
    assert settings.engine.vllm_model_path is not None  # checked by EngineSettings
    engine = VLLMEngine(settings.engine.vllm_model_path, tokenizer, **settings.engine.vllm_options)
    return PolicyEngine(engine, tokenizer, config)


def build_policy_engine(settings: RolloutSettings) -> PolicyEngine:
    """Set torch's threads, load the policy, and wrap it in the configured engine."""
    torch.set_num_threads(settings.engine.torch_threads)
    if settings.engine.kind == "vllm":
        return _vllm_engine(settings)
    loaded = _loaded_policy(settings)
    engine = TransformersEngine(
        loaded.model,
        loaded.tokenizer,
        max_batch_size=settings.engine.max_batch_size,
        device=settings.engine.device,
        weight_update_mode=settings.engine.weight_update_mode,
        seed=settings.engine.seed,
    )
    return PolicyEngine(engine, loaded.tokenizer, loaded.config)
