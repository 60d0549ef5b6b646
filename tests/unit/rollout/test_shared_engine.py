"""SharedEngine and OnDemandGenerator: turns on one engine, waits bounded by a deadline."""

import threading
from collections.abc import Callable, Mapping, Sequence

import pytest
import torch

from hybridrl.engines.base import GenerationRequest, GenerationResult, SamplingOptions
from hybridrl.engines.cpu import TransformersEngine
from hybridrl.rollout.on_demand import OnDemandGenerator
from hybridrl.rollout.prompt_inputs import PromptEncoder
from hybridrl.rollout.shared_engine import SharedEngine

EngineFactory = Callable[..., TransformersEngine]


class BlockingEngine:
    """Holds ``generate`` until released, so a second caller finds the engine busy."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    @property
    def policy_version(self) -> int:
        return 0

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        self.entered.set()
        self.release.wait(timeout=10)
        return [GenerationResult(r.request_id, list(r.prompt_token_ids), [], 0) for r in requests]

    def load_weights(self, state: Mapping[str, torch.Tensor], policy_version: int) -> None:
        raise AssertionError("not used")

    def close(self) -> None:
        pass


def test_generate_gives_up_when_the_engine_stays_busy_past_the_timeout() -> None:
    blocking = BlockingEngine()
    shared = SharedEngine(blocking)
    request = GenerationRequest("a", [1, 2])
    first = threading.Thread(target=shared.generate, args=([request],))
    first.start()
    assert blocking.entered.wait(timeout=10)
    with pytest.raises(TimeoutError, match="busy"):
        shared.generate([request], timeout=0.05)
    with pytest.raises(TimeoutError):
        shared.generate([request], timeout=0.0)
    blocking.release.set()
    first.join(timeout=10)
    assert shared.generate([request], timeout=1.0)[0].request_id == "a"


def test_on_demand_generation_returns_n_completions_from_the_current_version(
    make_engine: EngineFactory, encoder: PromptEncoder
) -> None:
    generator = OnDemandGenerator(
        SharedEngine(make_engine(policy_version=6)), encoder, max_new_tokens_cap=32
    )
    result = generator.generate("2+3?", [], SamplingOptions(n=3, max_new_tokens=5, seed=1))
    assert result.policy_version == 6
    assert generator.policy_version == 6
    assert len(result.completions) == 3
    assert all(1 <= len(c.token_ids) <= 5 for c in result.completions)


def test_on_demand_generation_refuses_responses_longer_than_the_cap(
    make_engine: EngineFactory, encoder: PromptEncoder
) -> None:
    generator = OnDemandGenerator(SharedEngine(make_engine()), encoder, max_new_tokens_cap=32)
    with pytest.raises(ValueError, match="max_new_tokens must be at most 32, got 33"):
        generator.generate("q", [], SamplingOptions(max_new_tokens=33))
    with pytest.raises(ValueError, match="max_new_tokens_cap"):
        OnDemandGenerator(SharedEngine(make_engine()), encoder, max_new_tokens_cap=0)
