"""Shared fixtures for the rollout tests: the tiny policy on the CPU engine, on one thread."""

from collections.abc import Callable, Iterator

import pytest
import torch

from hybridrl.engines.cpu import TransformersEngine
from hybridrl.rollout.policy_source import LoadedPolicy, tiny_policy
from hybridrl.rollout.prompt_inputs import PromptEncoder

EngineFactory = Callable[..., TransformersEngine]


@pytest.fixture(autouse=True)
def single_torch_thread() -> Iterator[None]:
    """One intra-op thread: the tiny model's matrices are too small to gain from two."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def policy() -> LoadedPolicy:
    """The tiny policy from seed 0, for tests that never change its weights."""
    return tiny_policy(0)


@pytest.fixture
def make_engine() -> EngineFactory:
    """``make_engine(seed=0, policy_version=0)``: a CPU engine on a fresh tiny policy."""

    def make(seed: int = 0, policy_version: int = 0) -> TransformersEngine:
        loaded = tiny_policy(seed)
        return TransformersEngine(loaded.model, loaded.tokenizer, policy_version=policy_version)

    return make


@pytest.fixture
def encoder(policy: LoadedPolicy) -> PromptEncoder:
    return PromptEncoder.for_model(policy.tokenizer, policy.config)
