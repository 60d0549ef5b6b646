"""The report directory: four valid PNGs and summary.json, with and without a second run."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from hybridrl.report import REPORT_FILES, load_run, write_report
from hybridrl.report.plots import rolling_mean, rolling_window
from hybridrl.report.run_report import run_labels

RunFactory = Callable[..., Path]
PLOTS = [name for name in REPORT_FILES if name.endswith(".png")]


def assert_valid_pngs(directory: Path) -> None:
    for name in PLOTS:
        with Image.open(directory / name) as image:
            image.verify()
            assert image.format == "PNG", name
            width, height = image.size
            assert 600 <= width <= 2500, (name, image.size)
            assert 300 <= height <= 2000, (name, image.size)


def test_report_writes_every_plot_and_the_summary(make_run: RunFactory) -> None:
    run = make_run("run")
    directory = write_report(run, accuracy_target=0.6)
    assert directory == run / "report"
    assert sorted(path.name for path in directory.iterdir()) == sorted(REPORT_FILES)
    assert_valid_pngs(directory)
    summary = json.loads((directory / "summary.json").read_text())
    assert summary["run"] == "run"
    assert summary["accuracy_gain"] == pytest.approx(0.4)
    assert summary["steps_to_target"] == 8
    assert "comparison" not in summary


def test_report_compares_with_another_run(make_run: RunFactory) -> None:
    run = make_run("ssb")
    other = make_run("no-ssb", ratios=(0.5,) * 6 + (0.1, 0.1))
    directory = write_report(run, compare=other)
    assert_valid_pngs(directory)
    summary = json.loads((directory / "summary.json").read_text())
    comparison = summary["comparison"]
    assert comparison["run"] == "no-ssb"
    assert comparison["effective_ratio_ratio"] == pytest.approx(2.0)
    assert comparison["summary"]["fresh_effective_ratio_last_quarter"] == pytest.approx(0.1)
    assert not (other / "report").exists()


def test_report_of_a_run_that_died_before_training(tmp_path: Path) -> None:
    run = tmp_path / "dead"
    run.mkdir()
    (run / "evaluations.jsonl").write_text(
        '{"label": "before", "step": 0, "policy_version": 0, "accuracy": 0.3}\n'
    )
    directory = write_report(run)
    assert_valid_pngs(directory)
    summary = json.loads((directory / "summary.json").read_text())
    assert summary["accuracy_before"] == 0.3
    assert summary["accuracy_after"] is None
    assert summary["notes"] == ["metrics.jsonl is missing"]


def test_report_of_an_empty_run_directory(tmp_path: Path) -> None:
    directory = write_report(tmp_path)
    assert_valid_pngs(directory)
    summary = json.loads((directory / "summary.json").read_text())
    assert summary["notes"] == ["metrics.jsonl is missing", "evaluations.jsonl is missing"]


def test_report_of_a_missing_run_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        write_report(tmp_path / "nowhere")


def test_runs_with_equal_names_are_labelled_with_their_parent(tmp_path: Path) -> None:
    for parent in ("a", "b"):
        (tmp_path / parent / "demo").mkdir(parents=True)
    runs = [load_run(tmp_path / "a" / "demo"), load_run(tmp_path / "b" / "demo")]
    assert run_labels(runs) == ["a/demo", "b/demo"]
    assert run_labels(runs[:1]) == ["demo"]


def test_rolling_mean_averages_what_exists_at_the_start() -> None:
    assert rolling_mean([1.0, 2.0, 3.0, 4.0], 2).tolist() == [1.0, 1.5, 2.5, 3.5]
    assert rolling_mean([1.0, 3.0], 1).tolist() == [1.0, 3.0]
    assert rolling_mean([], 5).tolist() == []


@pytest.mark.parametrize(("points", "window"), [(0, 1), (10, 1), (100, 5), (5000, 50)])
def test_rolling_window_is_about_five_percent(points: int, window: int) -> None:
    assert rolling_window(points) == window
