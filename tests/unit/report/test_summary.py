"""Summary measures of a run, checked by hand against the numbers in conftest.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from hybridrl.report import compare_runs, load_run, summarize
from hybridrl.report.summary import last_quarter

RunFactory = Callable[..., Path]


def test_summary_of_the_hand_made_run(make_run: RunFactory) -> None:
    summary = summarize(load_run(make_run("run")), accuracy_target=0.6)
    assert summary.run == "run"
    assert (summary.mpo_steps, summary.grpo_steps) == (2, 8)
    assert summary.rl_wall_seconds == 26.0
    assert summary.samples_per_second == pytest.approx(40 / 26)
    assert summary.accuracy_before == 0.2
    assert summary.accuracy_after == 0.6
    assert summary.accuracy_gain == pytest.approx(0.4)
    assert (summary.best_accuracy, summary.best_accuracy_step) == (0.65, 8)
    # Last quarter of the 8 GRPO steps: global steps 8 and 9.
    assert summary.reward_last_quarter == pytest.approx((0.0 + 1.0) / 2)
    assert summary.fresh_effective_ratio_last_quarter == pytest.approx((0.3 + 0.1) / 2)
    assert summary.zero_variance_fraction_last_quarter == pytest.approx(0.8)
    assert summary.batch_fill_last_quarter == pytest.approx((0.9 + 0.7) / 2)
    # The first GRPO step (busy 1.0 of 10 s) is warm-up; the other 7 are busy 1.5 of 2 s.
    assert summary.learner_busy_fraction == pytest.approx(0.75)
    assert summary.notes == ()


def test_steps_and_seconds_to_target(make_run: RunFactory) -> None:
    records = load_run(make_run("run"))
    # 0.65 at step 8 is the first evaluation at or above 0.6; policy version 8 was produced
    # by step 7, which ended 22 s into RL.
    reached = summarize(records, accuracy_target=0.6)
    assert (reached.steps_to_target, reached.seconds_to_target) == (8, 22.0)
    # The "before" evaluation (0.2) does not count: RL has not started there.
    early = summarize(records, accuracy_target=0.1)
    assert (early.steps_to_target, early.seconds_to_target) == (4, 14.0)
    never = summarize(records, accuracy_target=0.7)
    assert (never.steps_to_target, never.seconds_to_target) == (None, None)
    untimed = summarize(records, accuracy_target=None)
    assert (untimed.steps_to_target, untimed.accuracy_target) == (None, None)


def test_accuracy_target_outside_zero_one_is_rejected(make_run: RunFactory) -> None:
    with pytest.raises(ValueError, match="accuracy_target"):
        summarize(load_run(make_run("run")), accuracy_target=1.5)


def test_comparison_ratio_is_this_over_other(make_run: RunFactory) -> None:
    this = summarize(load_run(make_run("ssb")))
    other = summarize(load_run(make_run("no-ssb", ratios=(0.5,) * 6 + (0.1, 0.1))))
    comparison = compare_runs(this, other)
    assert comparison.effective_ratio_ratio == pytest.approx(0.2 / 0.1)
    content = comparison.as_dict()
    assert content["run"] == "no-ssb"
    assert content["summary"]["fresh_effective_ratio_last_quarter"] == pytest.approx(0.1)


def test_comparison_ratio_is_none_when_the_other_run_has_no_grpo(
    make_run: RunFactory, tmp_path: Path
) -> None:
    this = summarize(load_run(make_run("run")))
    empty = summarize(load_run(tmp_path))
    assert compare_runs(this, empty).effective_ratio_ratio is None


def test_summary_of_a_run_that_recorded_nothing(tmp_path: Path) -> None:
    summary = summarize(load_run(tmp_path), accuracy_target=0.5)
    content = summary.as_dict()
    assert content["mpo_steps"] == content["grpo_steps"] == 0
    assert content["rl_wall_seconds"] is None
    assert content["accuracy_gain"] is None
    assert content["learner_busy_fraction"] is None
    assert content["notes"] == ["metrics.jsonl is missing", "evaluations.jsonl is missing"]
    json.dumps(content, allow_nan=False)


def test_as_dict_turns_non_finite_numbers_into_none(tmp_path: Path) -> None:
    (tmp_path / "metrics.jsonl").write_text(
        '{"step": 0, "phase": "grpo", "time": 1.0, "seconds": 1.0, "samples": 2,'
        ' "fresh_effective_ratio": NaN}\n'
    )
    content = summarize(load_run(tmp_path)).as_dict()
    assert content["fresh_effective_ratio_last_quarter"] is None
    assert content["samples_per_second"] == 2.0


@pytest.mark.parametrize(("count", "kept"), [(1, 1), (3, 1), (4, 1), (8, 2), (10, 3)])
def test_last_quarter_keeps_the_trailing_steps(count: int, kept: int) -> None:
    steps = list(range(count))
    assert list(last_quarter(steps)) == steps[count - kept :]
