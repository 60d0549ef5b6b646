"""The files a training run writes, read into typed records for the run report.

Where it sits: the learner (rank 0) appends one line per step to ``metrics.jsonl`` while it
trains, and the run's driver (``hybridrl demo``) appends one line per held-out evaluation to
``evaluations.jsonl``. The report reads both after the run, or while it is still going, so the
reader tolerates what a live, killed or resumed run leaves behind: a missing or empty file,
lines cut short mid-write, and steps logged again after a resume. Each case is recorded in
``RunRecords.notes`` so the report says so.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, cast

__all__ = [
    "EVALUATIONS_FILE",
    "METRICS_FILE",
    "EvaluationRecord",
    "RunRecords",
    "StepRecord",
    "load_run",
]

METRICS_FILE = "metrics.jsonl"
EVALUATIONS_FILE = "evaluations.jsonl"

Phase = Literal["mpo", "grpo"]
EvaluationLabel = Literal["before", "during", "after"]


@dataclass(frozen=True)
class StepRecord:
    """One learner step, one line of ``metrics.jsonl``.

    Attributes:
        step: global learner step, 0-based.
        phase: "mpo" or "grpo".
        phase_step: step within the phase, 0-based.
        policy_version: policy version after the step.
        time: seconds since RL began, at the end of the step.
        seconds: wall time of the step.
        busy_seconds: time in forward, backward and optimizer step (None if not recorded).
        samples: samples (GRPO) or pairs (MPO) trained over all ranks.
        reward, reward_rule, reward_format, reward_model: means over the fresh rollouts the
            step consumed (eq. 7 and its parts); None when the step consumed none.
        response_length: mean fresh response length in tokens.
        fresh_effective_ratio: fresh rollouts with non-zero advantage / fresh rollouts consumed
            (paper section 3.3.2).
        batch_fill: samples with a learning signal trained / batch places requested.
        buffer_size: SSB size after the step.
        loss: the training loss.
        extra: every other numeric key, e.g. ``clip_fraction``, ``kl_to_reference``.
    """

    step: int
    phase: Phase
    time: float
    phase_step: int | None = None
    policy_version: int | None = None
    seconds: float | None = None
    busy_seconds: float | None = None
    samples: int | None = None
    reward: float | None = None
    reward_rule: float | None = None
    reward_format: float | None = None
    reward_model: float | None = None
    response_length: float | None = None
    fresh_effective_ratio: float | None = None
    batch_fill: float | None = None
    buffer_size: int | None = None
    loss: float | None = None
    extra: Mapping[str, float] = field(default_factory=dict)

    def value(self, name: str) -> float | None:
        """The numeric field or extra key ``name``; None when the step did not record it."""
        if name in self.extra:
            return self.extra[name]
        if name in _STEP_FIELDS and name != "phase":
            found = getattr(self, name)
            return None if found is None else float(found)
        return None


# Keys StepRecord has fields for; every other numeric key goes to StepRecord.extra.
_STEP_FIELDS = frozenset(item.name for item in fields(StepRecord)) - {"extra"}


@dataclass(frozen=True)
class EvaluationRecord:
    """One held-out evaluation, one line of ``evaluations.jsonl``.

    Attributes:
        label: "before" (the warmed-up base), "during" (a published policy) or "after" (the
            newest policy).
        step: learner steps trained by the evaluated policy (its published version).
        policy_version: the evaluated policy version (``step`` when not recorded).
        accuracy: share of held-out prompts answered correctly.
        accuracy_by_kind: the same per task kind.
        format_rate: share of responses that follow the template.
        mean_length: mean response length in tokens.
        prompts: number of prompts scored.
    """

    label: EvaluationLabel
    step: int
    policy_version: int
    accuracy: float
    accuracy_by_kind: Mapping[str, float] = field(default_factory=dict)
    format_rate: float | None = None
    mean_length: float | None = None
    prompts: int | None = None


@dataclass(frozen=True)
class RunRecords:
    """Everything the report reads from one run directory.

    Attributes:
        run_dir: the run directory.
        steps: learner steps in file order.
        evaluations: evaluations sorted by step ("before" first at equal steps).
        notes: what was missing or skipped, in words, for the report to show.
    """

    run_dir: Path
    steps: tuple[StepRecord, ...]
    evaluations: tuple[EvaluationRecord, ...]
    notes: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The run's name: its directory name."""
        return self.run_dir.name

    def phase_steps(self, phase: Phase) -> tuple[StepRecord, ...]:
        """The steps of one phase, in order."""
        return tuple(record for record in self.steps if record.phase == phase)

    def series(self, name: str) -> tuple[list[int], list[float]]:
        """Steps and values of metric ``name`` over the steps that recorded it."""
        steps: list[int] = []
        values: list[float] = []
        for record in self.steps:
            found = record.value(name)
            if found is not None:
                steps.append(record.step)
                values.append(found)
        return steps, values


