"""What rank 0 records of each learner step: one JSON line of ``metrics.jsonl`` per step.

Every rank reports what it did (``RankStep``: items trained, busy seconds, the step function's
metrics, the summary of the fresh rollouts its batch consumed); rank 0 gathers them and
``step_record`` merges them into the record ``hybridrl report`` reads: counts added, the
step functions' metrics averaged by items, the rollout means weighted by the fresh rollouts
behind each rank's batch. ``losses_of`` picks what ``LearnerService.Status`` reports.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hybridrl_services.learner.batches import BatchSummary

__all__ = ["RankStep", "append_record", "end_cut_line", "losses_of", "step_record"]

_LOSS_NAMES = {
    "policy_loss": "grpo",
    "preference_loss": "preference",
    "quality_loss": "quality",
    "generation_loss": "generation",
}


@dataclass
class RankStep:
    """What one rank did in a step."""

    items: int = 0
    busy_seconds: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)
    summary: BatchSummary = field(default_factory=BatchSummary)


def step_record(
    ranks: list[RankStep],
    *,
    step: int,
    phase: str,
    phase_step: int,
    policy_version: int,
    elapsed: float,
    seconds: float,
    places: int,
) -> dict[str, Any]:
    """The merged record of one step (see the module docstring); ``places`` is the batch's
    size over all ranks, ``elapsed`` the seconds since training began."""
    items = sum(r.items for r in ranks)
    offered = sum(r.summary.fresh_offered for r in ranks)
    zero = sum(r.summary.fresh_zero_advantage for r in ranks)

    def fresh_mean(name: str) -> float | None:
        if not offered:
            return None
        total = sum(float(getattr(r.summary, name)) * r.summary.fresh_offered for r in ranks)
        return total / offered

    weighted = [r for r in ranks if r.metrics and r.items]
    keys = set.intersection(*(set(r.metrics) for r in weighted)) if weighted else set()
    weight = sum(r.items for r in weighted)
    metrics = {key: sum(r.metrics[key] * r.items for r in weighted) / weight for key in keys}
    # The step functions' metrics first: the learner's own keys win (both have "samples").
    return {
        **dict(sorted(metrics.items())),
        "step": step,
        "phase": phase,
        "phase_step": phase_step,
        "policy_version": policy_version,
        "time": elapsed,
        "seconds": seconds,
        "busy_seconds": max((r.busy_seconds for r in ranks), default=0.0),
        "samples": items,
        "samples_per_second": items / seconds if seconds > 0 else 0.0,
        "reward": fresh_mean("reward"),
        "reward_rule": fresh_mean("reward_rule"),
        "reward_format": fresh_mean("reward_format"),
        "reward_model": fresh_mean("reward_model"),
        "response_length": fresh_mean("response_length"),
        "fresh_effective_ratio": (offered - zero) / offered if offered else None,
        # Samples of zero-variance groups have zero advantage (eq. 6): their share.
        "zero_variance_fraction": zero / offered if offered else None,
        "batch_fill": items / places,
    }


def losses_of(record: dict[str, Any]) -> dict[str, float]:
    """The loss values ``StatusResponse.losses`` carries: "total" and the phase's terms."""
    losses = {"total": float(record["loss"])} if "loss" in record else {}
    losses.update({_LOSS_NAMES[k]: float(v) for k, v in record.items() if k in _LOSS_NAMES})
    return losses


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Append ``record`` to ``path`` as one JSON line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.write(json.dumps(record) + "\n")


def end_cut_line(path: Path) -> None:
    """End a last line that a killed learner left half-written, so that the next record
    starts on a line of its own and a reader skips only the broken one."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open("rb+") as handle:
        handle.seek(-1, 2)
        if handle.read(1) != b"\n":
            handle.write(b"\n")
