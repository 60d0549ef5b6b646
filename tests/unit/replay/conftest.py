"""Scored samples for the SSB store tests, built from a few numbers."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from hybridrl.algo.samples import ScoredResponse, group_id_for, sample_id_for
from hybridrl.replay.records import RewardBreakdown, SamplePayload, ScoredSample

SampleFactory = Callable[..., ScoredSample]
GroupFactory = Callable[[str, int, list[float]], list[ScoredSample]]


def scored_sample(
    prompt: str = "p",
    version: int = 0,
    index: int = 0,
    size: int = 4,
    reward: float = 0.0,
    *,
    sample_id: str | None = None,
) -> ScoredSample:
    """Response ``index`` of the group (prompt, version) with ``reward`` and two tokens."""
    payload = SamplePayload(
        prompt_token_ids=np.array([1, 2, 3], dtype=np.uint32),
        response_token_ids=np.array([10 + index, 20 + index], dtype=np.uint32),
        behaviour_logprobs=np.array([-0.5, -0.25], dtype=np.float32),
        reward_parts=RewardBreakdown(total=reward, rule=reward),
    )
    response = ScoredResponse(
        sample_id=sample_id or sample_id_for(prompt, version, index),
        group_id=group_id_for(prompt, version),
        prompt_id=prompt,
        policy_version=version,
        reward=reward,
        payload=payload,
    )
    return ScoredSample(response=response, sample_index=index, group_size=size)


def group_of(prompt: str, version: int, rewards: list[float]) -> list[ScoredSample]:
    """The whole group, one sample per reward, in index order."""
    return [
        scored_sample(prompt, version, index, len(rewards), reward)
        for index, reward in enumerate(rewards)
    ]


@pytest.fixture
def make_sample() -> SampleFactory:
    return scored_sample


@pytest.fixture
def make_group() -> GroupFactory:
    return group_of
