"""job_state and replica_summary read a PyTorchJob's status as the training operator writes it."""

from __future__ import annotations

from typing import Any

from kubeflow.training import models

from hybridrl.k8s.job_status import job_state, replica_summary


def condition(kind: str, status: str = "True") -> Any:
    return models.KubeflowOrgV1JobCondition(type=kind, status=status)


def test_no_condition_yet_is_pending() -> None:
    assert job_state([]) == "Pending"


def test_the_newest_true_condition_is_the_state() -> None:
    # The operator sets Running to False and appends Succeeded when the job ends.
    conditions = [condition("Created"), condition("Running", "False"), condition("Succeeded")]
    assert job_state(conditions) == "Succeeded"
    assert job_state([condition("Created"), condition("Running")]) == "Running"
    assert job_state([condition("Created", "False")]) == "Pending"


def job_with(statuses: dict[str, Any] | None) -> Any:
    return models.KubeflowOrgV1PyTorchJob(
        status=models.KubeflowOrgV1JobStatus(replica_statuses=statuses)
    )


def test_replica_summary_counts_pods_master_first() -> None:
    statuses = {
        "Worker": models.KubeflowOrgV1ReplicaStatus(active=2, failed=1),
        "Master": models.KubeflowOrgV1ReplicaStatus(active=1),
    }
    assert replica_summary(job_with(statuses)) == "Master 1 active, Worker 2 active 1 failed"
    finished = {"Master": models.KubeflowOrgV1ReplicaStatus(succeeded=1)}
    assert replica_summary(job_with(finished)) == "Master 1 succeeded"
    idle = {"Master": models.KubeflowOrgV1ReplicaStatus()}
    assert replica_summary(job_with(idle)) == "Master none running"


def test_replica_summary_before_any_pod() -> None:
    assert replica_summary(job_with(None)) == "no pods yet"
    assert replica_summary(models.KubeflowOrgV1PyTorchJob()) == "no pods yet"
