"""GRPO and MPO settings: defaults, agreement with the loss functions, validation, immutability."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import pydantic
import pytest

from hybridrl.algo.advantages import group_advantages
from hybridrl.algo.grpo import grpo_loss
from hybridrl.algo.mpo import mpo_loss
from hybridrl.config.losses import GRPOConfig, MPOConfig


def _default(function: Callable[..., Any], parameter: str) -> object:
    return inspect.signature(function).parameters[parameter].default


def test_grpo_defaults() -> None:
    config = GRPOConfig()
    assert config.clip_eps == 0.2
    assert config.clip_eps_high is None
    assert config.kl_beta == 0.04
    assert config.aggregation == "sequence_mean"
    assert config.advantage_estimator == "grpo"
    assert config.advantage_eps == 1e-6
    assert config.advantage_std_tol == 1e-6


def test_grpo_defaults_agree_with_the_functions() -> None:
    config = GRPOConfig()
    assert config.clip_eps == _default(grpo_loss, "clip_eps")
    assert config.clip_eps_high == _default(grpo_loss, "clip_eps_high")
    assert config.aggregation == _default(grpo_loss, "aggregation")
    assert config.advantage_eps == _default(group_advantages, "eps")
    assert config.advantage_std_tol == _default(group_advantages, "std_tol")


def test_mpo_defaults_follow_internvl_and_the_function() -> None:
    config = MPOConfig()
    assert (config.beta, config.w_preference, config.w_quality, config.w_generation) == (
        0.1,
        0.8,
        0.2,
        1.0,
    )
    assert config.shift_decay is None
    for field in ("beta", "w_preference", "w_quality", "w_generation"):
        assert getattr(config, field) == _default(mpo_loss, field)


@pytest.mark.parametrize("model", [GRPOConfig, MPOConfig])
def test_every_field_is_documented(model: type[pydantic.BaseModel]) -> None:
    for name, field in model.model_fields.items():
        assert field.description, f"{model.__name__}.{name} has no description"
        assert "Default" in field.description


def test_configs_are_frozen_and_forbid_unknown_fields() -> None:
    config = GRPOConfig()
    with pytest.raises(pydantic.ValidationError):
        config.clip_eps = 0.3
    with pytest.raises(pydantic.ValidationError, match="extra"):
        MPOConfig.model_validate({"beta": 0.1, "loss_type": "sigmoid"})


def test_configs_load_from_plain_mappings() -> None:
    config = GRPOConfig.model_validate(
        {"clip_eps": 0.2, "clip_eps_high": 0.28, "aggregation": "token_mean", "kl_beta": 0.0}
    )
    assert config.clip_eps_high == 0.28
    assert config.aggregation == "token_mean"
    assert MPOConfig.model_validate({"shift_decay": 0.99}).shift_decay == 0.99


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"clip_eps": 0.0}, "clip_eps"),
        ({"clip_eps": 1.0}, "clip_eps"),
        ({"clip_eps": -0.1}, "clip_eps"),
        ({"clip_eps": math.nan}, "clip_eps"),
        ({"clip_eps_high": 0.0}, "clip_eps_high"),
        ({"clip_eps_high": 0.1}, "must be >= clip_eps"),  # narrower than clip_eps 0.2
        ({"kl_beta": -0.01}, "kl_beta"),
        ({"kl_beta": math.inf}, "kl_beta"),
        ({"aggregation": "sum"}, "aggregation"),
        ({"advantage_estimator": "gae"}, "advantage_estimator"),
        ({"advantage_eps": -1e-6}, "advantage_eps"),
        ({"advantage_std_tol": -1.0}, "advantage_std_tol"),
    ],
)
def test_grpo_rejects_out_of_range_values(values: dict[str, object], message: str) -> None:
    # pydantic.ValidationError is a ValueError, so callers can catch either.
    with pytest.raises(ValueError, match=message):
        GRPOConfig.model_validate(values)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"beta": 0.0}, "beta"),
        ({"beta": -0.1}, "beta"),
        ({"w_preference": -0.1}, "w_preference"),
        ({"w_quality": -1.0}, "w_quality"),
        ({"w_generation": math.nan}, "w_generation"),
        ({"w_preference": 0.0, "w_quality": 0.0, "w_generation": 0.0}, "at least one"),
        ({"shift_decay": 0.0}, "shift_decay"),
        ({"shift_decay": 1.0}, "shift_decay"),
    ],
)
def test_mpo_rejects_out_of_range_values(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MPOConfig.model_validate(values)
