"""Every pod the chart makes is restricted, probed, sized and labelled.

Walks each pod template: Deployments, StatefulSets, the hook Job, the PyTorchJob's Master and
Worker replicas, and the TrainingRuntime's node pods as its TrainJob makes them (image, env and
resources come from the TrainJob's ``spec.trainer``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .conftest import RELEASE, Rendered

STANDARD_LABELS = {
    "app.kubernetes.io/name": "hybridrl",
    "app.kubernetes.io/instance": RELEASE,
    "app.kubernetes.io/version": "0.1.0",
    "app.kubernetes.io/part-of": "hybridrl",
    "app.kubernetes.io/managed-by": "Helm",
    "helm.sh/chart": "hybridrl-0.1.0",
}
HYBRIDRL_USER = 10001
KAFKA_IMAGE_USER = 1000


def pod_templates(rendered: Rendered) -> Iterator[tuple[str, dict[str, Any], bool]]:
    """(where, pod template, whether its containers must have probes)."""
    for obj in rendered.objects:
        where = f"{rendered.name}: {obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] in ("Deployment", "StatefulSet"):
            yield where, obj["spec"]["template"], True
        elif obj["kind"] == "Job":
            # A hook Job runs to completion; there is nothing to probe.
            yield where, obj["spec"]["template"], False
        elif obj["kind"] == "PyTorchJob":
            for replica, spec in obj["spec"]["pytorchReplicaSpecs"].items():
                # Workers serve nothing; values.yaml says why they have no probes.
                yield f"{where}/{replica}", spec["template"], replica == "Master"
        elif obj["kind"] == "TrainingRuntime":
            # One template makes every node; only rank 0 serves gRPC: values.yaml says why.
            yield f"{where}/node", rendered.trainer_pod(obj), False


def test_every_object_has_the_standard_labels(rendered: Rendered) -> None:
    for obj in rendered.objects:
        labels = obj["metadata"]["labels"]
        assert STANDARD_LABELS.items() <= labels.items(), obj["metadata"]["name"]
        assert labels["app.kubernetes.io/component"], obj["metadata"]["name"]


def test_every_pod_template_has_the_standard_labels(rendered: Rendered) -> None:
    for where, template, _ in pod_templates(rendered):
        labels = template["metadata"]["labels"]
        assert STANDARD_LABELS.items() <= labels.items(), where
        assert labels["app.kubernetes.io/component"] in (
            "rollout",
            "reward",
            "ssb",
            "learner",
            "topics",
            "kafka",
            "minio",
        ), where


def test_selectors_match_their_pod_labels(rendered: Rendered) -> None:
    for obj in rendered.objects:
        if obj["kind"] in ("Deployment", "StatefulSet"):
            selector = obj["spec"]["selector"]["matchLabels"]
            assert selector.items() <= obj["spec"]["template"]["metadata"]["labels"].items()


def test_every_pod_runs_restricted(rendered: Rendered) -> None:
    for where, template, _ in pod_templates(rendered):
        spec = template["spec"]
        pod_security = spec["securityContext"]
        assert pod_security["runAsNonRoot"] is True, where
        assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}, where
        expected_user = KAFKA_IMAGE_USER if where.endswith(f"/{RELEASE}-kafka") else HYBRIDRL_USER
        assert pod_security["runAsUser"] == expected_user, where
        assert spec["automountServiceAccountToken"] is False, where
        assert spec.get("hostNetwork") is not True, where
        for container in spec["containers"] + spec.get("initContainers", []):
            security = container["securityContext"]
            name = f"{where}/{container['name']}"
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"] == {"drop": ["ALL"]}, name
            assert security["readOnlyRootFilesystem"] is True, name
            assert security.get("privileged") is not True, name
            assert security["runAsNonRoot"] is True, name
            assert security["seccompProfile"] == {"type": "RuntimeDefault"}, name


def test_read_only_containers_get_a_writable_tmp(rendered: Rendered) -> None:
    for where, template, _ in pod_templates(rendered):
        volumes = {volume["name"]: volume for volume in template["spec"].get("volumes", [])}
        for container in template["spec"]["containers"]:
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            assert "/tmp" in mounts, f"{where}/{container['name']}"
            assert "emptyDir" in volumes[mounts["/tmp"]], where


def test_every_long_running_container_has_liveness_and_readiness(rendered: Rendered) -> None:
    for where, template, probed in pod_templates(rendered):
        for container in template["spec"]["containers"]:
            name = f"{where}/{container['name']}"
            if not probed:
                assert "livenessProbe" not in container, name
                continue
            assert "livenessProbe" in container, name
            assert "readinessProbe" in container, name


def test_grpc_services_are_probed_over_grpc_health(rendered: Rendered) -> None:
    ports = {"rollout": 50051, "reward": 50052, "ssb": 50053}
    for component, port in ports.items():
        workload = next(
            obj
            for obj in rendered.objects
            if obj["kind"] in ("Deployment", "StatefulSet")
            and obj["metadata"]["name"] == f"{RELEASE}-{component}"
        )
        (container,) = workload["spec"]["template"]["spec"]["containers"]
        assert container["ports"] == [{"name": "grpc", "containerPort": port, "protocol": "TCP"}]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert container[probe]["grpc"] == {"port": port}, (component, probe)
        service = rendered.get("Service", f"{RELEASE}-{component}")
        assert service["spec"]["ports"][0]["name"] == "grpc"
        assert service["spec"]["ports"][0]["port"] == port


def test_learner_master_probes_status_and_rendezvous(rendered: Rendered) -> None:
    for job in rendered.of_kind("PyTorchJob"):
        master = job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]
        (container,) = master["containers"]
        # Gating startup or readiness on the status server would deadlock the rendezvous.
        assert container["startupProbe"]["tcpSocket"] == {"port": "pytorchjob-port"}
        assert container["readinessProbe"]["tcpSocket"] == {"port": "pytorchjob-port"}
        assert container["livenessProbe"]["grpc"] == {"port": 50054}
        liveness = container["livenessProbe"]
        assert liveness["periodSeconds"] * liveness["failureThreshold"] >= 600
        assert {"name": "pytorchjob-port", "containerPort": 23456, "protocol": "TCP"} in container[
            "ports"
        ]


def test_every_container_has_requests_and_memory_limits(rendered: Rendered) -> None:
    for where, template, _ in pod_templates(rendered):
        for container in template["spec"]["containers"] + template["spec"].get(
            "initContainers", []
        ):
            resources = container["resources"]
            name = f"{where}/{container['name']}"
            assert resources["requests"]["cpu"], name
            assert resources["requests"]["memory"], name
            assert resources["limits"]["memory"], name


def test_gpus_are_requested_where_asked(rendered_sets: dict[str, Rendered]) -> None:
    gpu = rendered_sets["gpu-keda"]
    rollout = gpu.get("Deployment", f"{RELEASE}-rollout")["spec"]["template"]["spec"]
    assert rollout["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert rollout["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists"}]
    assert rollout["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert rollout["priorityClassName"] == "rl-inference"
    job = gpu.get("PyTorchJob", f"{RELEASE}-learner")
    for spec in job["spec"]["pytorchReplicaSpecs"].values():
        resources = spec["template"]["spec"]["containers"][0]["resources"]
        assert resources["limits"]["nvidia.com/gpu"] == 4
        assert resources["requests"]["nvidia.com/gpu"] == 4
    for where, template, _ in pod_templates(rendered_sets["defaults"]):
        for container in template["spec"]["containers"]:
            assert "nvidia.com/gpu" not in container["resources"].get("limits", {}), where


def test_pods_use_their_components_service_account(rendered: Rendered) -> None:
    accounts = {obj["metadata"]["name"]: obj for obj in rendered.of_kind("ServiceAccount")}
    assert all(account["automountServiceAccountToken"] is False for account in accounts.values())
    for where, template, _ in pod_templates(rendered):
        component = template["metadata"]["labels"]["app.kubernetes.io/component"]
        assert template["spec"]["serviceAccountName"] == f"{RELEASE}-{component}", where
        assert f"{RELEASE}-{component}" in accounts, where
    assert not rendered.of_kind("Role")
    assert not rendered.of_kind("RoleBinding")


def test_secrets_reach_pods_only_by_reference(rendered: Rendered) -> None:
    for where, template, _ in pod_templates(rendered):
        for container in template["spec"]["containers"]:
            for env in container.get("env", []):
                if any(word in env["name"] for word in ("KEY", "PASSWORD", "SECRET")):
                    assert "value" not in env, (where, env["name"])
                    assert "secretKeyRef" in env["valueFrom"], (where, env["name"])


def test_config_changes_roll_the_pods(chart: Any, rendered_sets: dict[str, Rendered]) -> None:
    from .conftest import render

    changed = render(chart, "changed", {"reward": {"config": {"max_poll_records": 32}}})
    before = rendered_sets["defaults"].get("Deployment", f"{RELEASE}-reward")
    after = changed.get("Deployment", f"{RELEASE}-reward")
    key = "checksum/config"
    old = before["spec"]["template"]["metadata"]["annotations"][key]
    assert len(old) == 64
    assert after["spec"]["template"]["metadata"]["annotations"][key] != old
