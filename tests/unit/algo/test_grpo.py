"""Clipped GRPO loss (eq. 8): hand-computed losses, metrics, gradients, clipping and bad input."""

from __future__ import annotations

import math

import pytest
import torch

from hybridrl.algo.grpo import Aggregation, grpo_loss

F64 = torch.float64


def _two_sequences() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two responses, the first one token shorter (padding), clip_eps 0.2.

    Sequence 0: ratios [1.1, 1.5] + padding, A = +1; sequence 1: ratios [0.5, 0.9, 1.0], A = -1.

    With clip_eps 0.2 the per-token objectives min(r A, clip(r) A) are
    seq 0: [1.1, min(1.5, 1.2) = 1.2]                 -> mean 1.15
    seq 1: [min(-0.5, -0.8) = -0.8, -0.9, -1.0]       -> mean -0.9
    """
    old = torch.full((2, 3), -1.0, dtype=F64)
    ratios = torch.tensor([[1.1, 1.5, 1.0], [0.5, 0.9, 1.0]], dtype=F64)
    logprobs = old + ratios.log()
    advantages = torch.tensor([1.0, -1.0], dtype=F64)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    return logprobs, old, advantages, mask


def test_sequence_mean_loss_is_minus_eq8_objective() -> None:
    logprobs, old, advantages, mask = _two_sequences()
    out = grpo_loss(logprobs, old, advantages, mask)
    # -(1.15 + (-0.9)) / 2 = -0.125
    assert out.loss.item() == pytest.approx(-0.125, abs=1e-9)


def test_token_mean_loss_divides_by_all_valid_tokens() -> None:
    logprobs, old, advantages, mask = _two_sequences()
    out = grpo_loss(logprobs, old, advantages, mask, aggregation="token_mean")
    # -(1.1 + 1.2 - 0.8 - 0.9 - 1.0) / 5 = 0.08
    assert out.loss.item() == pytest.approx(0.08, abs=1e-9)


def test_metrics_are_hand_computed() -> None:
    logprobs, old, advantages, mask = _two_sequences()
    metrics = grpo_loss(logprobs, old, advantages, mask).metrics
    # Clipped branch active for (r=1.5, A=+1) and (r=0.5, A=-1): 2 of 5 valid tokens.
    assert metrics.clip_fraction == pytest.approx(0.4)
    # k3 = r - 1 - log r: 0.0046898202 + 0.0945348919 + 0.1931471806 + 0.0053605157 + 0 = 0.29773
    assert metrics.approx_kl_old == pytest.approx(0.05954648166105647, abs=1e-9)
    assert metrics.ratio_mean == pytest.approx(1.0)
    assert metrics.ratio_min == pytest.approx(0.5)
    assert metrics.ratio_max == pytest.approx(1.5)
    assert metrics.policy_loss == pytest.approx(-0.125)
    assert metrics.valid_tokens == 5
    assert metrics.ref_kl is None
    assert "ref_kl" not in metrics.as_dict()
    assert metrics.as_dict()["clip_fraction"] == pytest.approx(0.4)


def test_kl_penalty_adds_beta_times_k3_estimator() -> None:
    logprobs = torch.tensor([[-1.0, -2.0]], dtype=F64)
    advantages = torch.tensor([0.0], dtype=F64)
    mask = torch.ones(1, 2, dtype=torch.bool)
    # ref - logp = [log 2, 0] -> k3 = [2 - log 2 - 1, 0] = [0.3068528194400546, 0];
    # token mean 0.1534264097200273.
    ref = logprobs + torch.tensor([[math.log(2.0), 0.0]], dtype=F64)
    out = grpo_loss(logprobs, logprobs.clone(), advantages, mask, ref_logprobs=ref, kl_beta=0.1)
    assert out.loss.item() == pytest.approx(0.1 * 0.1534264097200273, abs=1e-12)
    assert out.metrics.ref_kl == pytest.approx(0.1534264097200273, abs=1e-12)
    assert out.metrics.policy_loss == pytest.approx(0.0, abs=1e-12)


def test_reference_without_kl_beta_only_reports_metric() -> None:
    logprobs, old, advantages, mask = _two_sequences()
    out = grpo_loss(logprobs, old, advantages, mask, ref_logprobs=old)
    assert out.loss.item() == pytest.approx(-0.125)
    assert out.metrics.ref_kl is not None
    assert out.metrics.ref_kl > 0.0


def test_clip_eps_high_widens_only_the_upper_range() -> None:
    logprobs = torch.tensor([[math.log(1.25)], [math.log(0.7)]], dtype=F64)
    old = torch.zeros(2, 1, dtype=F64)
    mask = torch.ones(2, 1, dtype=torch.bool)
    advantages = torch.tensor([1.0, -1.0], dtype=F64)
    symmetric = grpo_loss(logprobs, old, advantages, mask)
    # token 0: min(1.25, 1.2) = 1.2; token 1: min(-0.7, -0.8) = -0.8 -> loss -(1.2 - 0.8) / 2
    assert symmetric.loss.item() == pytest.approx(-0.2)
    higher = grpo_loss(logprobs, old, advantages, mask, clip_eps_high=0.28)
    # token 0 is inside [0.8, 1.28] now: -(1.25 - 0.8) / 2 = -0.225
    assert higher.loss.item() == pytest.approx(-0.225)


def test_token_advantages_equal_broadcast_sequence_advantages() -> None:
    logprobs, old, advantages, mask = _two_sequences()
    per_token = advantages.unsqueeze(1).expand(2, 3).clone()
    for aggregation in ("sequence_mean", "token_mean"):
        expected = grpo_loss(logprobs, old, advantages, mask, aggregation=aggregation).loss
        got = grpo_loss(logprobs, old, per_token, mask, aggregation=aggregation).loss
        assert got.item() == pytest.approx(expected.item(), abs=1e-12)


def test_unclipped_gradient_is_minus_advantage_times_ratio_over_length() -> None:
    logprobs, old, advantages, mask = _two_sequences()
    logprobs.requires_grad_(True)
    (grad,) = torch.autograd.grad(grpo_loss(logprobs, old, advantages, mask).loss, logprobs)
    # d/dlogp of -(r A) / (|y_i| G) = -A r / (|y_i| G); G = 2, |y_0| = 2, |y_1| = 3.
    expected = torch.tensor(
        [[-1.1 / 4, 0.0, 0.0], [0.0, 0.9 / 6, 1.0 / 6]],
        dtype=F64,
    )
    torch.testing.assert_close(grad, expected, rtol=0.0, atol=1e-12)


@pytest.mark.parametrize(
    ("ratio", "advantage", "expected_grad"),
    [
        (1.5, 1.0, 0.0),  # beyond 1 + eps with A > 0: clipped, no gradient
        (0.5, -1.0, 0.0),  # below 1 - eps with A < 0: clipped, no gradient
        (1.5, -1.0, 1.5),  # beyond 1 + eps with A < 0: min keeps r A, gradient -A r
        (0.5, 1.0, -0.5),  # below 1 - eps with A > 0: min keeps r A, gradient -A r
    ],
)
def test_clipping_stops_gradient_only_on_the_clipped_side(
    ratio: float, advantage: float, expected_grad: float
) -> None:
    logprobs = torch.tensor([[math.log(ratio)]], dtype=F64, requires_grad=True)
    out = grpo_loss(
        logprobs,
        torch.zeros(1, 1, dtype=F64),
        torch.tensor([advantage], dtype=F64),
        torch.ones(1, 1, dtype=torch.bool),
    )
    (grad,) = torch.autograd.grad(out.loss, logprobs)
    assert grad.item() == pytest.approx(expected_grad, abs=1e-12)
    assert out.metrics.clip_fraction == (1.0 if expected_grad == 0.0 else 0.0)


@pytest.mark.parametrize("aggregation", ["sequence_mean", "token_mean"])
@pytest.mark.parametrize("kl_beta", [0.0, 0.05])
def test_gradcheck_with_masks(aggregation: Aggregation, kl_beta: float) -> None:
    generator = torch.Generator().manual_seed(3)
    old = -torch.rand(3, 4, generator=generator, dtype=F64) * 3.0
    # Log-ratios in (-0.1, 0.1) stay clear of the kinks at log 0.8 and log 1.2; one token far out
    # (ratio 1.6) exercises the flat clipped branch.
    log_ratio = (torch.rand(3, 4, generator=generator, dtype=F64) - 0.5) * 0.2
    log_ratio[0, 1] = math.log(1.6)
    logprobs = (old + log_ratio).requires_grad_(True)
    ref = (old + 0.3 * torch.randn(3, 4, generator=generator, dtype=F64)).requires_grad_(True)
    advantages = torch.tensor([0.7, -1.2, 0.4], dtype=F64)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [0, 0, 0, 0]])

    def loss_of(current: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        return grpo_loss(
            current,
            old,
            advantages,
            mask,
            ref_logprobs=reference,
            kl_beta=kl_beta,
            aggregation=aggregation,
        ).loss

    assert torch.autograd.gradcheck(loss_of, (logprobs, ref))


def test_sequence_without_valid_tokens_is_left_out() -> None:
    logprobs, old, advantages, mask = _two_sequences()
    padded_mask = torch.cat([mask, torch.zeros(1, 3, dtype=torch.bool)])
    padded = (
        torch.cat([logprobs, torch.full((1, 3), math.nan, dtype=F64)]),
        torch.cat([old, torch.zeros(1, 3, dtype=F64)]),
        torch.cat([advantages, torch.tensor([5.0], dtype=F64)]),
    )
    out = grpo_loss(*padded, padded_mask)
    assert out.loss.item() == pytest.approx(-0.125)
    assert out.metrics.valid_tokens == 5


def test_garbage_on_padding_reaches_neither_loss_nor_gradient() -> None:
    logprobs, old, advantages, mask = _two_sequences()
    logprobs = logprobs.clone()
    logprobs[0, 2] = -math.inf
    old = old.clone()
    old[0, 2] = math.nan
    token_advantages = advantages.unsqueeze(1).expand(2, 3).clone()
    token_advantages[0, 2] = math.nan
    logprobs.requires_grad_(True)
    out = grpo_loss(logprobs, old, token_advantages, mask, ref_logprobs=old, kl_beta=0.1)
    (grad,) = torch.autograd.grad(out.loss, logprobs)
    assert math.isfinite(out.loss.item())
    assert bool(torch.isfinite(grad).all())
    assert grad[0, 2].item() == 0.0


def test_float_mask_of_zeros_and_ones_is_accepted() -> None:
    logprobs, old, advantages, mask = _two_sequences()
    out = grpo_loss(logprobs, old, advantages, mask.to(F64))
    assert out.loss.item() == pytest.approx(-0.125)


def test_all_padding_batch_raises_value_error() -> None:
    logprobs, old, advantages, _ = _two_sequences()
    with pytest.raises(ValueError, match="padding"):
        grpo_loss(logprobs, old, advantages, torch.zeros(2, 3, dtype=torch.bool))


def _call_with(**overrides: object) -> None:
    logprobs, old, advantages, mask = _two_sequences()
    arguments: dict[str, object] = {
        "logprobs": logprobs,
        "old_logprobs": old,
        "advantages": advantages,
        "mask": mask,
    }
    arguments.update(overrides)
    grpo_loss(**arguments)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"old_logprobs": torch.zeros(2, 4, dtype=F64)}, "old_logprobs has shape"),
        ({"mask": torch.ones(2, 4, dtype=torch.bool)}, "mask has shape"),
        ({"ref_logprobs": torch.zeros(3, 3, dtype=F64)}, "ref_logprobs has shape"),
        ({"advantages": torch.zeros(3, dtype=F64)}, "advantages must be"),
        ({"logprobs": torch.zeros(2, 3, 1, dtype=F64)}, r"\[batch, seq\]"),
        ({"logprobs": torch.zeros(0, 3, dtype=F64)}, "empty"),
        ({"logprobs": torch.tensor([[0.0, math.nan, 0.0], [0.0] * 3], dtype=F64)}, "NaN"),
        ({"advantages": torch.tensor([math.inf, 0.0], dtype=F64)}, "advantages has NaN"),
        ({"mask": torch.full((2, 3), 0.5)}, "only 0 and 1"),
        ({"old_logprobs": torch.zeros(2, 3, dtype=torch.long)}, "floating-point"),
        ({"kl_beta": 0.1}, "needs ref_logprobs"),
        ({"kl_beta": -0.1, "ref_logprobs": torch.zeros(2, 3, dtype=F64)}, "kl_beta"),
        ({"clip_eps": 0.0}, "clip_eps"),
        ({"clip_eps": 1.0}, "clip_eps"),
        ({"clip_eps_high": -0.1}, "clip_eps_high"),
        ({"aggregation": "sum"}, "aggregation"),
    ],
)
def test_invalid_input_raises_value_error(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _call_with(**overrides)
