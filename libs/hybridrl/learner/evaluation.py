"""Held-out evaluation of the policy on the synthetic visual task: greedy answers, rule reward.

Where it sits: the learner evaluates before the RL phases (right after the warm-up), every few
steps if asked, and at the end; the gain between the first and the last number is what the RL
phases achieved. Decoding is greedy (temperature 0), so an evaluation is deterministic for given
weights; a response counts as correct when ``rule_reward`` (r_rule of eq. 7) gives 1.0.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from hybridrl.config.rewards import FormatRewardConfig
from hybridrl.engines.base import GenerationEngine, GenerationRequest, SamplingOptions
from hybridrl.models.prompting import encode_prompt
from hybridrl.rewards.format import format_reward
from hybridrl.rewards.rule import rule_reward
from hybridrl.tasks.visual_reasoning import VisualPrompt

__all__ = ["EvalResult", "evaluate", "task_request"]


@dataclass(frozen=True)
class EvalResult:
    """Scores of one evaluation.

    Attributes:
        accuracy: share of prompts whose greedy answer the rule reward accepts.
        accuracy_by_kind: the same per task kind, for the kinds present.
        format_rate: share of responses that follow the R1 template (``format_reward``).
        mean_length: mean response length in tokens, eos included.
        prompts: number of prompts scored.
        policy_version: the engine's policy version during the evaluation.
    """

    accuracy: float
    accuracy_by_kind: dict[str, float]
    format_rate: float
    mean_length: float
    prompts: int
    policy_version: int


def task_request(
    prompt: VisualPrompt,
    tokenizer: PreTrainedTokenizerBase,
    num_image_tokens: int,
    sampling: SamplingOptions,
) -> GenerationRequest:
    """The engine request for one synthetic prompt: its question laid out with its image."""
    return GenerationRequest(
        request_id=prompt.prompt_id,
        prompt_token_ids=encode_prompt(tokenizer, prompt.question, True, num_image_tokens),
        pixel_values=torch.from_numpy(prompt.pixel_values()),
        sampling=sampling,
    )


def evaluate(
    engine: GenerationEngine,
    prompts: Sequence[VisualPrompt],
    tokenizer: PreTrainedTokenizerBase,
    num_image_tokens: int,
    *,
    max_new_tokens: int,
    format_config: FormatRewardConfig | None = None,
) -> EvalResult:
    """Greedy-decode one response per prompt with ``engine`` and score it.

    Raises:
        ValueError: no prompts, or a bad ``max_new_tokens`` (from ``SamplingOptions``).
    """
    if not prompts:
        raise ValueError("no prompts to evaluate")
    greedy = SamplingOptions(n=1, temperature=0.0, max_new_tokens=max_new_tokens, seed=0)
    requests = [task_request(p, tokenizer, num_image_tokens, greedy) for p in prompts]
    results = engine.generate(requests)
    correct_by_kind: dict[str, list[float]] = defaultdict(list)
    formatted = 0.0
    lengths = 0
    for prompt, result in zip(prompts, results, strict=True):
        completion = result.completions[0]
        correct_by_kind[prompt.kind].append(rule_reward(completion.text, prompt.answer))
        formatted += format_reward(completion.text, config=format_config)
        lengths += len(completion.token_ids)
    scores = [score for kind_scores in correct_by_kind.values() for score in kind_scores]
    return EvalResult(
        accuracy=sum(scores) / len(scores),
        accuracy_by_kind={
            kind: sum(values) / len(values) for kind, values in sorted(correct_by_kind.items())
        },
        format_rate=formatted / len(prompts),
        mean_length=lengths / len(prompts),
        prompts=len(prompts),
        policy_version=results[0].policy_version,
    )
