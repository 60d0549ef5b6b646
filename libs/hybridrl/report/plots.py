"""The run report's PNG plots: reward, held-out accuracy, effective-sample ratio and training
statistics over learner steps.

Where it sits: ``write_report`` calls these on the records of a finished (or dead, or still
running) run. Each function draws one file with matplotlib's Agg canvas and no pyplot, so no
display and no global figure state are involved. A plot whose data the run never recorded is
still written and says so, so a report always has the same four files.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from hybridrl.report.records import METRICS_FILE, RunRecords

__all__ = [
    "TRAINING_PANELS",
    "plot_accuracy",
    "plot_effective_ratio",
    "plot_reward",
    "plot_training",
    "rolling_mean",
    "rolling_window",
]

TRAINING_PANELS: tuple[tuple[str, str], ...] = (
    ("loss", "loss"),
    ("clip_fraction", "clip fraction (eq. 8)"),
    ("kl_to_reference", "KL to the reference policy"),
    ("approx_kl", "approx. KL to the behaviour policy"),
    ("response_length", "response length (tokens)"),
    ("buffer_size", "SSB buffer size"),
)
"""Metric key and panel title of each panel ``training.png`` draws when the run recorded it."""

_REWARD_PARTS = (
    ("reward", "total (eq. 7)"),
    ("reward_rule", "rule"),
    ("reward_format", "format"),
    ("reward_model", "reward model"),
)
_DPI = 110


def rolling_window(points: int) -> int:
    """Rolling-mean window for a series of ``points`` values: about 5% of it, 1 to 50."""
    return max(1, min(50, round(points / 20)))


def rolling_mean(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing mean over the last ``window`` values; the first ones average what exists.

    ``rolling_mean([1, 2, 3, 4], 2) == [1, 1.5, 2.5, 3.5]``.
    """
    data = np.asarray(values, dtype=float)
    if window <= 1 or data.size == 0:
        return data
    sums = np.concatenate(([0.0], np.cumsum(data)))
    ends = np.arange(1, data.size + 1)
    starts = np.maximum(ends - window, 0)
    result: np.ndarray = (sums[ends] - sums[starts]) / (ends - starts)
    return result


def plot_reward(records: RunRecords, path: Path) -> None:
    """``reward.png``: total reward and its parts per step, with rolling means."""
    figure, axes = _figure((9.0, 4.8))
    drawn = False
    window = rolling_window(len(records.steps))
    for index, (key, label) in enumerate(_REWARD_PARTS):
        steps, values = _finite(*records.series(key))
        if not steps:
            continue
        _raw_and_mean(axes, steps, values, f"C{index}", label, "-", window)
        drawn = True
    if drawn:
        _phase_boundary(axes, records)
        axes.legend(title=_legend_title(window), loc="best", fontsize="small")
    else:
        _no_data(axes, records, "no reward recorded")
    axes.set_title(f"Reward of fresh rollouts — {records.name}")
    axes.set_xlabel("learner step")
    axes.set_ylabel("mean reward")
    _save(figure, path)


def plot_accuracy(
    runs: Sequence[RunRecords],
    labels: Sequence[str],
    path: Path,
    accuracy_target: float | None = None,
) -> None:
    """``accuracy.png``: held-out accuracy of each evaluation, one line per run."""
    figure, axes = _figure((9.0, 4.8))
    titles = []
    for index, (records, label) in enumerate(zip(runs, labels, strict=True)):
        evaluations = records.evaluations
        if not evaluations:
            titles.append(f"{label}: no evaluations")
            continue
        color = f"C{index}"
        style = "-" if index == 0 else "--"
        axes.plot(
            [e.step for e in evaluations],
            [e.accuracy for e in evaluations],
            style,
            color=color,
            marker="o",
            markersize=4,
            label=label,
        )
        for name, marker, size in (("before", "*", 16), ("after", "s", 9)):
            chosen = [e for e in evaluations if e.label == name]
            axes.plot(
                [e.step for e in chosen],
                [e.accuracy for e in chosen],
                linestyle="none",
                marker=marker,
                markersize=size,
                color=color,
                markeredgecolor="black",
            )
        before = next((e.accuracy for e in evaluations if e.label == "before"), None)
        after = next((e.accuracy for e in reversed(evaluations) if e.label == "after"), None)
        titles.append(f"{label}: {_percent(before)} → {_percent(after)}")
    if accuracy_target is not None:
        axes.axhline(
            accuracy_target, color="gray", linestyle=":", label=f"target {accuracy_target:.0%}"
        )
    if any(records.evaluations for records in runs):
        _phase_boundary(axes, runs[0])
        runs_legend = axes.legend(loc="upper left", fontsize="small")
        axes.add_artist(runs_legend)
        axes.legend(handles=_evaluation_markers(), loc="lower right", fontsize="small")
    else:
        _no_data(axes, runs[0], "no held-out evaluations recorded", file="evaluations.jsonl")
    axes.set_ylim(-0.02, 1.02)
    axes.set_title("Held-out accuracy — " + "; ".join(titles))
    axes.set_xlabel("learner step (policy version evaluated)")
    axes.set_ylabel("accuracy")
    _save(figure, path)


