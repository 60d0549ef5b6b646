"""Reward settings: defaults, validation, immutability, unknown fields."""

import pydantic
import pytest

from hybridrl.config.rewards import (
    FormatRewardConfig,
    HybridRewardWeights,
    RewardsConfig,
    RuleRewardConfig,
    ScorerPoolConfig,
)


def test_defaults_follow_the_paper_and_the_documented_bounds() -> None:
    config = RewardsConfig()
    assert (config.weights.rule, config.weights.model, config.weights.format) == (1.0, 1.0, 1.0)
    assert config.rule.relative_tolerance == 1e-6
    assert config.rule.max_expression_chars == 512
    assert config.rule.fall_back_to_thinking is True
    assert config.format.require_final_answer is False
    assert (config.pool.workers, config.pool.start_method) == (2, "forkserver")


def test_configs_load_from_plain_mappings() -> None:
    config = RewardsConfig.model_validate(
        {
            "rule": {"relative_tolerance": 0.01, "verify_timeout_seconds": 3},
            "weights": {"model": 0.5},
            "pool": {"workers": 4, "item_deadline_seconds": 8.0},
        }
    )
    assert config.rule.relative_tolerance == 0.01
    assert config.rule.verify_timeout_seconds == 3
    assert config.weights == HybridRewardWeights(rule=1.0, model=0.5, format=1.0)
    assert config.pool.workers == 4


@pytest.mark.parametrize(
    ("model", "values"),
    [
        (RuleRewardConfig, {"relative_tolerance": -0.1}),
        (RuleRewardConfig, {"parse_timeout_seconds": 0}),
        (RuleRewardConfig, {"max_expression_chars": 1}),
        (HybridRewardWeights, {"rule": float("nan")}),
        (HybridRewardWeights, {"format": -1.0}),
        (ScorerPoolConfig, {"workers": 0}),
        (ScorerPoolConfig, {"item_deadline_seconds": 0.0}),
        (ScorerPoolConfig, {"start_method": "fork"}),
    ],
)
def test_invalid_values_are_rejected(
    model: type[pydantic.BaseModel], values: dict[str, object]
) -> None:
    with pytest.raises(pydantic.ValidationError):
        model.model_validate(values)


@pytest.mark.parametrize(
    "model",
    [RuleRewardConfig, FormatRewardConfig, HybridRewardWeights, ScorerPoolConfig, RewardsConfig],
)
def test_unknown_fields_are_rejected(model: type[pydantic.BaseModel]) -> None:
    with pytest.raises(pydantic.ValidationError, match="Extra inputs are not permitted"):
        model.model_validate({"typo_field": 1})


def test_configs_are_frozen() -> None:
    config = RuleRewardConfig()
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        config.relative_tolerance = 0.5


def test_deadline_shorter_than_math_verify_timeout_is_rejected() -> None:
    with pytest.raises(pydantic.ValidationError, match="item_deadline_seconds"):
        RewardsConfig(
            rule=RuleRewardConfig(parse_timeout_seconds=5, verify_timeout_seconds=5),
            pool=ScorerPoolConfig(item_deadline_seconds=2.0),
        )
