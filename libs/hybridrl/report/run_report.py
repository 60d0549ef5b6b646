"""Writes a run's report: four PNG plots and ``summary.json`` in ``RUN_DIR/report/``.

Where it sits: at the end of ``hybridrl demo`` and behind ``hybridrl report RUN_DIR``; it reads
the files the learner and the run's driver wrote (``hybridrl.report.records``), computes the
summary (``hybridrl.report.summary``) and draws the plots (``hybridrl.report.plots``). With a
second run to compare against, e.g. the same run without the Selective Sample Buffer, the
accuracy and effective-ratio plots overlay both and the summary gains a ``comparison`` section.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from hybridrl.report.plots import plot_accuracy, plot_effective_ratio, plot_reward, plot_training
from hybridrl.report.records import RunRecords, load_run
from hybridrl.report.summary import compare_runs, summarize

__all__ = ["REPORT_DIR", "REPORT_FILES", "run_labels", "write_report"]

REPORT_DIR = "report"
REPORT_FILES = (
    "reward.png",
    "accuracy.png",
    "effective_ratio.png",
    "training.png",
    "summary.json",
)
"""The files ``write_report`` writes, every time, whatever the run recorded."""


def write_report(
    run_dir: Path | str,
    *,
    compare: Path | str | None = None,
    accuracy_target: float | None = None,
) -> Path:
    """Write ``run_dir/report/`` (see ``REPORT_FILES``) and return its path.

    Args:
        run_dir: the run directory holding ``metrics.jsonl`` and ``evaluations.jsonl``.
        compare: another run directory to overlay and compare against.
        accuracy_target: held-out accuracy whose first crossing the summary times.

    Raises:
        ValueError: a run directory is missing, a file in it is damaged before its last line,
            or ``accuracy_target`` is outside [0, 1].
    """
    records = load_run(run_dir)
    other = load_run(compare) if compare is not None else None
    summary = summarize(records, accuracy_target=accuracy_target)
    content = summary.as_dict()
    if other is not None:
        other_summary = summarize(other, accuracy_target=accuracy_target)
        content["comparison"] = compare_runs(summary, other_summary).as_dict()
    runs = [records] if other is None else [records, other]
    labels = run_labels(runs)
    directory = records.run_dir / REPORT_DIR
    directory.mkdir(exist_ok=True)
    plot_reward(records, directory / "reward.png")
    plot_accuracy(runs, labels, directory / "accuracy.png", accuracy_target)
    plot_effective_ratio(runs, labels, directory / "effective_ratio.png")
    plot_training(records, directory / "training.png")
    (directory / "summary.json").write_text(json.dumps(content, indent=2) + "\n")
    return directory


def run_labels(runs: Sequence[RunRecords]) -> list[str]:
    """Legend labels: directory names, with their parent's name when two names are equal."""
    names = [records.name for records in runs]
    if len(set(names)) == len(names):
        return names
    return [f"{records.run_dir.parent.name}/{records.name}" for records in runs]
