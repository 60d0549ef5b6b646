"""The learner steps: GRPO (eq. 8) and MPO (eqs. 2-5) on the tiny policy, loss and metrics."""

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from transformers import PreTrainedTokenizerFast

from hybridrl.algo.mpo import RewardShift
from hybridrl.config.losses import GRPOConfig, MPOConfig
from hybridrl.learner.collate import (
    GRPOBatch,
    PreferenceBatch,
    TokenBatch,
    collate_responses,
)
from hybridrl.learner.steps import grpo_step, mpo_step, token_logprobs
from hybridrl.models.freezing import apply_freeze_mode
from hybridrl.models.prompting import encode_prompt
from hybridrl.models.vlm import VisionLanguageModel
from hybridrl.tasks.visual_reasoning import generate_prompts

NO_KL = GRPOConfig(kl_beta=0.0)


@dataclass(frozen=True)
class Response:
    prompt_token_ids: list[int]
    response_token_ids: list[int]
    behaviour_logprobs: list[float]
    pixel_values: torch.Tensor | None


def _tokens(
    model: VisionLanguageModel, tokenizer: PreTrainedTokenizerFast, texts: list[str]
) -> TokenBatch:
    """Responses ``texts`` to task prompts, with the model's own log-probs as behaviour."""
    prompts = generate_prompts(len(texts), seed=3)
    responses = []
    for prompt, text in zip(prompts, texts, strict=True):
        ids = tokenizer.encode(text, add_special_tokens=False)
        responses.append(
            Response(
                encode_prompt(tokenizer, prompt.question, True, model.config.num_image_tokens),
                ids,
                [0.0] * len(ids),
                torch.from_numpy(prompt.pixel_values()),
            )
        )
    batch = collate_responses(responses, 0)
    with torch.no_grad():
        behaviour = token_logprobs(model, batch)
    return TokenBatch(
        batch.input_ids,
        batch.attention_mask,
        batch.response_mask,
        batch.pixel_values,
        behaviour,
        batch.response_lengths,
        batch.has_image,
    )


def _grpo_batch(tokens: TokenBatch, advantages: list[float], versions: list[int]) -> GRPOBatch:
    return GRPOBatch(tokens, torch.tensor(advantages), torch.tensor(versions))


def test_grpo_step_with_positive_advantages_raises_the_log_prob_of_those_responses(
    tiny_model: Callable[[int], VisionLanguageModel], tokenizer: PreTrainedTokenizerFast
) -> None:
    model = tiny_model(0)
    apply_freeze_mode(model, "llm+adapter")
    tokens = _tokens(model, tokenizer, ["<think>red</think> \\boxed{A}", "<think>left</think>"])
    before = tokens.behaviour_logprobs.sum(dim=1)
    output = grpo_step(
        model,
        None,
        _grpo_batch(tokens, [1.0, 1.0], [0, 0]),
        NO_KL,
        current_policy_version=0,
        max_staleness=0,
    )
    output.loss.backward()
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5).step()
    with torch.no_grad():
        after = token_logprobs(model, tokens).sum(dim=1)
    assert bool((after > before).all()), (before, after)


def test_on_policy_grpo_step_has_unit_ratio_and_minus_mean_advantage_loss(
    tiny_model: Callable[[int], VisionLanguageModel], tokenizer: PreTrainedTokenizerFast
) -> None:
    model = tiny_model(0)
    apply_freeze_mode(model, "adapter")
    tokens = _tokens(model, tokenizer, ["<think>red</think>", "<think>blue</think> x"])
    output = grpo_step(
        model,
        None,
        _grpo_batch(tokens, [1.0, -0.5], [2, 2]),
        NO_KL,
        current_policy_version=2,
        max_staleness=0,
    )
    # ratio 1 everywhere: each response's objective is its advantage; -(1.0 - 0.5) / 2
    assert output.loss.item() == pytest.approx(-0.25, abs=1e-5)
    assert output.metrics["ratio_mean"] == pytest.approx(1.0, abs=1e-5)
    assert output.metrics["clip_fraction"] == 0.0
    assert output.metrics["approx_kl_old"] == pytest.approx(0.0, abs=1e-6)
    assert output.metrics["samples"] == 2.0
    assert output.metrics["stale_dropped"] == 0.0
    assert output.metrics["response_length"] == pytest.approx((5 + 8) / 2)
    assert "ref_kl" not in output.metrics


def test_stale_samples_are_dropped_before_the_loss(
    tiny_model: Callable[[int], VisionLanguageModel], tokenizer: PreTrainedTokenizerFast
) -> None:
    model = tiny_model(0)
    apply_freeze_mode(model, "adapter")
    tokens = _tokens(model, tokenizer, ["<think>red</think>", "<think>blue</think>"])
    output = grpo_step(
        model,
        None,
        _grpo_batch(tokens, [3.0, -0.5], [1, 5]),
        NO_KL,
        current_policy_version=5,
        max_staleness=2,
    )
    assert output.metrics["stale_dropped"] == 1.0
    assert output.metrics["samples"] == 1.0
    assert output.loss.item() == pytest.approx(0.5, abs=1e-5)


