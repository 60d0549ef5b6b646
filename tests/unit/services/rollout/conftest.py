"""Fixtures for the rollout service tests: the tiny policy behind a shared CPU engine."""

from collections.abc import Iterator

import pytest
import torch

from hybridrl.engines.cpu import TransformersEngine
from hybridrl.rollout.policy_source import tiny_policy
from hybridrl.rollout.prompt_inputs import PromptEncoder
from hybridrl.rollout.shared_engine import SharedEngine


@pytest.fixture(autouse=True)
def single_torch_thread() -> Iterator[None]:
    """One intra-op thread: the tiny model's matrices are too small to gain from two."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def shared_engine() -> SharedEngine:
    loaded = tiny_policy(0)
    return SharedEngine(TransformersEngine(loaded.model, loaded.tokenizer, seed=0))


@pytest.fixture
def encoder() -> PromptEncoder:
    loaded = tiny_policy(0)
    return PromptEncoder.for_model(loaded.tokenizer, loaded.config)
