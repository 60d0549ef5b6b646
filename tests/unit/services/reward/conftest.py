"""Fixtures for the reward service tests: a rule pool, the tiny reward model, rollouts, images."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import pytest
import torch
from hybridrl_services.reward.reward_model_source import tiny_reward_model

from hybridrl.algo.samples import group_id_for, sample_id_for
from hybridrl.config.rewards import RuleRewardConfig, ScorerPoolConfig
from hybridrl.models.images import encode_png, inline_image_ref
from hybridrl.proto.schema import SCHEMA_VERSION
from hybridrl.proto.tensor_codec import tensor_from_array
from hybridrl.proto.v1 import common_pb2, events_pb2
from hybridrl.rewards.reward_model import RewardModelScorer
from hybridrl.rewards.rule import RuleResult, score_rule
from hybridrl.rewards.scorer_pool import RuleScorerPool

RolloutFactory = Callable[..., events_pb2.RolloutEvent]


class InThreadRules:
    """Scores rule rewards in the calling thread: fast, no deadline; for tests that need no pool."""

    def __init__(self) -> None:
        self.calls = 0

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[RuleResult]:
        self.calls += 1
        return [score_rule(response, gold, RuleRewardConfig()) for response, gold in pairs]


class GatedRules:
    """The rule pool behind a gate a test can close, to stand for a pool busy elsewhere."""

    def __init__(self, pool: RuleScorerPool) -> None:
        self.pool = pool
        self.gate = threading.Event()
        self.gate.set()

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[RuleResult]:
        self.gate.wait(timeout=30)
        return self.pool.score(pairs)


@pytest.fixture(autouse=True)
def single_torch_thread() -> Iterator[None]:
    """One intra-op thread: the tiny model's matrices are too small to gain from two."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def rule_pool() -> Iterator[RuleScorerPool]:
    with RuleScorerPool(ScorerPoolConfig(workers=2)) as pool:
        yield pool


@pytest.fixture(scope="session")
def gated_rules(rule_pool: RuleScorerPool) -> Iterator[GatedRules]:
    """The session's rule pool behind a gate; open again after each test that closes it."""
    rules = GatedRules(rule_pool)
    yield rules
    rules.gate.set()


@pytest.fixture(scope="session")
def tiny_model() -> RewardModelScorer:
    return tiny_reward_model(seed=0)


@pytest.fixture
def png() -> bytes:
    """A 32x32 red-and-blue PNG of a few hundred bytes."""
    pixels = np.zeros((32, 32, 3), dtype=np.uint8)
    pixels[:, :16] = (200, 10, 30)
    pixels[:, 16:] = (10, 30, 200)
    return encode_png(pixels)


def rollout_event(
    prompt: str = "p1",
    index: int = 0,
    size: int = 2,
    response: str = "<think>2 plus 3 is 5</think> \\boxed{5}",
    gold: str = "5",
    task_kind: common_pb2.TaskKind.ValueType = common_pb2.TASK_KIND_MATH,
    images: Sequence[common_pb2.ImageRef] = (),
) -> events_pb2.RolloutEvent:
    """Response ``index`` of group (prompt, policy version 0)."""
    return events_pb2.RolloutEvent(
        schema_version=SCHEMA_VERSION,
        sample_id=sample_id_for(prompt, 0, index),
        group_id=group_id_for(prompt, 0),
        prompt_id=prompt,
        sample_index=index,
        group_size=size,
        policy_version=0,
        prompt_token_ids=[1, 2, 3],
        response_token_ids=[10 + index, 20 + index],
        behaviour_logprobs=tensor_from_array(np.array([-0.5, -0.25], dtype=np.float32)),
        response_text=response,
        prompt_text="What is 2+3?",
        reference_answer=gold,
        task_kind=task_kind,
        images=list(images),
    )


@pytest.fixture
def make_rollout() -> RolloutFactory:
    return rollout_event


@pytest.fixture
def inline_png(png: bytes) -> common_pb2.ImageRef:
    return inline_image_ref(png)


@pytest.fixture
def in_thread_rules() -> InThreadRules:
    return InThreadRules()
