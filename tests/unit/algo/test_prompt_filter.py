"""filter_prompts: the offline pre-filter keeps prompts whose rewards vary."""

import math

import pytest

from hybridrl.algo.prompt_filter import filter_prompts, reward_std


def test_reward_std_is_the_population_standard_deviation() -> None:
    assert reward_std([0.0, 1.0]) == 0.5
    assert reward_std([1.0, 2.0, 3.0, 4.0]) == pytest.approx(math.sqrt(1.25))
    assert reward_std([3.0, 3.0, 3.0]) == 0.0


def test_prompts_with_reward_variance_are_kept_in_order() -> None:
    result = filter_prompts(
        {
            "all-correct": [1.0, 1.0, 1.0, 1.0],
            "mixed": [0.0, 1.0, 0.0, 0.0],
            "single": [0.5],
            "noise": [0.0, 0.0, 1e-9],
            "all-wrong": [0.0, 0.0, 0.0],
            "graded": [0.2, 0.9],
        },
        tolerance=1e-6,
    )
    assert result.kept == ["mixed", "graded"]
    assert result.dropped == ["all-correct", "single", "noise", "all-wrong"]
    assert result.kept_fraction == pytest.approx(2 / 6)
    assert result.dropped_fraction == pytest.approx(4 / 6)


def test_zero_tolerance_keeps_any_difference() -> None:
    result = filter_prompts({"tiny": [0.0, 1e-9], "flat": [2.0, 2.0]}, tolerance=0.0)
    assert (result.kept, result.dropped) == (["tiny"], ["flat"])


@pytest.mark.parametrize(
    ("rewards", "tolerance", "message"),
    [
        ({}, 1e-6, "at least one prompt"),
        ({"a": []}, 1e-6, "'a': a reward group must not be empty"),
        ({"a": [0.0, math.nan]}, 1e-6, "finite"),
        ({"a": [0.0, math.inf]}, 1e-6, "finite"),
        ({"a": [0.0, 1.0]}, -1.0, "tolerance"),
    ],
)
def test_invalid_input_raises_value_error(
    rewards: dict[str, list[float]], tolerance: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        filter_prompts(rewards, tolerance)
