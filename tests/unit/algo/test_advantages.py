"""Group-relative advantages (eq. 6): hand-computed values, verl's conventions, bad input."""

from __future__ import annotations

import math
from collections import defaultdict

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridrl.algo.advantages import group_advantages


def test_advantages_use_unbiased_std_plus_eps() -> None:
    # mean 2.5; unbiased var = (2.25 + 0.25 + 0.25 + 2.25) / 3 = 5/3; std = 1.2909944487358056;
    # A = (r - 2.5) / (1.2909944487358056 + 1e-6).
    result = group_advantages(torch.tensor([[1.0, 2.0, 3.0, 4.0]], dtype=torch.float64))
    expected = torch.tensor(
        [[-1.1618941038629222, -0.3872980346209741, 0.3872980346209741, 1.1618941038629222]],
        dtype=torch.float64,
    )
    torch.testing.assert_close(result.advantages, expected, rtol=0.0, atol=1e-12)
    torch.testing.assert_close(result.group_mean, torch.tensor([2.5], dtype=torch.float64))
    torch.testing.assert_close(
        result.group_std, torch.tensor([1.2909944487358056], dtype=torch.float64)
    )
    assert result.effective_mask.tolist() == [True]


def test_binary_rewards_hand_computed() -> None:
    # [1, 0, 0, 0]: mean 0.25, unbiased var = (0.5625 + 3 * 0.0625) / 3 = 0.25, std 0.5;
    # A = 0.75 / 0.500001 = 1.499997000006 and -0.25 / 0.500001 = -0.499999000002.
    result = group_advantages([[1.0, 0.0, 0.0, 0.0]])
    assert result.advantages.dtype == torch.get_default_dtype()
    assert result.advantages[0].tolist() == pytest.approx(
        [1.499997000006, -0.499999000002, -0.499999000002, -0.499999000002], abs=1e-6
    )


def test_without_std_normalisation_advantage_is_centred_reward() -> None:
    # Dr.GRPO: r - mean = [1, 0, 0, 0] - 0.25.
    result = group_advantages([[1.0, 0.0, 0.0, 0.0]], normalize_std=False)
    assert result.advantages[0].tolist() == pytest.approx([0.75, -0.25, -0.25, -0.25], abs=1e-7)


def test_zero_variance_group_gives_zero_advantage() -> None:
    rewards = torch.tensor([[1.0, 1.0, 1.0], [0.0, 1.0, 2.0], [0.0, 0.0, 0.0]])
    result = group_advantages(rewards)
    assert result.effective_mask.tolist() == [False, True, False]
    assert result.advantages[0].tolist() == [0.0, 0.0, 0.0]
    assert result.advantages[2].tolist() == [0.0, 0.0, 0.0]
    # Middle group: mean 1, std 1 -> A = [-1, 0, 1] / (1 + 1e-6).
    assert result.advantages[1].tolist() == pytest.approx([-1 / 1.000001, 0.0, 1 / 1.000001])


def test_equal_rewards_stay_exactly_zero_when_float32_mean_rounds() -> None:
    # The float32 mean of eight 1.7s is one ulp off 1.7 and the std is ~1.3e-7, so the plain
    # (r - mean) / (std + eps) would give about 0.106 to every response of a signal-free group.
    rewards = torch.full((1, 8), 1.7, dtype=torch.float32)
    assert rewards.mean().item() != rewards[0, 0].item()
    for std_tol in (1e-6, 0.0):
        result = group_advantages(rewards, std_tol=std_tol)
        assert result.effective_mask.tolist() == [False]
        assert result.advantages.abs().max().item() == 0.0


def test_std_tol_marks_near_equal_groups_ineffective() -> None:
    rewards = torch.tensor([[1.0, 1.0 + 1e-9, 1.0]], dtype=torch.float64)
    assert group_advantages(rewards).effective_mask.tolist() == [False]
    loose = group_advantages(rewards, std_tol=0.0)
    assert loose.effective_mask.tolist() == [True]
    assert loose.advantages.abs().max().item() > 0.0


def test_matches_verl_grpo_outcome_advantage_in_float64() -> None:
    # verl's loop restated: per-index mean and torch.std, then (score - mean) / (std + 1e-6).
    generator = torch.Generator().manual_seed(7)
    rewards = torch.randn(32, 8, generator=generator, dtype=torch.float64)
    rewards[5] = torch.tensor([1.0, 0, 0, 1, 1, 0, 0, 0], dtype=torch.float64)
    flat = rewards.reshape(-1)
    by_group: dict[int, list[torch.Tensor]] = defaultdict(list)
    for position, score in enumerate(flat):
        by_group[position // 8].append(score)
    expected = torch.stack(
        [
            (score - torch.stack(by_group[p // 8]).mean())
            / (torch.stack(by_group[p // 8]).std() + 1e-6)
            for p, score in enumerate(flat)
        ]
    ).reshape(32, 8)
    result = group_advantages(rewards)
    torch.testing.assert_close(result.advantages, expected, rtol=0.0, atol=1e-6)


def test_integer_rewards_become_floating_point() -> None:
    result = group_advantages(torch.tensor([[1, 0], [0, 0]]))
    assert result.advantages.is_floating_point()
    # [1, 0]: mean 0.5, unbiased std sqrt(0.5) = 0.7071067811865476.
    assert result.advantages[0].tolist() == pytest.approx(
        [0.5 / (0.7071067811865476 + 1e-6), -0.5 / (0.7071067811865476 + 1e-6)]
    )
    assert result.effective_mask.tolist() == [True, False]


def test_result_is_detached_from_rewards_graph() -> None:
    rewards = torch.tensor([[0.0, 1.0, 3.0]], requires_grad=True)
    result = group_advantages(rewards)
    assert not result.advantages.requires_grad
    assert not result.group_mean.requires_grad


@pytest.mark.parametrize(
    ("rewards", "message"),
    [
        ([[1.0, 0.0], [1.0]], "ragged"),
        ([], "empty"),
        (torch.zeros(0, 4), "empty"),
        ([[1.0], [0.0]], "group_size"),
        ([[1.0, math.nan]], "NaN"),
        ([[1.0, math.inf]], "NaN or infinite"),
        (torch.tensor([1.0, 0.0]), r"\[num_groups, group_size\]"),
    ],
)
def test_invalid_rewards_raise_value_error(rewards: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        group_advantages(rewards)  # type: ignore[arg-type]


def test_negative_eps_or_std_tol_raise_value_error() -> None:
    with pytest.raises(ValueError, match="eps"):
        group_advantages([[0.0, 1.0]], eps=-1e-6)
    with pytest.raises(ValueError, match="std_tol"):
        group_advantages([[0.0, 1.0]], std_tol=-1.0)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.floats(min_value=-100.0, max_value=100.0, allow_nan=False),
        min_size=2,
        max_size=16,
    ).filter(lambda values: max(values) - min(values) > 1e-3)
)
def test_effective_group_advantages_have_zero_mean_and_shrunk_unit_std(
    values: list[float],
) -> None:
    rewards = torch.tensor([values], dtype=torch.float64)
    result = group_advantages(rewards)
    assert result.effective_mask.tolist() == [True]
    advantages = result.advantages[0]
    assert advantages.mean().item() == pytest.approx(0.0, abs=1e-9)
    # std(A) = std / (std + eps): one up to the eps effect.
    std = result.group_std.item()
    assert advantages.std().item() == pytest.approx(std / (std + 1e-6), rel=1e-9)
