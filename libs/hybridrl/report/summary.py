"""The numbers a run is judged by, computed from its records: what the report's
``summary.json`` holds and what ``hybridrl demo`` and ``hybridrl report`` print.

Where it sits: after (or during) a run, over the records ``hybridrl.report.records`` read. The
measures follow the paper's claims: held-out accuracy gained by RL, how soon it reached a target,
the share of fresh rollouts that still carry a learning signal late in GRPO (section 3.3.2,
where the Selective Sample Buffer matters), and whether the learner was kept busy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from hybridrl.report.records import RunRecords, StepRecord

__all__ = ["RunComparison", "RunSummary", "compare_runs", "last_quarter", "summarize"]

Item = TypeVar("Item")


@dataclass(frozen=True)
class RunSummary:
    """Summary measures of one run; None where the run recorded too little to say.

    Attributes:
        run: the run directory's name.
        mpo_steps, grpo_steps: learner steps recorded per phase.
        rl_wall_seconds: seconds from the start of RL to the last recorded step.
        samples_per_second: samples (or pairs) trained / step wall time, over all steps.
        accuracy_before: held-out accuracy of the base policy ("before").
        accuracy_after: held-out accuracy of the newest policy ("after").
        accuracy_gain: ``accuracy_after - accuracy_before``.
        best_accuracy, best_accuracy_step: the highest held-out accuracy of any evaluation
            and the step of the first evaluation that reached it.
        accuracy_target: the target the two next measures refer to.
        steps_to_target: step of the first "during"/"after" evaluation at or above the target.
        seconds_to_target: RL seconds when that evaluated policy was produced.
        reward_last_quarter: mean reward over the last quarter of GRPO steps.
        fresh_effective_ratio_last_quarter: mean fresh effective-sample ratio there.
        zero_variance_fraction_last_quarter: ``1 - fresh_effective_ratio_last_quarter``, the
            share of fresh rollouts whose group gave zero advantage.
        batch_fill_last_quarter: mean batch fill there.
        learner_busy_fraction: learner busy seconds / step seconds over the GRPO steps after
            the first 10% of them (steady state).
        notes: what was missing or skipped when reading the run.
    """

    run: str
    mpo_steps: int
    grpo_steps: int
    rl_wall_seconds: float | None
    samples_per_second: float | None
    accuracy_before: float | None
    accuracy_after: float | None
    accuracy_gain: float | None
    best_accuracy: float | None
    best_accuracy_step: int | None
    accuracy_target: float | None
    steps_to_target: int | None
    seconds_to_target: float | None
    reward_last_quarter: float | None
    fresh_effective_ratio_last_quarter: float | None
    zero_variance_fraction_last_quarter: float | None
    batch_fill_last_quarter: float | None
    learner_busy_fraction: float | None
    notes: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: non-finite numbers become None, tuples lists; field order kept."""
        result: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, float) and not math.isfinite(value):
                value = None
            result[item.name] = list(value) if isinstance(value, tuple) else value
        return result


@dataclass(frozen=True)
class RunComparison:
    """This run against another, e.g. the same run without the Selective Sample Buffer.

    Attributes:
        other: the other run's summary.
        effective_ratio_ratio: this run's last-quarter fresh effective ratio / the other's.
    """

    other: RunSummary
    effective_ratio_ratio: float | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, for the ``comparison`` section of ``summary.json``."""
        ratio = self.effective_ratio_ratio
        return {
            "run": self.other.run,
            "effective_ratio_ratio": ratio if ratio is not None and math.isfinite(ratio) else None,
            "summary": self.other.as_dict(),
        }


def last_quarter(items: Sequence[Item]) -> Sequence[Item]:
    """The last quarter of ``items``: from index ``floor(3n / 4)`` on (one of 1-3 items)."""
    return items[(3 * len(items)) // 4 :]


def summarize(records: RunRecords, *, accuracy_target: float | None = None) -> RunSummary:
    """The summary measures of one run (see ``RunSummary``).

    Raises:
        ValueError: ``accuracy_target`` is outside [0, 1].
    """
    if accuracy_target is not None and not 0.0 <= accuracy_target <= 1.0:
        raise ValueError(f"accuracy_target must be in [0, 1], got {accuracy_target}")
    grpo = records.phase_steps("grpo")
    late = last_quarter(grpo)
    effective = _mean(record.fresh_effective_ratio for record in late)
    before = [e.accuracy for e in records.evaluations if e.label == "before"]
    after = [e.accuracy for e in records.evaluations if e.label == "after"]
    accuracy_before = before[0] if before else None
    # Evaluations are sorted by step, so the last "after" is of the newest policy.
    accuracy_after = after[-1] if after else None
    best = max(records.evaluations, key=lambda e: e.accuracy, default=None)
    steps_to_target, seconds_to_target = _time_to_target(records, accuracy_target)
    seconds = sum(record.seconds or 0.0 for record in records.steps)
    samples = sum(record.samples or 0 for record in records.steps)
    return RunSummary(
        run=records.name,
        mpo_steps=len(records.phase_steps("mpo")),
        grpo_steps=len(grpo),
        rl_wall_seconds=records.steps[-1].time if records.steps else None,
        samples_per_second=samples / seconds if seconds > 0 else None,
        accuracy_before=accuracy_before,
        accuracy_after=accuracy_after,
        accuracy_gain=(
            accuracy_after - accuracy_before
            if accuracy_after is not None and accuracy_before is not None
            else None
        ),
        best_accuracy=None if best is None else best.accuracy,
        best_accuracy_step=None if best is None else best.step,
        accuracy_target=accuracy_target,
        steps_to_target=steps_to_target,
        seconds_to_target=seconds_to_target,
        reward_last_quarter=_mean(record.reward for record in late),
        fresh_effective_ratio_last_quarter=effective,
        zero_variance_fraction_last_quarter=None if effective is None else 1.0 - effective,
        batch_fill_last_quarter=_mean(record.batch_fill for record in late),
        learner_busy_fraction=_busy_fraction(grpo),
        notes=records.notes,
    )


def compare_runs(this: RunSummary, other: RunSummary) -> RunComparison:
    """This run against ``other``: the ratio of their last-quarter fresh effective ratios."""
    mine = this.fresh_effective_ratio_last_quarter
    theirs = other.fresh_effective_ratio_last_quarter
    ratio = mine / theirs if mine is not None and theirs else None
    return RunComparison(other=other, effective_ratio_ratio=ratio)


def _mean(values: Iterable[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return sum(present) / len(present) if present else None


def _busy_fraction(grpo: Sequence[StepRecord]) -> float | None:
    # The first GRPO steps wait for the first fresh groups and warm caches up; at least one of
    # them is dropped whenever another step remains.
    skip = min(math.ceil(len(grpo) / 10), max(len(grpo) - 1, 0))
    steady = [r for r in grpo[skip:] if r.busy_seconds is not None and r.seconds is not None]
    seconds = sum(r.seconds or 0.0 for r in steady)
    if seconds <= 0:
        return None
    return sum(r.busy_seconds or 0.0 for r in steady) / seconds


def _time_to_target(records: RunRecords, target: float | None) -> tuple[int | None, float | None]:
    if target is None:
        return None, None
    reached = next(
        (e for e in records.evaluations if e.label in ("during", "after") and e.accuracy >= target),
        None,
    )
    if reached is None:
        return None, None
    # The policy an evaluation scored was produced by the first step that reached its version.
    produced = next(
        (
            r.time
            for r in records.steps
            if r.policy_version is not None and r.policy_version >= reached.policy_version
        ),
        None,
    )
    return reached.step, produced