def test_an_all_stale_batch_gives_a_zero_loss_that_still_reaches_the_parameters(
    tiny_model: Callable[[int], VisionLanguageModel], tokenizer: PreTrainedTokenizerFast
) -> None:
    model = tiny_model(0)
    apply_freeze_mode(model, "adapter")
    tokens = _tokens(model, tokenizer, ["<think>red</think>"])
    output = grpo_step(
        model,
        None,
        _grpo_batch(tokens, [1.0], [0]),
        NO_KL,
        current_policy_version=9,
        max_staleness=1,
    )
    output.loss.backward()
    assert output.loss.item() == 0.0
    assert output.metrics == {"loss": 0.0, "samples": 0.0, "stale_dropped": 1.0}
    for parameter in model.adapter.parameters():
        assert parameter.grad is not None
        assert float(parameter.grad.abs().sum()) == 0.0


def test_kl_to_an_identical_reference_is_zero(
    tiny_model: Callable[[int], VisionLanguageModel], tokenizer: PreTrainedTokenizerFast
) -> None:
    model = tiny_model(0)
    reference = copy.deepcopy(model)
    apply_freeze_mode(model, "adapter")
    tokens = _tokens(model, tokenizer, ["<think>red</think>", "<think>blue</think>"])
    output = grpo_step(
        model,
        reference,
        _grpo_batch(tokens, [1.0, -1.0], [0, 0]),
        GRPOConfig(kl_beta=0.5),
        current_policy_version=0,
        max_staleness=0,
    )
    assert output.metrics["ref_kl"] == pytest.approx(0.0, abs=1e-6)
    assert output.loss.item() == pytest.approx(0.0, abs=1e-5)


def test_grpo_step_rejects_future_samples_and_kl_without_reference(
    tiny_model: Callable[[int], VisionLanguageModel], tokenizer: PreTrainedTokenizerFast
) -> None:
    model = tiny_model(0)
    tokens = _tokens(model, tokenizer, ["<think>red</think>"])
    with pytest.raises(ValueError, match="newer"):
        grpo_step(
            model,
            None,
            _grpo_batch(tokens, [1.0], [4]),
            NO_KL,
            current_policy_version=3,
            max_staleness=1,
        )
    with pytest.raises(ValueError, match="reference"):
        grpo_step(
            model,
            None,
            _grpo_batch(tokens, [1.0], [0]),
            GRPOConfig(kl_beta=0.1),
            current_policy_version=0,
            max_staleness=1,
        )


def test_mpo_step_from_the_reference_gives_the_log_two_losses_and_the_chosen_nll(
    tiny_model: Callable[[int], VisionLanguageModel], tokenizer: PreTrainedTokenizerFast
) -> None:
    model = tiny_model(0)
    reference = copy.deepcopy(model)
    apply_freeze_mode(model, "adapter")
    chosen = ["<think>red</think> \\boxed{A}", "<think>left</think> \\boxed{left}"]
    rejected = ["<think>blue</think> \\boxed{C}", "<think>right</think>"]
    tokens = _tokens(model, tokenizer, chosen + rejected)
    shift = RewardShift()
    output = mpo_step(model, reference, PreferenceBatch(tokens, pairs=2), MPOConfig(), shift)

    # pi_theta == pi_0: every implicit reward and delta is 0, so eq. 3 is log 2 and eq. 4 2 log 2.
    per_token = tokens.behaviour_logprobs.sum(dim=1) / tokens.response_lengths
    generation = float(-per_token[:2].mean())
    expected = 0.8 * math.log(2) + 0.2 * 2 * math.log(2) + 1.0 * generation
    assert output.metrics["preference_loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert output.metrics["quality_loss"] == pytest.approx(2 * math.log(2), abs=1e-6)
    assert output.metrics["generation_loss"] == pytest.approx(generation, abs=1e-5)
    assert output.loss.item() == pytest.approx(expected, abs=1e-5)
    assert output.metrics["delta"] == 0.0
    assert output.metrics["reward_accuracy"] == 0.0
    assert output.metrics["pairs"] == 2.0
    assert output.metrics["chosen_length"] == pytest.approx((15 + 19) / 2)
    assert shift.count == 1


def test_mpo_step_moves_the_reward_shift_towards_the_batch_implicit_rewards(
    tiny_model: Callable[[int], VisionLanguageModel], tokenizer: PreTrainedTokenizerFast
) -> None:
    model = tiny_model(0)
    reference = tiny_model(1)  # another pi_0: implicit rewards beta * (log pi - log pi_0) != 0
    tokens = _tokens(model, tokenizer, ["<think>red</think>", "<think>blue</think>"])
    with torch.no_grad():
        reference_sums = token_logprobs(reference, tokens).sum(dim=1)
    expected = float(0.1 * (tokens.behaviour_logprobs.sum(dim=1) - reference_sums).mean())
    shift = RewardShift()
    output = mpo_step(model, reference, PreferenceBatch(tokens, pairs=1), MPOConfig(), shift)
    assert output.metrics["delta"] == pytest.approx(expected, abs=1e-5)
    assert shift.delta == pytest.approx(expected, abs=1e-5)
