"""Loading r_theta's model: none, the tiny model from a seed, or a saved directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from hybridrl_services.reward.reward_model_source import load_reward_model, tiny_reward_model
from hybridrl_services.reward.settings import RewardModelSettings

from hybridrl.rewards.reward_model import RewardModelInput, RewardScoringConfig

ITEMS = [
    RewardModelInput("What is 2+3?", "<think>2 plus 3</think> \\boxed{5}"),
    RewardModelInput("What is 2+3?", "\\boxed{6}"),
]


def test_no_model_is_none() -> None:
    assert load_reward_model(RewardModelSettings(source="none")) is None


def test_tiny_model_depends_on_its_seed_only_and_is_bounded_by_its_context() -> None:
    first = load_reward_model(RewardModelSettings(source="tiny", tiny_seed=3))
    second = load_reward_model(RewardModelSettings(source="tiny", tiny_seed=3))
    other = load_reward_model(RewardModelSettings(source="tiny", tiny_seed=4))
    assert first is not None
    assert second is not None
    assert other is not None
    assert first.score(ITEMS) == second.score(ITEMS)
    assert first.score(ITEMS) != other.score(ITEMS)
    assert first.config.max_length == 512
    with pytest.raises(ValueError, match="max_length is 512"):
        first.score([RewardModelInput("", "x" * 600)])


def test_a_saved_model_loads_with_the_same_scores(tmp_path: Path) -> None:
    saved = tiny_reward_model(seed=5, config=RewardScoringConfig(scale=2.0))
    saved.model.save_pretrained(tmp_path / "reward")
    settings = RewardModelSettings(
        source=str(tmp_path / "reward"), tokenizer="builtin", scoring=RewardScoringConfig(scale=2.0)
    )
    loaded = load_reward_model(settings)
    assert loaded is not None
    assert loaded.score(ITEMS) == pytest.approx(saved.score(ITEMS), abs=1e-6)
    assert all(0.0 < score < 2.0 for score in loaded.score(ITEMS))


def test_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        load_reward_model(RewardModelSettings(source=str(tmp_path / "absent"), tokenizer="builtin"))
