"""Where the reward service's r_theta (eq. 7) comes from: nothing, the tiny model, or a directory.

Tests and the local run use the tiny model built in code from a seed with the built-in
character tokenizer. A cluster run points at a directory written by
``VisionLanguageRewardModel.save_pretrained`` (``backbone/`` and ``value_head.safetensors``),
local or in the object store (``s3://bucket/models/vl-reward/``, copied to a local cache
first), with its tokenizer in ``tokenizer/`` or named in the settings. Without a model the
scorer gives r_theta = 0 and says so in each item's status.
"""

from __future__ import annotations

import torch
from hybridrl_services.reward.settings import NO_MODEL, TINY_MODEL, RewardModelSettings

from hybridrl.config.object_store import ObjectStoreSettings
from hybridrl.models.tokenizer import build_tokenizer
from hybridrl.rewards.reward_model import (
    RewardModelScorer,
    RewardScoringConfig,
    VisionLanguageRewardModel,
)
from hybridrl.rollout.policy_source import load_tokenizer, local_model_directory

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_reward_model(
    settings: RewardModelSettings, object_store: ObjectStoreSettings | None = None
) -> RewardModelScorer | None:
    """The reward model ``settings.source`` names, in eval mode, or None for ``"none"``."""
    if settings.source == NO_MODEL:
        return None
    if settings.source == TINY_MODEL:
        return tiny_reward_model(settings.tiny_seed, settings.scoring)
    directory = local_model_directory(settings.source, settings.cache_dir, object_store)
    if not directory.is_dir():
        raise ValueError(f"reward model directory {directory} does not exist")
    tokenizer = load_tokenizer(settings.tokenizer, directory)
    dtype = _DTYPES[settings.dtype] if settings.dtype is not None else None
    model = VisionLanguageRewardModel.from_pretrained(directory, dtype=dtype).to(settings.device)
    return RewardModelScorer(model, tokenizer, bounded_by_context(settings.scoring, model))


def tiny_reward_model(
    seed: int = 0, config: RewardScoringConfig | None = None
) -> RewardModelScorer:
    """The CPU-sized reward model (``VisionLanguageRewardModel.tiny``) initialised from
    ``seed``, with the built-in character tokenizer."""
    tokenizer = build_tokenizer()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = VisionLanguageRewardModel.tiny(tokenizer)
    return RewardModelScorer(model, tokenizer, bounded_by_context(config, model))


def bounded_by_context(
    config: RewardScoringConfig | None, model: VisionLanguageRewardModel
) -> RewardScoringConfig:
    """``config`` with ``max_length`` set to the model's context when it has none: past its
    position embeddings a model fails obscurely, while a too-long item is a clear ValueError
    that costs only that item its r_theta."""
    chosen = config if config is not None else RewardScoringConfig()
    context = model.backbone.config.language_config.get("max_position_embeddings")
    if chosen.max_length is not None or not isinstance(context, int):
        return chosen
    return chosen.model_copy(update={"max_length": context})
