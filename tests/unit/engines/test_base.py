"""The engine records: sampling options, requests and completions reject what cannot be served."""

import math

import pytest
import torch

from hybridrl.engines.base import (
    MAX_RESPONSES_PER_PROMPT,
    Completion,
    GenerationRequest,
    SamplingOptions,
)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n": 0}, "n must be"),
        ({"n": 10**6}, "n must be"),
        ({"n": MAX_RESPONSES_PER_PROMPT + 1}, "n must be"),
        ({"n": 2.0}, "n must be"),
        ({"n": True}, "n must be"),
        ({"temperature": -0.1}, "temperature must be >= 0"),
        ({"temperature": math.nan}, "temperature must be a finite"),
        ({"temperature": math.inf}, "temperature must be a finite"),
        ({"top_p": 0.0}, "top_p must be in"),
        ({"top_p": -0.5}, "top_p must be in"),
        ({"top_p": 1.01}, "top_p must be in"),
        ({"top_p": math.nan}, "top_p must be in"),
        ({"max_new_tokens": 0}, "max_new_tokens must be"),
        ({"max_new_tokens": -3}, "max_new_tokens must be"),
        ({"seed": -1}, "seed must be"),
        ({"seed": 2**63}, "seed must be"),
    ],
)
def test_invalid_sampling_options_raise_value_error(
    options: dict[str, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        SamplingOptions(**options)  # type: ignore[arg-type]


def test_boundary_sampling_options_are_accepted() -> None:
    options = SamplingOptions(
        n=MAX_RESPONSES_PER_PROMPT, temperature=0.0, top_p=1.0, max_new_tokens=1, seed=2**63 - 1
    )
    assert options.greedy
    assert SamplingOptions(top_p=1e-9).top_p == 1e-9


def test_greedy_log_probs_are_taken_at_temperature_one() -> None:
    assert SamplingOptions(temperature=0.0).logprob_temperature == 1.0
    assert SamplingOptions(temperature=0.7).logprob_temperature == 0.7
    assert not SamplingOptions(temperature=0.7).greedy


def test_request_stores_prompt_ids_as_a_tuple() -> None:
    ids = [1, 4, 17]
    request = GenerationRequest("p-1", ids)
    ids.append(99)
    assert request.prompt_token_ids == (1, 4, 17)
    assert request.sampling == SamplingOptions()


@pytest.mark.parametrize(
    ("request_id", "ids", "pixels", "message"),
    [
        ("", [1], None, "request_id"),
        ("p", [], None, "empty"),
        ("p", [1, -2], None, "non-negative"),
        ("p", [1, 2.5], None, "non-negative"),
        ("p", [1], torch.zeros(32, 32), r"\[C, H, W\]"),
        ("p", [1], torch.zeros(3, 32, 32, dtype=torch.long), "finite floats"),
        ("p", [1], torch.full((3, 32, 32), math.nan), "finite floats"),
    ],
)
def test_invalid_requests_raise_value_error(
    request_id: str, ids: list[float], pixels: torch.Tensor | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        GenerationRequest(request_id, ids, pixels)  # type: ignore[arg-type]


def test_completion_needs_one_logprob_per_token_and_a_known_finish_reason() -> None:
    with pytest.raises(ValueError, match="2 token ids but 1 log-probs"):
        Completion([5, 6], [-0.1], "stop", "")
    with pytest.raises(ValueError, match="finish_reason"):
        Completion([5], [-0.1], "abort", "")  # type: ignore[arg-type]