def load_run(run_dir: Path | str) -> RunRecords:
    """Read ``metrics.jsonl`` and ``evaluations.jsonl`` of ``run_dir``.

    Raises:
        ValueError: ``run_dir`` is not a directory, or a record lacks a required key or has a
            value of the wrong type. Lines that are not JSON (cut short by a killed process)
            are skipped and noted; of a step logged twice (a resumed learner) the later
            record is kept.
    """
    directory = Path(run_dir)
    if not directory.is_dir():
        raise ValueError(f"run directory {directory} does not exist or is not a directory")
    notes: list[str] = []
    by_step: dict[int, StepRecord] = {}
    for raw, where in _read_jsonl(directory / METRICS_FILE, notes):
        record = _step_record(raw, where)
        if record.step in by_step:
            # A learner resumed from a checkpoint repeats the steps after it: the later
            # record belongs to the run that went on.
            notes.append(f"{METRICS_FILE}: step {record.step} repeated (learner resumed)")
        by_step[record.step] = record
    steps = [by_step[step] for step in sorted(by_step)]
    evaluations = [
        _evaluation_record(raw, where)
        for raw, where in _read_jsonl(directory / EVALUATIONS_FILE, notes)
    ]
    order = {"before": 0, "during": 1, "after": 2}
    evaluations.sort(key=lambda record: (record.step, order[record.label]))
    return RunRecords(directory, tuple(steps), tuple(evaluations), tuple(notes))


def _read_jsonl(path: Path, notes: list[str]) -> Iterable[tuple[dict[str, Any], str]]:
    if not path.exists():
        notes.append(f"{path.name} is missing")
        return []
    lines = path.read_text().splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        notes.append(f"{path.name} is empty")
        return []
    records: list[tuple[dict[str, Any], str]] = []
    for number, line in enumerate(lines, start=1):
        where = f"{path}:{number}"
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError:
            # A process killed mid-write leaves a line cut short: the last one, or, when the
            # run was resumed after it, one in the middle.
            notes.append(f"{path.name}: skipped the cut-short line {number}")
            continue
        if not isinstance(raw, dict):
            raise ValueError(f"{where} is not a JSON object")
        records.append((raw, where))
    return records


def _step_record(raw: dict[str, Any], where: str) -> StepRecord:
    phase = raw.get("phase")
    if phase not in ("mpo", "grpo"):
        raise ValueError(f"{where}: phase must be 'mpo' or 'grpo', got {phase!r}")
    extra = {
        key: float(value)
        for key, value in raw.items()
        if key not in _STEP_FIELDS and _is_number(value)
    }
    return StepRecord(
        step=_required_int(raw, "step", where),
        phase=cast(Phase, phase),
        time=_required_float(raw, "time", where),
        phase_step=_optional_int(raw, "phase_step", where),
        policy_version=_optional_int(raw, "policy_version", where),
        seconds=_optional_float(raw, "seconds", where),
        busy_seconds=_optional_float(raw, "busy_seconds", where),
        samples=_optional_int(raw, "samples", where),
        reward=_optional_float(raw, "reward", where),
        reward_rule=_optional_float(raw, "reward_rule", where),
        reward_format=_optional_float(raw, "reward_format", where),
        reward_model=_optional_float(raw, "reward_model", where),
        response_length=_optional_float(raw, "response_length", where),
        fresh_effective_ratio=_optional_float(raw, "fresh_effective_ratio", where),
        batch_fill=_optional_float(raw, "batch_fill", where),
        buffer_size=_optional_int(raw, "buffer_size", where),
        loss=_optional_float(raw, "loss", where),
        extra=extra,
    )


def _evaluation_record(raw: dict[str, Any], where: str) -> EvaluationRecord:
    label = raw.get("label")
    if label not in ("before", "during", "after"):
        raise ValueError(f"{where}: label must be 'before', 'during' or 'after', got {label!r}")
    by_kind = raw.get("accuracy_by_kind") or {}
    if not isinstance(by_kind, dict) or not all(_is_number(v) for v in by_kind.values()):
        raise ValueError(f"{where}: accuracy_by_kind must map task kinds to numbers")
    step = _required_int(raw, "step", where)
    version = _optional_int(raw, "policy_version", where)
    return EvaluationRecord(
        label=cast(EvaluationLabel, label),
        step=step,
        policy_version=step if version is None else version,
        accuracy=_required_float(raw, "accuracy", where),
        accuracy_by_kind={str(kind): float(value) for kind, value in by_kind.items()},
        format_rate=_optional_float(raw, "format_rate", where),
        mean_length=_optional_float(raw, "mean_length", where),
        prompts=_optional_int(raw, "prompts", where),
    )


def _is_number(value: object) -> bool:
    # bool is an int subclass; a flag is not a metric.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _optional_float(raw: Mapping[str, Any], key: str, where: str) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    if not _is_number(value):
        raise ValueError(f"{where}: {key} must be a number, got {value!r}")
    return float(value)


def _required_float(raw: Mapping[str, Any], key: str, where: str) -> float:
    value = _optional_float(raw, key, where)
    if value is None or not math.isfinite(value):
        raise ValueError(f"{where}: {key} is required and must be a finite number")
    return value


def _optional_int(raw: Mapping[str, Any], key: str, where: str) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if not _is_number(value) or not math.isfinite(value) or float(value) != int(value):
        raise ValueError(f"{where}: {key} must be an integer, got {value!r}")
    return int(value)


def _required_int(raw: Mapping[str, Any], key: str, where: str) -> int:
    value = _optional_int(raw, key, where)
    if value is None:
        raise ValueError(f"{where}: {key} is required")
    return value
