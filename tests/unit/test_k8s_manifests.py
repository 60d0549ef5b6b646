"""The stand-alone manifests in k8s/: the learner PyTorchJob, its TrainJob alternative and the
KEDA ScaledObject of the rollout workers, checked against the code that must agree with them."""

from __future__ import annotations

import inspect
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml
from hybridrl_services.rollout.settings import RolloutSettings
from kubeflow.training import models
from kubernetes.client import ApiClient

from hybridrl.bus.kafka_source import KafkaRecordSource
from hybridrl.bus.topics import Topics
from hybridrl.k8s import (
    LearnerJobSpec,
    ObjectStoreSecret,
    build_learner_pytorchjob,
    learner_command,
    pytorchjob_from_dict,
    pytorchjob_to_dict,
)

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
# The inputs the manifest's header names: the chart's defaults plus one GPU per pod.
MANIFEST_SPEC = LearnerJobSpec(
    gpus_per_node=1, object_store_secret=ObjectStoreSecret(name="hybridrl-object-store")
)


def pytorchjob_manifest() -> dict[str, Any]:
    manifest: dict[str, Any] = yaml.safe_load((K8S / "learner-pytorchjob.yaml").read_text())
    return manifest


def trainjob_documents() -> tuple[dict[str, Any], dict[str, Any]]:
    runtime, job = yaml.safe_load_all((K8S / "learner-trainjob.yaml").read_text())
    return runtime, job


class _Response:
    def __init__(self, data: Any) -> None:
        self.data = data


def kubernetes_object(data: Any, kind: str) -> Any:
    """``data`` read by the Kubernetes client's deserializer into model class ``kind``."""
    return ApiClient().deserialize(_Response(json.dumps(data)), kind)


def test_pytorchjob_manifest_is_the_job_the_cli_builds() -> None:
    job = pytorchjob_from_dict(pytorchjob_manifest())
    assert isinstance(job, models.KubeflowOrgV1PyTorchJob)
    assert job == build_learner_pytorchjob(MANIFEST_SPEC)
    # The deserializer ignores keys it does not know: the round trip shows there are none.
    assert pytorchjob_to_dict(job) == pytorchjob_manifest()


def test_pytorchjob_pods_run_torchrun_in_the_pytorch_container_locked_down() -> None:
    job = pytorchjob_from_dict(pytorchjob_manifest())
    specs = job.spec.pytorch_replica_specs
    assert set(specs) == {"Master", "Worker"}
    assert (specs["Master"].replicas, specs["Worker"].replicas) == (1, 1)
    assert job.spec.nproc_per_node == "1"
    for replica in specs.values():
        pod = replica.template.spec
        (container,) = pod.containers
        assert container.name == "pytorch"
        assert container.image == f"ghcr.io/hybridrl/learner:{VERSION}"
        assert container.command == learner_command("torchrun")
        assert container.command[:3] == ["torchrun", "--module", "hybridrl"]
        security = container.security_context
        assert pod.security_context.run_as_non_root is True
        assert security.run_as_non_root is True
        assert pod.security_context.run_as_user == security.run_as_user == 10001
        assert security.read_only_root_filesystem is True
        assert security.allow_privilege_escalation is False
        assert security.capabilities.drop == ["ALL"]
        assert security.seccomp_profile.type == "RuntimeDefault"
        assert pod.security_context.seccomp_profile.type == "RuntimeDefault"
        resources = container.resources
        assert resources.requests == {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "1"}
        assert resources.limits == {"memory": "16Gi", "nvidia.com/gpu": "1"}
        mounts = {mount.mount_path: mount.name for mount in container.volume_mounts}
        assert mounts == {"/etc/hybridrl": "config", "/tmp": "tmp", "/dev/shm": "shm"}
        volumes = {volume.name: volume for volume in pod.volumes}
        assert volumes["tmp"].empty_dir is not None
        assert volumes["shm"].empty_dir.medium == "Memory"
        (config_map,) = [source.config_map for source in volumes["config"].projected.sources]
        assert config_map.name == "hybridrl-config"
        assert [item.key for item in config_map.items] == ["learner.yaml"]
        secrets = {e.name: e.value_from.secret_key_ref for e in container.env if e.value_from}
        assert {ref.name for ref in secrets.values()} == {"hybridrl-object-store"}
        assert sorted(ref.key for ref in secrets.values()) == ["accessKey", "secretKey"]
    master = specs["Master"].template.spec.containers[0]
    assert {port.name: port.container_port for port in master.ports} == {
        "pytorchjob-port": 23456,
        "grpc": 50054,
    }
    assert master.liveness_probe.grpc.port == 50054
    assert specs["Worker"].template.spec.containers[0].liveness_probe is None


