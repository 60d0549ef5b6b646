"""Rollouts of the synchronous trainer: sample a group per prompt, score it with eq. 7.

Where it sits: the first two stages of the loop that the platform runs as the rollout and
reward services, here as plain calls on a ``GenerationEngine``: each synthetic prompt gets
``group_size`` responses, each response r_rule + r_format (the synthetic task has no reward
model, so r_theta is 0), and the group leaves as ``ScoredResponse`` records with the ids,
policy version and payload the SSB and the learner steps expect.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from hybridrl.algo.samples import ScoredResponse, group_id_for, sample_id_for
from hybridrl.config.rewards import FormatRewardConfig, HybridRewardWeights
from hybridrl.engines.base import GenerationEngine, GenerationResult, SamplingOptions
from hybridrl.learner.evaluation import task_request
from hybridrl.models.vlm_config import VisionLanguageModelConfig
from hybridrl.rewards.format import format_reward
from hybridrl.rewards.hybrid import RewardParts
from hybridrl.rewards.rule import rule_reward
from hybridrl.tasks.visual_reasoning import VisualPrompt

__all__ = ["Group", "RolloutPayload", "sample_groups", "score_group", "tiny_model_config"]


@dataclass(frozen=True, eq=False)
class RolloutPayload:
    """What a scored response carries (a ``collate.ResponseTokens``): tokens, pi_old, image,
    text and the reward parts of eq. 7."""

    prompt_token_ids: list[int]
    response_token_ids: list[int]
    behaviour_logprobs: list[float]
    pixel_values: torch.Tensor | None
    text: str
    reward: RewardParts


Group = list[ScoredResponse[RolloutPayload]]


def tiny_model_config(
    tokenizer: PreTrainedTokenizerBase, language_initializer_range: float
) -> VisionLanguageModelConfig:
    """``VisionLanguageModelConfig.tiny`` with the language model initialised at the given
    standard deviation (see ``LearnerConfig.language_initializer_range``)."""
    tiny = VisionLanguageModelConfig.tiny(tokenizer)  # type: ignore[arg-type]
    language_config = {**tiny.language_config, "initializer_range": language_initializer_range}
    return tiny.model_copy(update={"language_config": language_config})


def score_group(
    prompt: VisualPrompt,
    pixel_values: torch.Tensor | None,
    result: GenerationResult,
    weights: HybridRewardWeights,
    format_config: FormatRewardConfig | None = None,
) -> Group:
    """The ``ScoredResponse`` of every completion of ``result``: reward r_rule + r_format with
    ``weights`` (eq. 7, r_theta = 0), ids from the prompt id, the result's policy version and
    the completion's index."""
    version = result.policy_version
    group: Group = []
    for index, completion in enumerate(result.completions):
        parts = RewardParts.combine(
            rule_reward(completion.text, prompt.answer),
            0.0,
            format_reward(completion.text, config=format_config),
            weights=weights,
        )
        payload = RolloutPayload(
            list(result.prompt_token_ids),
            list(completion.token_ids),
            list(completion.logprobs),
            pixel_values,
            completion.text,
            parts,
        )
        group.append(
            ScoredResponse(
                sample_id=sample_id_for(prompt.prompt_id, version, index),
                group_id=group_id_for(prompt.prompt_id, version),
                prompt_id=prompt.prompt_id,
                policy_version=version,
                reward=parts.total,
                payload=payload,
            )
        )
    return group


def sample_groups(
    engine: GenerationEngine,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[VisualPrompt],
    *,
    num_image_tokens: int,
    sampling: SamplingOptions,
    seed: Sequence[int],
    weights: HybridRewardWeights,
    format_config: FormatRewardConfig | None = None,
) -> list[Group]:
    """One scored group of ``sampling.n`` responses per prompt, in prompt order.

    ``seed`` (a few integers, e.g. run seed, policy version, step) seeds each prompt's
    sampling, so the same call on the same weights gives the same groups.
    """
    if not prompts:
        raise ValueError("no prompts to sample")
    states = np.random.SeedSequence(list(seed)).generate_state(len(prompts), dtype=np.uint64)
    requests = [
        task_request(
            prompt,
            tokenizer,
            num_image_tokens,
            SamplingOptions(
                n=sampling.n,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                max_new_tokens=sampling.max_new_tokens,
                seed=int(state >> np.uint64(1)),  # the engine takes seeds below 2**63
            ),
        )
        for prompt, state in zip(prompts, states, strict=True)
    ]
    results = engine.generate(requests)
    return [
        score_group(prompt, request.pixel_values, result, weights, format_config)
        for prompt, request, result in zip(prompts, requests, results, strict=True)
    ]
