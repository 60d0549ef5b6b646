"""The phase learning-rate schedule, against hand-computed values."""

import math

import pytest

from hybridrl.learner.schedule import phase_learning_rate


def test_cosine_runs_from_the_base_rate_to_its_floor() -> None:
    rates = [phase_learning_rate(3e-3, step, 5, "cosine", 0.1) for step in range(5)]
    # progress 0, 1/4, 1/2, 3/4, 1: (1 + cos(pi p)) / 2 = 1, 0.8536, 0.5, 0.1464, 0.
    expected = [3e-3 * (0.1 + 0.9 * (1 + math.cos(math.pi * k / 4)) / 2) for k in range(5)]
    assert rates == pytest.approx(expected, rel=1e-12)
    assert rates[0] == pytest.approx(3e-3)
    assert rates[2] == pytest.approx(3e-3 * 0.55)
    assert rates[-1] == pytest.approx(3e-4)


def test_constant_and_one_step_phases_keep_the_base_rate() -> None:
    assert phase_learning_rate(1e-3, 7, 10, "constant", 0.1) == 1e-3
    assert phase_learning_rate(1e-3, 0, 1, "cosine", 0.1) == 1e-3


@pytest.mark.parametrize(
    ("step", "steps", "ratio", "message"),
    [(5, 5, 0.1, "outside a phase"), (-1, 5, 0.1, "outside a phase"), (0, 5, 1.5, "min_ratio")],
)
def test_bad_arguments_are_refused(step: int, steps: int, ratio: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        phase_learning_rate(1e-3, step, steps, "cosine", ratio)
