"""Offline prompt pre-filter: the SSB applied to an offline rollout pass (paper section 3.3.2).

The paper reports that "incorporating SSB into the rollout of offline inference time in
advance, effectively creating a filtered prompt pool" improved training efficiency by over 10%
early on. Before training, each prompt is rolled out N times with the initial policy and scored;
a prompt whose N rewards are all equal yields zero advantage for every response under eq. (6)
and so no GRPO gradient. Such prompts are dropped from the pool.

Criterion: keep a prompt when the population standard deviation of its rewards (the denominator
of eq. 6) exceeds ``tolerance``. A prompt with a single reward has no variance and is dropped.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PromptFilterResult:
    """Prompts kept and dropped, each in the order they were given."""

    kept: list[str]
    dropped: list[str]

    @property
    def kept_fraction(self) -> float:
        """Share of prompts kept."""
        return len(self.kept) / (len(self.kept) + len(self.dropped))

    @property
    def dropped_fraction(self) -> float:
        """Share of prompts dropped (the zero-advantage share of the offline pass)."""
        return len(self.dropped) / (len(self.kept) + len(self.dropped))


def reward_std(rewards: Sequence[float]) -> float:
    """Population standard deviation of one group's rewards: the denominator of eq. (6)."""
    if len(rewards) == 0:
        raise ValueError("a reward group must not be empty")
    if not all(math.isfinite(r) for r in rewards):
        raise ValueError("rewards must be finite (got NaN or inf)")
    mean = math.fsum(rewards) / len(rewards)
    return math.sqrt(math.fsum((r - mean) ** 2 for r in rewards) / len(rewards))


def filter_prompts(
    rewards_by_prompt: Mapping[str, Sequence[float]], tolerance: float = 1e-6
) -> PromptFilterResult:
    """Keep the prompts whose offline rewards vary, so that GRPO has advantage to learn from.

    Args:
        rewards_by_prompt: Prompt id -> rewards of its N offline responses (N may differ
            between prompts).
        tolerance: A prompt is kept when its reward standard deviation is > tolerance (>= 0).

    Raises:
        ValueError: no prompts, an empty group, a non-finite reward or a negative tolerance.
    """
    if not tolerance >= 0.0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    if not rewards_by_prompt:
        raise ValueError("rewards_by_prompt must hold at least one prompt")
    kept: list[str] = []
    dropped: list[str] = []
    for prompt_id, rewards in rewards_by_prompt.items():
        try:
            spread = reward_std(rewards)
        except ValueError as error:
            raise ValueError(f"prompt {prompt_id!r}: {error}") from error
        (kept if spread > tolerance else dropped).append(prompt_id)
    return PromptFilterResult(kept=kept, dropped=dropped)
