"""Collation: prompt + response rows, masks and behaviour log-probs aligned with input ids."""

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from transformers import PreTrainedTokenizerFast

from hybridrl.algo.pairs import PreferencePair
from hybridrl.algo.samples import ScoredResponse
from hybridrl.engines.base import SamplingOptions
from hybridrl.engines.cpu import TransformersEngine
from hybridrl.learner.collate import collate_grpo, collate_pairs, collate_responses
from hybridrl.learner.evaluation import task_request
from hybridrl.learner.steps import token_logprobs
from hybridrl.models.vlm import VisionLanguageModel
from hybridrl.tasks.visual_reasoning import generate_prompts

PAD = 0


@dataclass(frozen=True)
class Response:
    prompt_token_ids: list[int]
    response_token_ids: list[int]
    behaviour_logprobs: list[float]
    pixel_values: torch.Tensor | None = None


def _image(value: float) -> torch.Tensor:
    return torch.full((3, 2, 2), value)


def _scored(index: int, payload: Response, version: int = 0) -> ScoredResponse[Response]:
    return ScoredResponse(
        sample_id=f"p/v{version}/{index}",
        group_id=f"p/v{version}",
        prompt_id="p",
        policy_version=version,
        reward=float(index),
        payload=payload,
    )


def test_rows_are_prompt_then_response_right_padded_with_aligned_log_probs() -> None:
    batch = collate_responses(
        [
            Response([1, 5, 6], [7, 8], [-0.5, -0.25], _image(1.0)),
            Response([1, 5], [9, 10, 2], [-1.0, -2.0, -3.0]),
        ],
        PAD,
    )
    assert batch.input_ids.tolist() == [[1, 5, 6, 7, 8], [1, 5, 9, 10, 2]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 1, 1]]
    assert batch.response_mask.tolist() == [
        [False, False, False, True, True],
        [False, False, True, True, True],
    ]
    assert batch.behaviour_logprobs.tolist() == [
        [0.0, 0.0, 0.0, -0.5, -0.25],
        [0.0, 0.0, -1.0, -2.0, -3.0],
    ]
    assert batch.response_lengths.tolist() == [2, 3]
    assert batch.has_image.tolist() == [True, False]
    assert batch.pixel_values is not None
    assert batch.pixel_values.shape == (1, 3, 2, 2)


def test_shorter_rows_are_padded_and_masked_out() -> None:
    batch = collate_responses(
        [Response([1, 5], [7], [-0.5]), Response([1, 5, 6, 6], [8, 2], [-1.0, -2.0])], PAD
    )
    assert batch.input_ids.tolist() == [[1, 5, 7, PAD, PAD, PAD], [1, 5, 6, 6, 8, 2]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]]
    assert batch.response_mask[0].tolist() == [False, False, True, False, False, False]


def test_select_keeps_each_row_with_its_own_image() -> None:
    batch = collate_responses(
        [
            Response([1], [7], [-0.1], _image(1.0)),
            Response([1], [8, 9], [-0.2, -0.3]),
            Response([1, 4], [9], [-0.4], _image(3.0)),
        ],
        PAD,
    )
    picked = batch.select(torch.tensor([2, 1]))
    assert picked.input_ids.tolist() == [[1, 4, 9], [1, 8, 9]]
    assert picked.has_image.tolist() == [True, False]
    assert picked.pixel_values is not None
    assert picked.pixel_values[:, 0, 0, 0].tolist() == [3.0]


def test_grpo_batch_carries_advantages_and_policy_versions() -> None:
    samples = [
        _scored(0, Response([1], [7], [-0.1]), version=3),
        _scored(1, Response([1], [8], [-0.2]), version=5),
    ]
    batch = collate_grpo(samples, [0.5, -1.5], PAD)
    assert batch.advantages.tolist() == [0.5, -1.5]
    assert batch.policy_versions.tolist() == [3, 5]
    assert batch.tokens.input_ids.tolist() == [[1, 7], [1, 8]]


def test_pairs_put_all_chosen_rows_before_all_rejected_rows() -> None:
    pairs = [
        PreferencePair(
            _scored(2, Response([1], [7], [-0.1])), _scored(0, Response([1], [8], [-0.2]))
        ),
        PreferencePair(
            _scored(3, Response([1], [9], [-0.3])), _scored(1, Response([1], [6], [-0.4]))
        ),
    ]
    batch = collate_pairs(pairs, PAD)
    assert batch.pairs == 2
    assert batch.tokens.input_ids[:, 1].tolist() == [7, 9, 8, 6]


@pytest.mark.parametrize(
    ("responses", "message"),
    [
        ([], "no responses"),
        ([Response([1], [7, 8], [-0.1])], "behaviour log-probs"),
        ([Response([], [7], [-0.1])], "non-empty"),
        ([Response([1], [7], [float("nan")])], "finite"),
        (
            [
                Response([1], [7], [-0.1], _image(0.0)),
                Response([1], [7], [-0.1], torch.zeros(3, 4, 4)),
            ],
            "shape",
        ),
    ],
)
def test_invalid_responses_raise_value_error(responses: list[Response], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        collate_responses(responses, PAD)


def test_advantages_must_match_the_samples() -> None:
    samples = [_scored(0, Response([1], [7], [-0.1]))]
    with pytest.raises(ValueError, match="advantages"):
        collate_grpo(samples, [0.5, 1.0], PAD)


def test_engine_log_probs_equal_the_learner_recomputation_on_the_collated_batch(
    tiny_model: Callable[[int], VisionLanguageModel], tokenizer: PreTrainedTokenizerFast
) -> None:
    model = tiny_model(0)
    engine = TransformersEngine(tiny_model(0), tokenizer, seed=0)
    sampling = SamplingOptions(n=2, temperature=0.7, max_new_tokens=6, seed=11)
    prompts = generate_prompts(2, seed=0)
    requests = [
        task_request(p, tokenizer, model.config.num_image_tokens, sampling) for p in prompts
    ]
    results = engine.generate(requests)
    responses = [
        Response(result.prompt_token_ids, c.token_ids, c.logprobs, request.pixel_values)
        for request, result in zip(requests, results, strict=True)
        for c in result.completions
    ]
    batch = collate_responses(responses, PAD)
    with torch.no_grad():
        recomputed = token_logprobs(model, batch, temperature=0.7)
    mask = batch.response_mask
    torch.testing.assert_close(recomputed[mask], batch.behaviour_logprobs[mask], atol=1e-4, rtol=0)
