"""``hybridrl report``: write a run's report (PNG plots, ``summary.json``) and show its summary.

Runs on any run directory the learner and ``hybridrl demo`` wrote to, finished, killed or still
going; ``--compare`` overlays a second run, e.g. the same run with ``--no-ssb``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from hybridrl.report import write_report


def report(
    run_dir: Annotated[
        Path,
        typer.Argument(exists=True, file_okay=False, help="Run directory holding metrics.jsonl."),
    ],
    compare: Annotated[
        Path | None,
        typer.Option(
            "--compare",
            exists=True,
            file_okay=False,
            help="Another run directory to overlay and compare against (e.g. without the SSB).",
        ),
    ] = None,
    accuracy_target: Annotated[
        float | None,
        typer.Option(
            "--accuracy-target",
            min=0.0,
            max=1.0,
            help="Held-out accuracy whose first crossing the summary times.",
        ),
    ] = None,
) -> None:
    """Write RUN_DIR/report/ (reward, accuracy, effective-ratio and training plots and
    summary.json) and print the summary."""
    try:
        directory = write_report(run_dir, compare=compare, accuracy_target=accuracy_target)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from error
    summary: dict[str, Any] = json.loads((directory / "summary.json").read_text())
    console = Console()
    console.print(_summary_table(summary))
    for note in summary["notes"]:
        console.print(f"[yellow]note:[/] {note}")
    comparison: dict[str, Any] = summary.get("comparison") or {}
    for note in comparison.get("summary", {}).get("notes", []):
        console.print(f"[yellow]note ({comparison['run']}):[/] {note}")
    console.print(f"report: {directory}")


def _summary_table(summary: dict[str, Any]) -> Table:
    comparison: dict[str, Any] | None = summary.get("comparison")
    table = Table(title="run summary")
    table.add_column("measure")
    table.add_column(str(summary["run"]), justify="right")
    other: dict[str, Any] = {}
    if comparison is not None:
        other = comparison["summary"]
        table.add_column(str(comparison["run"]), justify="right")
    for key, value in summary.items():
        if key in ("run", "notes", "comparison"):
            continue
        row = [key, _text(value)]
        if comparison is not None:
            row.append(_text(other.get(key)))
        table.add_row(*row)
    if comparison is not None:
        ratio = _text(comparison["effective_ratio_ratio"])
        table.add_row("effective ratio, this / other", ratio, "")
    return table


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)