def plot_effective_ratio(runs: Sequence[RunRecords], labels: Sequence[str], path: Path) -> None:
    """``effective_ratio.png``: fresh effective-sample ratio and batch fill per step."""
    figure, axes = _figure((9.0, 4.8))
    # One window for every line, so that two runs' means are smoothed alike.
    window = rolling_window(max(len(records.steps) for records in runs))
    drawn = False
    compared = len(runs) > 1
    for index, (records, label) in enumerate(zip(runs, labels, strict=True)):
        for part, (key, name) in enumerate(
            (("fresh_effective_ratio", "fresh effective ratio"), ("batch_fill", "batch fill"))
        ):
            steps, values = _finite(*records.series(key))
            if not steps:
                continue
            # One colour per run when comparing, the metric told by the line style; per-step
            # values would bury the two runs' means, so only the means are drawn then.
            color = f"C{index if compared else part}"
            style = ("-", "--")[part] if compared else "-"
            title = f"{label}: {name}" if compared else name
            _raw_and_mean(axes, steps, values, color, title, style, window, raw=not compared)
            drawn = True
    if drawn:
        _phase_boundary(axes, runs[0])
        axes.legend(
            title=_legend_title(window, raw=not compared), loc="lower left", fontsize="small"
        )
    else:
        _no_data(axes, runs[0], "no effective-sample ratio recorded")
    axes.set_ylim(-0.02, 1.1)
    axes.set_title("Fresh rollouts with a learning signal, and batch fill — " + ", ".join(labels))
    axes.set_xlabel("learner step")
    axes.set_ylabel("share")
    _save(figure, path)


def plot_training(records: RunRecords, path: Path) -> None:
    """``training.png``: one small panel per training statistic the run recorded."""
    present = [(key, title) for key, title in TRAINING_PANELS if records.series(key)[0]]
    columns = min(3, max(len(present), 1))
    rows = max(math.ceil(len(present) / columns), 1)
    # Without panels the figure carries one message, as wide as the other plots.
    size = (4.2 * columns, 3.0 * rows + 0.4) if present else (9.0, 4.8)
    figure = Figure(figsize=size, layout="constrained")
    grid = figure.subplots(rows, columns, squeeze=False)
    panels = [axes for row in grid for axes in row]
    for axes, (key, title) in zip(panels, present, strict=False):
        steps, values = _finite(*records.series(key))
        _raw_and_mean(axes, steps, values, "C0", None, "-", rolling_window(len(values)))
        _keep_a_visible_span(axes, values)
        _phase_boundary(axes, records, label=False)
        axes.set_title(title, fontsize="medium")
        axes.set_xlabel("learner step")
    for axes in panels[len(present) :]:
        axes.set_axis_off()
    if not present:
        panels[0].set_axis_on()
        _no_data(panels[0], records, "no training statistics recorded")
    figure.suptitle(f"Training statistics — {records.name} (line: rolling mean)")
    _save(figure, path)


def _figure(size: tuple[float, float]) -> tuple[Figure, Axes]:
    figure = Figure(figsize=size, layout="constrained")
    axes = figure.add_subplot()
    axes.grid(alpha=0.3)
    return figure, axes


def _save(figure: Figure, path: Path) -> None:
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=_DPI, format="png")


def _finite(steps: list[int], values: list[float]) -> tuple[list[int], list[float]]:
    kept = [
        (step, value) for step, value in zip(steps, values, strict=True) if math.isfinite(value)
    ]
    return [step for step, _ in kept], [value for _, value in kept]


def _keep_a_visible_span(axes: Axes, values: list[float]) -> None:
    """A constant series (a clip fraction stuck at 0.1) keeps a readable y range; without this
    the rolling mean's rounding noise becomes the whole axis."""
    if not values:
        return
    low, high = min(values), max(values)
    if high - low <= 1e-9 * max(1.0, abs(high)):
        pad = max(abs(high) * 0.1, 0.1)
        axes.set_ylim(low - pad, high + pad)


def _raw_and_mean(
    axes: Axes,
    steps: list[int],
    values: list[float],
    color: str,
    label: str | None,
    style: str,
    window: int,
    *,
    raw: bool = True,
) -> None:
    if raw and window > 1:
        axes.plot(steps, values, style, color=color, alpha=0.25, linewidth=0.8)
    axes.plot(steps, rolling_mean(values, window), style, color=color, linewidth=1.8, label=label)


def _phase_boundary(axes: Axes, records: RunRecords, *, label: bool = True) -> None:
    """Shade the MPO steps and mark where GRPO begins."""
    mpo = records.phase_steps("mpo")
    grpo = records.phase_steps("grpo")
    if not mpo or not grpo:
        return
    boundary = grpo[0].step - 0.5
    axes.axvspan(mpo[0].step - 0.5, boundary, color="gray", alpha=0.08)
    axes.axvline(boundary, color="gray", linestyle="--", linewidth=1.0)
    if label:
        axes.annotate(
            " MPO | GRPO ",
            xy=(boundary, 0.99),
            xycoords=("data", "axes fraction"),
            ha="center",
            va="top",
            fontsize="small",
            color="dimgray",
        )


def _no_data(axes: Axes, records: RunRecords, message: str, file: str = METRICS_FILE) -> None:
    why = [note for note in records.notes if note.startswith(file)]
    axes.text(
        0.5,
        0.5,
        "\n".join([message, *why]),
        transform=axes.transAxes,
        ha="center",
        va="center",
        fontsize="large",
        color="dimgray",
    )


def _evaluation_markers() -> list[Line2D]:
    def marker(shape: str, size: float, label: str) -> Line2D:
        return Line2D(
            [],
            [],
            linestyle="none",
            marker=shape,
            markersize=size,
            color="lightgray",
            markeredgecolor="black",
            label=label,
        )

    return [marker("*", 14, "before RL"), marker("o", 5, "during"), marker("s", 8, "after RL")]


def _legend_title(window: int, *, raw: bool = True) -> str:
    if window <= 1:
        return "per step"
    return f"rolling mean over {window} steps" + (" (faint: per step)" if raw else "")


def _percent(value: float | None) -> str:
    return "?" if value is None else f"{value:.0%}"
