"""Reading metrics.jsonl and evaluations.jsonl, including what a killed run leaves behind."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from hybridrl.report import load_run

RunFactory = Callable[..., Path]


def test_records_are_typed_and_unknown_numeric_keys_kept(make_run: RunFactory) -> None:
    records = load_run(make_run("run"))
    assert len(records.steps) == 10
    first, last = records.steps[0], records.steps[-1]
    assert (first.phase, first.reward, first.reward_model) == ("mpo", None, None)
    assert (last.step, last.phase, last.policy_version, last.buffer_size) == (9, "grpo", 10, 27)
    assert last.extra == {
        "samples_per_second": 2.0,
        "clip_fraction": 0.1,
        "kl_to_reference": pytest.approx(0.09),
        "ssb_effective_ratio": 0.5,
    }
    assert last.value("kl_to_reference") == pytest.approx(0.09)
    assert last.value("buffer_size") == 27.0
    assert last.value("not_recorded") is None
    assert records.notes == ()


def test_evaluations_are_sorted_by_step(make_run: RunFactory) -> None:
    records = load_run(make_run("run"))
    labelled = [(e.label, e.step) for e in records.evaluations]
    assert labelled == [("before", 0), ("during", 4), ("during", 8), ("after", 10)]


def test_series_skips_steps_without_the_metric(make_run: RunFactory) -> None:
    steps, values = load_run(make_run("run")).series("reward")
    assert steps == list(range(2, 10))
    assert values == [-6.0, -5.0, -4.0, -3.0, -2.0, -1.0, 0.0, 1.0]


def test_truncated_last_line_is_skipped_and_noted(make_run: RunFactory) -> None:
    directory = make_run("run")
    metrics = directory / "metrics.jsonl"
    metrics.write_text(metrics.read_text() + '{"step": 10, "phase": "gr')
    records = load_run(directory)
    assert len(records.steps) == 10
    assert records.notes == ("metrics.jsonl: skipped the cut-short line 11",)


def test_a_resumed_learner_leaves_a_cut_line_and_repeated_steps(make_run: RunFactory) -> None:
    directory = make_run("run")
    metrics = directory / "metrics.jsonl"
    lines = metrics.read_text().splitlines()
    # Killed while writing step 6, resumed from a checkpoint of step 4: steps 4 and 5 again.
    repeated = [line.replace('"loss"', '"resumed": 1, "loss"') for line in lines[4:6]]
    metrics.write_text("\n".join([*lines[:6], lines[6][:20], *repeated, *lines[6:]]) + "\n")
    records = load_run(directory)
    assert [record.step for record in records.steps] == list(range(10))
    assert records.steps[4].extra.get("resumed") == 1.0
    assert records.steps[3].extra.get("resumed") is None
    assert records.notes == (
        "metrics.jsonl: skipped the cut-short line 7",
        "metrics.jsonl: step 4 repeated (learner resumed)",
        "metrics.jsonl: step 5 repeated (learner resumed)",
    )


def test_missing_and_empty_files_are_noted(tmp_path: Path) -> None:
    (tmp_path / "evaluations.jsonl").write_text("\n")
    records = load_run(tmp_path)
    assert records.steps == ()
    assert records.evaluations == ()
    assert records.notes == ("metrics.jsonl is missing", "evaluations.jsonl is empty")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"step": 0, "phase": "ppo", "time": 1.0}', "phase must be 'mpo' or 'grpo'"),
        ('{"phase": "mpo", "time": 1.0}', "step is required"),
        ('{"step": 0, "phase": "mpo", "time": "late"}', "time must be a number"),
        ('{"step": 0.5, "phase": "mpo", "time": 1.0}', "step must be an integer"),
        ("[1, 2]", "is not a JSON object"),
    ],
)
def test_malformed_step_records_are_rejected(tmp_path: Path, line: str, message: str) -> None:
    (tmp_path / "metrics.jsonl").write_text(line + "\n")
    with pytest.raises(ValueError, match=message):
        load_run(tmp_path)


def test_unknown_evaluation_label_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "evaluations.jsonl").write_text('{"label": "midway", "step": 1, "accuracy": 0.5}')
    with pytest.raises(ValueError, match="label must be"):
        load_run(tmp_path)


def test_missing_run_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        load_run(tmp_path / "nowhere")
