"""LearnerConfig: defaults, derived sizes, and rejection of bad values."""

import pydantic
import pytest

from hybridrl.config.learner import LearnerConfig, WarmupConfig


def test_defaults_train_the_adapter_on_colour_after_a_blank_image_warm_up() -> None:
    config = LearnerConfig()
    assert config.freeze_mode == "adapter"
    assert config.warmup.images == "blank"
    assert config.warmup.freeze_mode == "llm+adapter"
    assert config.task_kinds == ("colour",)
    assert config.grpo.kl_beta == 0.0
    assert config.mpo_pairs.threshold == 1.0
    assert config.ssb.enabled


def test_grpo_batch_places_default_to_one_step_of_rollouts() -> None:
    config = LearnerConfig(prompts_per_step=4, group_size=6)
    assert config.rollouts_per_step == 24
    assert config.grpo_batch_places == 24
    assert (
        LearnerConfig(prompts_per_step=4, group_size=6, grpo_batch_size=10).grpo_batch_places == 10
    )


def test_nested_settings_load_from_plain_data() -> None:
    config = LearnerConfig.model_validate(
        {
            "warmup": {"steps": 3, "images": "shuffled"},
            "ssb": {"enabled": False},
            "grpo": {"kl_beta": 0.1},
        }
    )
    assert config.warmup == WarmupConfig(steps=3, images="shuffled")
    assert not config.ssb.enabled
    assert config.grpo.kl_beta == 0.1


@pytest.mark.parametrize(
    "overrides",
    [
        {"group_size": 1},
        {"temperature": 0.0},
        {"task_kinds": []},
        {"task_kinds": ["juggling"]},
        {"freeze_mode": "lm"},
        {"warmup": {"images": "noise"}},
        {"learning_rate": 1e-3},
        {"minibatches_per_step": 0},
    ],
)
def test_bad_values_and_unknown_fields_are_rejected(overrides: dict[str, object]) -> None:
    with pytest.raises(pydantic.ValidationError):
        LearnerConfig.model_validate(overrides)


def test_config_is_frozen() -> None:
    config = LearnerConfig()
    with pytest.raises(pydantic.ValidationError):
        config.grpo_steps = 3  # type: ignore[misc]