HELM_BOOKKEEPING = {
    "helm.sh/chart",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/version",
    "annotations",
}


def without_helm_bookkeeping(node: Any) -> Any:
    """The chart's job less what only Helm adds (its labels, the config checksum)."""
    if isinstance(node, dict):
        return {
            key: without_helm_bookkeeping(value)
            for key, value in node.items()
            if key not in HELM_BOOKKEEPING
        }
    if isinstance(node, list):
        return [without_helm_bookkeeping(item) for item in node]
    return node


@pytest.mark.parametrize("gpus", [0, 2])
def test_cli_job_is_the_charts_job_for_the_same_values(gpus: int) -> None:
    values = {
        "objectStore": {"existingSecret": "s3-keys"},
        "learner": {"gpu": gpus, "nprocPerNode": max(gpus, 1), "workers": 2},
    }
    with helm_python.Chart.load(ROOT / "charts" / "hybridrl") as chart:
        rendered = chart.render(values=values, name="team-a", namespace="ml")
    (chart_job,) = [
        document
        for path, text in rendered.items()
        if path.endswith(".yaml")
        for document in yaml.safe_load_all(text)
        if document and document["kind"] == "PyTorchJob"
    ]
    spec = LearnerJobSpec(
        release="team-a",
        namespace="ml",
        workers=2,
        gpus_per_node=gpus,
        nproc_per_node=max(gpus, 1),
        object_store_secret=ObjectStoreSecret(name="s3-keys"),
    )
    built = pytorchjob_from_dict(pytorchjob_to_dict(build_learner_pytorchjob(spec)))
    for replica in built.spec.pytorch_replica_specs.values():
        container = replica.template.spec.containers[0]
        # The CLI's job also pins DeepSpeed's backend to its own GPUs: the chart's learner.yaml
        # already matches the chart's pods.
        container.env = [e for e in container.env if "DEEPSPEED" not in e.name]
    assert built == pytorchjob_from_dict(without_helm_bookkeeping(chart_job))


def trainer_pod(runtime: dict[str, Any]) -> dict[str, Any]:
    """The pod template of the runtime's Job that TrainJob.spec.trainer configures."""
    (job,) = [
        job
        for job in runtime["spec"]["template"]["spec"]["replicatedJobs"]
        if job["template"]["metadata"]["labels"]["trainer.kubeflow.org/trainjob-ancestor-step"]
        == "trainer"
    ]
    pod: dict[str, Any] = job["template"]["spec"]["template"]
    return pod


def test_trainjob_runs_its_own_deepspeed_runtime_with_the_torch_policy() -> None:
    runtime, job = trainjob_documents()
    for document in (runtime, job):
        assert document["apiVersion"] == "trainer.kubeflow.org/v1alpha1"
    assert (runtime["kind"], job["kind"]) == ("TrainingRuntime", "TrainJob")
    assert job["spec"]["runtimeRef"] == {
        "apiGroup": "trainer.kubeflow.org",
        "kind": "TrainingRuntime",
        "name": runtime["metadata"]["name"],
    }
    # Fields of Trainer v2.3's TrainJobSpec, Trainer and TrainingRuntimeSpec (a typo is dropped
    # by the API server, so it must fail here).
    assert set(job["spec"]) <= {"runtimeRef", "initializer", "trainer", "runtimePatches",
                                "suspend", "activeDeadlineSeconds", "managedBy"}  # fmt: skip
    trainer = job["spec"]["trainer"]
    assert set(trainer) <= {"image", "command", "args", "env", "numNodes", "resourcesPerNode",
                            "numProcPerNode"}  # fmt: skip
    assert set(runtime["spec"]) <= {"mlPolicy", "podGroupPolicy", "template"}
    policies = set(runtime["spec"]["mlPolicy"]) - {"numNodes"}
    assert policies == {"torch"}  # the policy that sets the PET_* variables the script reads
    assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", job["metadata"]["name"])
    assert isinstance(trainer["numNodes"], int)
    assert trainer["numNodes"] >= 1
    # The launch script passes PET_NPROC_PER_NODE to --num_gpus: "auto" would break it.
    assert isinstance(trainer["numProcPerNode"], int)
    assert trainer["image"] == f"ghcr.io/hybridrl/learner:{VERSION}"
    assert not [e["name"] for e in trainer["env"] if e["name"].startswith("PET_")]


