"""Hybrid reward (eq. 7): r = r_rule + r_theta + r_format, scalar and batched."""

import math

import pytest
import torch

from hybridrl.config.rewards import HybridRewardWeights
from hybridrl.rewards.hybrid import RewardParts, hybrid_reward, hybrid_reward_tensor


def test_default_weights_add_the_three_parts() -> None:
    assert hybrid_reward(1.0, 0.25, 1.0) == 2.25
    assert hybrid_reward(0.0, -0.5, 0.0) == -0.5


def test_weights_scale_each_part() -> None:
    weights = HybridRewardWeights(rule=2.0, model=0.5, format=0.0)
    assert hybrid_reward(1.0, 0.5, 1.0, weights=weights) == 2.25


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("position", [0, 1, 2])
def test_non_finite_part_raises(bad: float, position: int) -> None:
    parts = [1.0, 0.5, 1.0]
    parts[position] = bad
    with pytest.raises(ValueError, match="not finite"):
        hybrid_reward(*parts)


def test_tensor_variant_matches_eq_7_elementwise() -> None:
    rule = torch.tensor([1.0, 0.0, 1.0])
    model = torch.tensor([0.5, -0.25, 0.0])
    format_part = torch.tensor([1.0, 1.0, 0.0])
    weights = HybridRewardWeights(rule=1.0, model=2.0, format=0.5)
    total = hybrid_reward_tensor(rule, model, format_part, weights)
    torch.testing.assert_close(total, torch.tensor([2.5, 0.0, 1.0]))
    torch.testing.assert_close(
        hybrid_reward_tensor(rule, model, format_part), torch.tensor([2.5, 0.75, 1.0])
    )


def test_tensor_variant_promotes_integer_and_boolean_parts_to_float() -> None:
    total = hybrid_reward_tensor(
        torch.tensor([1, 0]),
        torch.tensor([0.5, 0.5], dtype=torch.float64),
        torch.tensor([True, False]),
    )
    assert total.dtype == torch.float64
    torch.testing.assert_close(total, torch.tensor([2.5, 0.5], dtype=torch.float64))
    ints = hybrid_reward_tensor(torch.tensor([1]), torch.tensor([0]), torch.tensor([1]))
    assert ints.dtype == torch.float32
    assert ints.tolist() == [2.0]


def test_tensor_variant_rejects_nan_and_bad_shapes() -> None:
    ok = torch.zeros(3)
    with pytest.raises(ValueError, match="model reward has NaN"):
        hybrid_reward_tensor(ok, torch.tensor([0.0, math.nan, 0.0]), ok)
    with pytest.raises(ValueError, match="share one shape"):
        hybrid_reward_tensor(ok, torch.zeros(2), ok)
    with pytest.raises(ValueError, match=r"format must have shape \[batch\]"):
        hybrid_reward_tensor(ok, ok, torch.zeros(3, 1))
    with pytest.raises(ValueError, match="empty"):
        hybrid_reward_tensor(torch.zeros(0), torch.zeros(0), torch.zeros(0))


def test_reward_parts_combine_keeps_parts_and_total() -> None:
    parts = RewardParts.combine(1.0, 0.25, 0.0, weights=HybridRewardWeights(model=4.0))
    assert parts == RewardParts(rule=1.0, model=0.25, format=0.0, total=2.0)


def test_reward_parts_reject_nan() -> None:
    with pytest.raises(ValueError, match="'model' is not finite"):
        RewardParts(rule=1.0, model=math.nan, format=1.0, total=2.0)
    with pytest.raises(ValueError, match="not finite"):
        RewardParts.combine(1.0, math.nan, 1.0)


def test_reward_parts_are_frozen() -> None:
    parts = RewardParts(rule=1.0, model=0.0, format=1.0, total=2.0)
    with pytest.raises(AttributeError):
        parts.total = 3.0  # type: ignore[misc]
