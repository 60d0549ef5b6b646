"""MPO losses (eqs. 2-5) and the BCO reward shift: hand-computed values, gradients, state."""

from __future__ import annotations

import json
import math

import pytest
import torch

from hybridrl.algo.mpo import (
    RewardShift,
    bco_loss,
    dpo_loss,
    implicit_rewards,
    mpo_loss,
    nll_loss,
)

F64 = torch.float64


def _pair() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One pair: chosen log-ratio pc - rc = +1, rejected log-ratio pr - rr = -1."""
    policy_chosen = torch.tensor([-10.0], dtype=F64)
    policy_rejected = torch.tensor([-12.0], dtype=F64)
    ref_chosen = torch.tensor([-11.0], dtype=F64)
    ref_rejected = torch.tensor([-11.0], dtype=F64)
    return policy_chosen, policy_rejected, ref_chosen, ref_rejected


def test_dpo_loss_hand_computed() -> None:
    # logits = (pc - rc) - (pr - rr) = 1 - (-1) = 2; -log sigmoid(0.1 * 2) = log(1 + e^-0.2)
    # = log(1.8187307531) = 0.5981388693815918.
    losses = dpo_loss(*_pair(), 0.1)
    assert losses.shape == (1,)
    assert losses.item() == pytest.approx(0.5981388693815918, abs=1e-12)


def test_dpo_gradient_wrt_policy_chosen_is_minus_beta_sigmoid_of_minus_logit() -> None:
    policy_chosen, policy_rejected, ref_chosen, ref_rejected = _pair()
    policy_chosen.requires_grad_(True)
    loss = dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, 0.1).sum()
    (grad,) = torch.autograd.grad(loss, policy_chosen)
    # -beta * sigmoid(-beta * logits) = -0.1 / (1 + e^0.2) = -0.04501660026875222
    assert grad.item() == pytest.approx(-0.04501660026875222, abs=1e-12)


def test_bco_loss_hand_computed() -> None:
    # chosen logit 0.1 * 1 - 0.05 = 0.05; rejected 0.1 * (-1) - 0.05 = -0.15;
    # -log sigmoid(0.05) - log sigmoid(0.15) = log(1 + e^-0.05) + log(1 + e^-0.15)
    # = 0.6684596480132863 + 0.6209570477895321.
    losses = bco_loss(*_pair(), 0.1, delta=0.05)
    assert losses.item() == pytest.approx(1.2894166958028184, abs=1e-12)


def test_bco_with_zero_delta_on_zero_logratios_is_two_log_two() -> None:
    zeros = torch.zeros(3, dtype=F64)
    losses = bco_loss(zeros, zeros, zeros, zeros, 0.1, delta=0.0)
    torch.testing.assert_close(losses, torch.full((3,), 2 * math.log(2.0), dtype=F64))


def test_nll_loss_divides_each_sample_by_its_length() -> None:
    losses = nll_loss(torch.tensor([-12.0, -6.0], dtype=F64), torch.tensor([4, 3]))
    assert losses.tolist() == pytest.approx([3.0, 2.0])


def test_mpo_loss_combines_components_with_internvl_weights() -> None:
    policy_chosen, policy_rejected, ref_chosen, ref_rejected = _pair()
    out = mpo_loss(
        policy_chosen,
        policy_rejected,
        ref_chosen,
        ref_rejected,
        torch.tensor([5]),
        delta=0.05,
    )
    # pref 0.5981388693815918, qual 1.2894166958028184, gen 10 / 5 = 2;
    # 0.8 * 0.59813887 + 0.2 * 1.28941670 + 1.0 * 2 = 2.7363944347
    expected = 0.8 * 0.5981388693815918 + 0.2 * 1.2894166958028184 + 2.0
    assert out.loss.item() == pytest.approx(expected, abs=1e-12)
    assert out.preference_loss.item() == pytest.approx(0.5981388693815918, abs=1e-12)
    assert out.quality_loss.item() == pytest.approx(1.2894166958028184, abs=1e-12)
    assert out.generation_loss.item() == pytest.approx(2.0)
    # implicit rewards beta * log-ratio: 0.1 * 1 and 0.1 * (-1)
    assert out.chosen_rewards.tolist() == pytest.approx([0.1])
    assert out.rejected_rewards.tolist() == pytest.approx([-0.1])
    metrics = out.as_metrics()
    assert metrics["reward_margin"] == pytest.approx(0.2)
    assert metrics["reward_accuracy"] == 1.0


def test_mpo_outputs_other_than_loss_are_detached() -> None:
    policy_chosen, policy_rejected, ref_chosen, ref_rejected = _pair()
    policy_chosen.requires_grad_(True)
    out = mpo_loss(
        policy_chosen, policy_rejected, ref_chosen, ref_rejected, torch.tensor([5]), delta=0.0
    )
    assert out.loss.requires_grad
    for tensor in (out.preference_loss, out.chosen_rewards, out.rejected_rewards):
        assert not tensor.requires_grad


def test_mpo_weights_select_components() -> None:
    pairs = _pair()
    lengths = torch.tensor([5])
    only_preference = mpo_loss(
        *pairs, lengths, delta=0.05, w_preference=1.0, w_quality=0.0, w_generation=0.0
    )
    assert only_preference.loss.item() == pytest.approx(0.5981388693815918, abs=1e-12)


def _random_batch(seed: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(4, generator=generator, dtype=F64) * 5 - 20).requires_grad_(True)
        for _ in range(4)
    ]


def test_gradcheck_dpo_bco_nll() -> None:
    batch = _random_batch(11)
    lengths = torch.tensor([3.0, 7.0, 1.0, 12.0], dtype=F64)

    def dpo(pc: torch.Tensor, pr: torch.Tensor, rc: torch.Tensor, rr: torch.Tensor) -> torch.Tensor:
        return dpo_loss(pc, pr, rc, rr, 0.3)

    def bco(pc: torch.Tensor, pr: torch.Tensor, rc: torch.Tensor, rr: torch.Tensor) -> torch.Tensor:
        return bco_loss(pc, pr, rc, rr, 0.3, delta=-0.2)

    assert torch.autograd.gradcheck(dpo, batch)
    assert torch.autograd.gradcheck(bco, batch)
    assert torch.autograd.gradcheck(lambda x: nll_loss(x, lengths), (batch[0],))


def test_gradcheck_mpo_total_loss() -> None:
    batch = _random_batch(12)
    lengths = torch.tensor([3, 7, 1, 12])

    def total(
        pc: torch.Tensor, pr: torch.Tensor, rc: torch.Tensor, rr: torch.Tensor
    ) -> torch.Tensor:
        return mpo_loss(pc, pr, rc, rr, lengths, delta=0.1, beta=0.2).loss

    assert torch.autograd.gradcheck(total, batch)


def test_implicit_rewards_are_beta_log_ratios() -> None:
    rewards = implicit_rewards(
        torch.tensor([-3.0, -5.0], dtype=F64), torch.tensor([-4.0, -4.0], dtype=F64), 0.5
    )
    assert rewards.tolist() == pytest.approx([0.5, -0.5])


def test_reward_shift_running_mean_of_batch_means() -> None:
    shift = RewardShift()
    assert shift.delta == 0.0
    # batch 1: mean(0.2, 0.4, -0.2, 0.0) = 0.1
    first = shift.update(torch.tensor([0.2, 0.4]), torch.tensor([-0.2, 0.0]))
    assert first == pytest.approx(0.1)
    # batch 2: mean(1.0, 0.0) = 0.5; running mean (0.1 + 0.5) / 2 = 0.3
    assert shift.update(torch.tensor([1.0]), torch.tensor([0.0])) == pytest.approx(0.3)
    # two ranks' mean 0.9 counts twice: (0.1 + 0.5 + 2 * 0.9) / 4 = 0.6
    assert shift.update_from_mean(0.9, count=2) == pytest.approx(0.6)
    assert shift.count == 4
    assert shift.delta == pytest.approx(0.6)


def test_reward_shift_follows_trl_running_moments_recurrence() -> None:
    # TRL's RunningMoments: count starts at 1e-24 and each bco_pair step folds in one value,
    # mean += (x - mean) * 1 / (count + 1).
    batch_means = [0.3, -1.2, 0.05, 2.5, 0.7]
    trl_mean, trl_count = 0.0, 1e-24
    shift = RewardShift()
    for value in batch_means:
        trl_count += 1
        trl_mean += (value - trl_mean) / trl_count
        assert shift.update_from_mean(value) == pytest.approx(trl_mean, abs=1e-12)
    assert shift.delta == pytest.approx(sum(batch_means) / len(batch_means), abs=1e-12)


def test_reward_shift_exponential_moving_average() -> None:
    shift = RewardShift(decay=0.9)
    assert shift.update_from_mean(0.1) == pytest.approx(0.1)  # starts at the first batch mean
    assert shift.update_from_mean(0.5) == pytest.approx(0.9 * 0.1 + 0.1 * 0.5)  # 0.14


def test_reward_shift_state_round_trips_through_json() -> None:
    shift = RewardShift(decay=0.95)
    for value in (0.3, -0.1, 0.7):
        shift.update_from_mean(value)
    state = json.loads(json.dumps(shift.state_dict()))
    restored = RewardShift(decay=0.95)
    restored.load_state_dict(state)
    assert restored.state_dict() == shift.state_dict()
    assert restored.update_from_mean(1.25) == shift.update_from_mean(1.25)


def test_reward_shift_rejects_mismatched_or_malformed_state() -> None:
    state = RewardShift().state_dict()
    with pytest.raises(ValueError, match="decay"):
        RewardShift(decay=0.9).load_state_dict(state)
    with pytest.raises(ValueError, match="keys"):
        RewardShift().load_state_dict({"mean": 0.0})
    with pytest.raises(ValueError, match="count"):
        RewardShift().load_state_dict({"mean": 0.0, "count": -1, "decay": None})
    with pytest.raises(ValueError, match="mean"):
        RewardShift().load_state_dict({"mean": math.nan, "count": 1, "decay": None})


def test_reward_shift_rejects_bad_updates() -> None:
    with pytest.raises(ValueError, match="decay"):
        RewardShift(decay=1.0)
    with pytest.raises(ValueError, match="finite"):
        RewardShift().update(torch.tensor([math.nan]), torch.tensor([0.0]))
    with pytest.raises(ValueError, match="no rewards"):
        RewardShift().update(torch.zeros(0), torch.zeros(0))
    with pytest.raises(ValueError, match="count"):
        RewardShift().update_from_mean(0.1, count=0)


@pytest.mark.parametrize(
    ("policy_chosen", "message"),
    [
        (torch.tensor([math.nan], dtype=F64), "NaN"),
        (torch.zeros(0, dtype=F64), "empty"),
        (torch.zeros(2, dtype=F64), "shape"),
        (torch.zeros(1, 1, dtype=F64), r"\[batch\]"),
        (torch.tensor([-3]), "floating-point"),
    ],
)
def test_pair_losses_reject_bad_logps(policy_chosen: torch.Tensor, message: str) -> None:
    _, policy_rejected, ref_chosen, ref_rejected = _pair()
    with pytest.raises(ValueError, match=message):
        dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    with pytest.raises(ValueError, match=message):
        bco_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, delta=0.0)


def test_bad_parameters_raise_value_error() -> None:
    pairs = _pair()
    lengths = torch.tensor([5])
    with pytest.raises(ValueError, match="beta"):
        dpo_loss(*pairs, 0.0)
    with pytest.raises(ValueError, match="delta"):
        bco_loss(*pairs, delta=math.inf)
    with pytest.raises(ValueError, match="w_quality"):
        mpo_loss(*pairs, lengths, delta=0.0, w_quality=-0.1)
    with pytest.raises(ValueError, match="chosen_lengths"):
        nll_loss(pairs[0], torch.tensor([0]))
    with pytest.raises(ValueError, match="chosen_lengths has shape"):
        nll_loss(pairs[0], torch.tensor([1, 2]))
