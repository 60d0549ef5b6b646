"""Advantage-estimator and policy-loss registries: lookup by name, duplicates, unknown names."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from hybridrl.algo.advantages import group_advantages
from hybridrl.algo.grpo import grpo_loss
from hybridrl.algo.mpo import mpo_loss
from hybridrl.algo.registry import (
    Registry,
    advantage_estimator_names,
    get_advantage_estimator,
    get_policy_loss,
    policy_loss_names,
    register_advantage_estimator,
    register_policy_loss,
)


def test_builtin_functions_are_registered_by_name() -> None:
    assert get_advantage_estimator("grpo") is group_advantages
    assert get_policy_loss("grpo") is grpo_loss
    assert get_policy_loss("mpo") is mpo_loss
    assert {"grpo", "dr_grpo"} <= set(advantage_estimator_names())
    assert {"grpo", "mpo"} <= set(policy_loss_names())


def test_dr_grpo_estimator_only_centres_rewards() -> None:
    result = get_advantage_estimator("dr_grpo")([[1.0, 0.0, 0.0, 0.0]])
    assert result.advantages[0].tolist() == pytest.approx([0.75, -0.25, -0.25, -0.25])


def test_registered_policy_loss_is_callable_by_name() -> None:
    loss = get_policy_loss("grpo")(
        torch.zeros(1, 2),
        torch.zeros(1, 2),
        torch.tensor([1.0]),
        torch.ones(1, 2, dtype=torch.bool),
    ).loss
    # ratio 1 everywhere, A = 1: loss = -1
    assert loss.item() == pytest.approx(-1.0)


def test_unknown_name_lists_registered_names() -> None:
    with pytest.raises(ValueError, match=r"unknown policy loss 'ppo'.*grpo"):
        get_policy_loss("ppo")
    with pytest.raises(ValueError, match=r"unknown advantage estimator 'gae'.*dr_grpo"):
        get_advantage_estimator("gae")


def test_reregistering_the_same_function_is_harmless() -> None:
    assert register_policy_loss("grpo")(grpo_loss) is grpo_loss
    assert register_advantage_estimator("grpo")(group_advantages) is group_advantages
    assert get_policy_loss("grpo") is grpo_loss


def test_taken_name_cannot_be_rebound_to_another_function() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_policy_loss("grpo")(mpo_loss)
    assert get_policy_loss("grpo") is grpo_loss


def test_registry_registers_and_returns_new_functions() -> None:
    registry: Registry[Callable[[int], int]] = Registry("transform")

    @registry.register("double")
    def double(value: int) -> int:
        return 2 * value

    assert registry.get("double")(4) == 8
    assert "double" in registry
    assert "triple" not in registry
    registry.register("add_one")(lambda value: value + 1)
    assert registry.names() == ["add_one", "double"]
    with pytest.raises(ValueError, match="non-empty"):
        registry.register("")
