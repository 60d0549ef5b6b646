"""Held-out evaluation: greedy answers scored by the rule and format rewards."""

from collections.abc import Callable, Mapping, Sequence

import pytest
import torch
from transformers import PreTrainedTokenizerFast

from hybridrl.engines.base import Completion, GenerationRequest, GenerationResult
from hybridrl.engines.cpu import TransformersEngine
from hybridrl.learner.evaluation import evaluate
from hybridrl.models.vlm import VisionLanguageModel
from hybridrl.tasks.visual_reasoning import generate_prompts


class ScriptedEngine:
    """Answers each request with a fixed text and records the sampling it was asked for."""

    def __init__(self, texts: Sequence[str], tokens: Sequence[int]) -> None:
        self._texts = list(texts)
        self._tokens = list(tokens)
        self.requests: list[GenerationRequest] = []

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        self.requests.extend(requests)
        return [
            GenerationResult(
                request.request_id,
                list(request.prompt_token_ids),
                [Completion([5] * length, [0.0] * length, "stop", text)],
                policy_version=7,
            )
            for request, text, length in zip(requests, self._texts, self._tokens, strict=True)
        ]

    def load_weights(self, state: Mapping[str, torch.Tensor], policy_version: int) -> None:
        raise AssertionError("evaluation never loads weights")

    @property
    def policy_version(self) -> int:
        return 7

    def close(self) -> None:
        pass


def test_accuracy_format_rate_and_length_are_counted_per_prompt_and_kind(
    tokenizer: PreTrainedTokenizerFast,
) -> None:
    prompts = generate_prompts(4, seed=0, kinds=["colour", "position"])
    answers = [p.answer for p in prompts]
    texts = [
        f"<think>x</think> \\boxed{{{answers[0]}}}",  # colour, right, formatted
        f"\\boxed{{{answers[1]}}}",  # position, right, no template
        "<think>x</think> \\boxed{Z}",  # colour, wrong, formatted
        "<think>x</think> \\boxed{up}",  # position, wrong, formatted
    ]
    engine = ScriptedEngine(texts, [10, 20, 30, 40])
    result = evaluate(engine, prompts, tokenizer, 16, max_new_tokens=12)
    assert result.accuracy == 0.5
    assert result.accuracy_by_kind == {"colour": 0.5, "position": 0.5}
    assert result.format_rate == 0.75
    assert result.mean_length == 25.0
    assert result.prompts == 4
    assert result.policy_version == 7
    assert all(r.sampling.greedy and r.sampling.n == 1 for r in engine.requests)
    assert all(r.sampling.max_new_tokens == 12 for r in engine.requests)


def test_greedy_evaluation_of_the_untrained_policy_is_deterministic_and_scores_nothing(
    tiny_model: Callable[[int], VisionLanguageModel], tokenizer: PreTrainedTokenizerFast
) -> None:
    engine = TransformersEngine(tiny_model(0), tokenizer, seed=0)
    prompts = generate_prompts(4, seed=1)
    first = evaluate(engine, prompts, tokenizer, 16, max_new_tokens=6)
    second = evaluate(engine, prompts, tokenizer, 16, max_new_tokens=6)
    assert first == second
    # Random weights never write the template or an answer, and never stop before the limit.
    assert first.accuracy == 0.0
    assert first.accuracy_by_kind == {
        "colour": 0.0,
        "counting": 0.0,
        "digit_sum": 0.0,
        "position": 0.0,
    }
    assert first.format_rate == 0.0
    assert first.mean_length == 6.0


def test_no_prompts_raise_value_error(tokenizer: PreTrainedTokenizerFast) -> None:
    with pytest.raises(ValueError, match="no prompts"):
        evaluate(ScriptedEngine([], []), [], tokenizer, 16, max_new_tokens=4)
