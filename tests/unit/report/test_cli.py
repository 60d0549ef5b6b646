"""``hybridrl report RUN_DIR``: writes the report and prints the summary table."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from typer.testing import CliRunner

from hybridrl.cli import app

RunFactory = Callable[..., Path]


def test_report_command_writes_the_report_and_prints_the_summary(make_run: RunFactory) -> None:
    run = make_run("ssb")
    other = make_run("no-ssb", ratios=(0.5,) * 6 + (0.1, 0.1))
    result = CliRunner().invoke(
        app,
        ["report", str(run), "--compare", str(other), "--accuracy-target", "0.6"],
        terminal_width=200,
    )
    assert result.exit_code == 0, result.output
    assert (run / "report" / "summary.json").exists()
    assert (run / "report" / "accuracy.png").exists()
    lines = result.output.splitlines()
    gain = next(line for line in lines if "accuracy_gain" in line)
    assert "0.400" in gain
    target = next(line for line in lines if "steps_to_target" in line)
    assert target.split("│")[2].strip() == "8"
    ratio = next(line for line in lines if "effective ratio, this / other" in line)
    assert "2.000" in ratio
    assert "no-ssb" in result.output


def test_report_command_notes_missing_files(make_run: RunFactory, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    arguments = ["report", str(empty), "--compare", str(make_run("full"))]
    result = CliRunner().invoke(app, arguments, terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "note: metrics.jsonl is missing" in result.output
    assert "note (full)" not in result.output
    swapped = ["report", str(make_run("other")), "--compare", str(empty)]
    result = CliRunner().invoke(app, swapped, terminal_width=200)
    assert "note (empty): evaluations.jsonl is missing" in result.output


def test_report_command_rejects_a_missing_directory(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(tmp_path / "nowhere")])
    assert result.exit_code == 2


def test_report_command_rejects_a_target_above_one(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(tmp_path), "--accuracy-target", "1.5"])
    assert result.exit_code == 2