def test_trainjob_pods_match_the_pytorchjob_pods() -> None:
    runtime, job = trainjob_documents()
    template = trainer_pod(runtime)
    pod = kubernetes_object(template, "V1PodTemplateSpec")
    assert ApiClient().sanitize_for_serialization(pod) == template  # no unknown keys
    (container,) = pod.spec.containers
    assert container.name == "node"  # Trainer configures the container of this name
    assert container.command == learner_command("deepspeed")
    worker = build_learner_pytorchjob(MANIFEST_SPEC).spec.pytorch_replica_specs["Worker"]
    expected_pod, (expected,) = worker.template.spec, worker.template.spec.containers
    for field in ("security_context", "volumes", "service_account_name"):
        assert getattr(pod.spec, field) == getattr(expected_pod, field), field
    assert pod.spec.automount_service_account_token is False
    assert container.security_context == expected.security_context
    assert container.volume_mounts == expected.volume_mounts
    trainer = job["spec"]["trainer"]
    assert kubernetes_object(trainer["env"], "list[V1EnvVar]") == expected.env
    resources = kubernetes_object(trainer["resourcesPerNode"], "V1ResourceRequirements")
    assert resources == expected.resources
    assert str(trainer["numProcPerNode"]) == resources.limits["nvidia.com/gpu"]


def test_scaledobject_scales_the_rollout_deployment_on_the_prompts_lag() -> None:
    scaled = yaml.safe_load((K8S / "keda-scaledobject.yaml").read_text())
    assert (scaled["apiVersion"], scaled["kind"]) == ("keda.sh/v1alpha1", "ScaledObject")
    spec = scaled["spec"]
    assert set(spec) <= {"scaleTargetRef", "pollingInterval", "cooldownPeriod",
                         "initialCooldownPeriod", "idleReplicaCount", "minReplicaCount",
                         "maxReplicaCount", "advanced", "triggers", "fallback"}  # fmt: skip
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "hybridrl-rollout",
    }
    partitions = yaml.safe_load((ROOT / "charts/hybridrl/values.yaml").read_text())["topics"]
    # Workers beyond the topic's partitions would sit idle.
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] <= partitions["partitions"]
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "kafka"
    metadata = trigger["metadata"]
    assert all(isinstance(value, str) for value in metadata.values())  # map[string]string
    assert set(metadata) <= {"bootstrapServers", "consumerGroup", "topic", "lagThreshold",
                             "activationLagThreshold", "offsetResetPolicy", "allowIdleConsumers",
                             "scaleToZeroOnInvalidOffset", "excludePersistentLag",
                             "limitToPartitionsWithLag", "partitionLimitation", "sasl", "tls",
                             "version"}  # fmt: skip
    assert metadata["topic"] == Topics().prompts
    assert metadata["consumerGroup"] == RolloutSettings().group_id
    reset = inspect.signature(KafkaRecordSource).parameters["auto_offset_reset"].default
    assert metadata["offsetResetPolicy"] == reset
    assert int(metadata["lagThreshold"]) > 0
    (policy,) = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"][
        "policies"
    ]
    assert policy["type"] in {"Pods", "Percent"}
    assert 0 < policy["periodSeconds"] <= 1800
