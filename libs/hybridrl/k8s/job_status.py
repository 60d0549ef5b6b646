"""Reading a PyTorchJob's status: its state and how many pods of each replica type run.

The training operator appends conditions (Created, Running, Restarting, Succeeded, Failed) to
``status.conditions``; the newest one whose status is "True" is the job's state. These functions
read a ``KubeflowOrgV1PyTorchJob`` as ``TrainingClient.get_job`` returns it, for
``hybridrl learner status``.
"""

from __future__ import annotations

from typing import Any, Final

TERMINAL_STATES: Final[frozenset[str]] = frozenset({"Succeeded", "Failed"})


def job_state(conditions: list[Any]) -> str:
    """The type of the newest true condition, or "Pending" before the operator has written one."""
    # The operator moves a condition it updates to the end of the list: the last is the newest.
    true_types = [str(condition.type) for condition in conditions if condition.status == "True"]
    return true_types[-1] if true_types else "Pending"


def replica_summary(job: Any) -> str:
    """One phrase per replica type, e.g. "Master 1 active, Worker 2 active 1 failed"."""
    statuses = job.status.replica_statuses if job.status is not None else None
    if not statuses:
        return "no pods yet"
    phrases = []
    for replica_type in sorted(statuses, key=lambda name: (name != "Master", name)):
        status = statuses[replica_type]
        counts = [
            f"{count} {word}"
            for word, count in (
                ("active", status.active),
                ("succeeded", status.succeeded),
                ("failed", status.failed),
            )
            if count
        ]
        phrases.append(f"{replica_type} {' '.join(counts) or 'none running'}")
    return ", ".join(phrases)
