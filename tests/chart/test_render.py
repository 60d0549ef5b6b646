"""The chart lints clean and renders objects that the Kubernetes API and the CRDs accept.

Core kinds are validated strictly (unknown fields are errors) against the Kubernetes schemas of
``KUBERNETES_VERSION``. PyTorchJobs are loaded into the training SDK's model and every pod
template is validated as a core PodTemplate; ScaledObjects are checked against KEDA's kafka
trigger, and the TrainJob and its TrainingRuntime in test_trainjob.py.
"""

from __future__ import annotations

from typing import Any

import helm_python
import kubernetes_validate
import pytest
from kubeflow.training import ApiClient
from kubeflow.training.models import KubeflowOrgV1PyTorchJob

from hybridrl.k8s import learner_command

from .conftest import CHART_DIR, CUSTOM_KINDS, KUBERNETES_VERSION, RELEASE, VALUE_SETS, Rendered


def validate_core(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def validate_pod_template(template: dict[str, Any], where: str) -> None:
    """A pod template inside a custom resource, validated as a core PodTemplate."""
    wrapper = {
        "apiVersion": "v1",
        "kind": "PodTemplate",
        "metadata": {"name": where},
        "template": template,
    }
    validate_core(wrapper)


def assert_same_fields(original: Any, roundtrip: Any, path: str) -> None:
    """Every field of ``original`` survived the model (the deserializer drops unknown ones)."""
    if isinstance(original, dict):
        assert isinstance(roundtrip, dict), path
        assert set(original) == set(roundtrip), f"{path}: fields the model does not know: " + str(
            sorted(set(original) - set(roundtrip))
        )
        for key, value in original.items():
            assert_same_fields(value, roundtrip[key], f"{path}.{key}")
    elif isinstance(original, list):
        assert isinstance(roundtrip, list), path
        assert len(original) == len(roundtrip), path
        for index, (left, right) in enumerate(zip(original, roundtrip, strict=True)):
            assert_same_fields(left, right, f"{path}[{index}]")


def test_chart_lints_clean_for_every_value_set() -> None:
    for name, values in VALUE_SETS.items():
        report = helm_python.lint(CHART_DIR, values, strict=True, kube_version="v1.30.0")
        problems = [m for m in report["messages"] if m["severity"] >= 2]
        assert report["errors"] == [], (name, report["errors"])
        assert problems == [], (name, problems)


def test_every_core_object_validates_against_kubernetes(rendered: Rendered) -> None:
    for obj in rendered.objects:
        if (obj["apiVersion"], obj["kind"]) in CUSTOM_KINDS:
            with pytest.raises(kubernetes_validate.SchemaNotFoundError):
                validate_core(obj)
            continue
        try:
            validate_core(obj)
        except kubernetes_validate.ValidationError as error:
            where = ".".join(str(part) for part in error.path)
            pytest.fail(
                f"{rendered.name}: {obj['kind']}/{obj['metadata']['name']} {where}: {error}"
            )


def test_every_object_lives_in_the_release_namespace(rendered: Rendered) -> None:
    for obj in rendered.objects:
        assert obj["metadata"]["namespace"] == "ml", obj["metadata"]["name"]
        assert obj["metadata"]["name"].startswith(f"{RELEASE}-"), obj["metadata"]["name"]


def test_pytorchjob_loads_into_the_training_sdk_model(rendered: Rendered) -> None:
    jobs = rendered.of_kind("PyTorchJob")
    learner = VALUE_SETS[rendered.name].get("learner", {})
    expected = (
        1
        if learner.get("enabled", True) and learner.get("api", "pytorchjob") == ("pytorchjob")
        else 0
    )
    assert len(jobs) == expected
    client = ApiClient()
    for job in jobs:
        model = client._ApiClient__deserialize(job, KubeflowOrgV1PyTorchJob)
        assert isinstance(model, KubeflowOrgV1PyTorchJob)
        assert_same_fields(job, client.sanitize_for_serialization(model), "PyTorchJob")
        specs = model.spec.pytorch_replica_specs
        assert specs["Master"].replicas == 1
        assert specs["Master"].restart_policy == "OnFailure"
        assert model.spec.run_policy.backoff_limit == 3
        workers = int(learner.get("workers", 1))
        assert (specs["Worker"].replicas if "Worker" in specs else 0) == workers
        for replica, spec in job["spec"]["pytorchReplicaSpecs"].items():
            validate_pod_template(spec["template"], f"{RELEASE}-learner-{replica.lower()}")
            assert [c["name"] for c in spec["template"]["spec"]["containers"]] == ["pytorch"]


def test_pytorchjob_launches_the_contract_commands(rendered_sets: dict[str, Rendered]) -> None:
    torchrun = rendered_sets["defaults"].get("PyTorchJob", f"{RELEASE}-learner")
    command = torchrun["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][
        0
    ]["command"]
    assert command == [
        "torchrun",
        "--module",
        "hybridrl",
        "serve",
        "learner",
        "--config",
        "/etc/hybridrl/learner.yaml",
    ]
    assert torchrun["spec"]["nprocPerNode"] == "1"

    assert command == learner_command("torchrun")
    deepspeed = rendered_sets["gpu-keda"].get("PyTorchJob", f"{RELEASE}-learner")
    for replica in deepspeed["spec"]["pytorchReplicaSpecs"].values():
        (container,) = replica["template"]["spec"]["containers"]
        # The script writes DeepSpeed's hostfile from PET_NNODES, which the operator sets.
        assert container["command"] == learner_command("deepspeed")
        assert container["command"][:2] == ["/bin/sh", "-c"]
    assert deepspeed["spec"]["nprocPerNode"] == "4"


def test_learner_service_selects_rank_zero(rendered_sets: dict[str, Rendered]) -> None:
    service = rendered_sets["defaults"].get("Service", f"{RELEASE}-learner")
    assert service["spec"]["selector"] == {
        "training.kubeflow.org/job-name": f"{RELEASE}-learner",
        "training.kubeflow.org/replica-type": "master",
    }
    assert service["spec"]["ports"] == [
        {"name": "grpc", "port": 50054, "targetPort": 50054, "protocol": "TCP"}
    ]
    trainjob = rendered_sets["trainjob"].get("Service", f"{RELEASE}-learner")
    assert trainjob["spec"]["selector"]["jobset.sigs.k8s.io/jobset-name"] == f"{RELEASE}-learner"
    assert trainjob["spec"]["selector"]["jobset.sigs.k8s.io/replicatedjob-name"] == "node"
    assert trainjob["spec"]["selector"]["batch.kubernetes.io/job-completion-index"] == "0"
    with pytest.raises(KeyError):
        rendered_sets["minimal"].get("Service", f"{RELEASE}-learner")


def test_scaledobject_scales_rollout_on_prompt_lag(rendered_sets: dict[str, Rendered]) -> None:
    gpu = rendered_sets["gpu-keda"]
    scaled = gpu.get("ScaledObject", f"{RELEASE}-rollout")
    assert scaled["spec"]["scaleTargetRef"] == {"name": f"{RELEASE}-rollout"}
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    assert all(isinstance(value, str) for value in trigger["metadata"].values())
    assert trigger["metadata"]["topic"] == "hybridrl.prompts"
    assert trigger["metadata"]["lagThreshold"] == "20"
    assert trigger["metadata"]["consumerGroup"] == "hybridrl-rollout"
    assert trigger["metadata"]["sasl"] == "scram_sha512"
    assert trigger["metadata"]["tls"] == "enable"
    assert trigger["authenticationRef"] == {"name": "kafka"}
    # The autoscaler owns the replica count.
    assert "replicas" not in gpu.get("Deployment", f"{RELEASE}-rollout")["spec"]
    assert "replicas" not in rendered_sets["dev"].get("Deployment", f"{RELEASE}-rollout")["spec"]
    hpa = rendered_sets["dev"].get("HorizontalPodAutoscaler", f"{RELEASE}-rollout")
    assert hpa["spec"]["scaleTargetRef"]["name"] == f"{RELEASE}-rollout"


def test_topics_hook_runs_the_cli_with_its_real_options(rendered_sets: dict[str, Rendered]) -> None:
    job = rendered_sets["defaults"].get("Job", f"{RELEASE}-topics")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "topics",
        "create",
        "--bootstrap-servers=kafka:9092",
        "--prefix=hybridrl.",
        "--partitions=8",
        "--replication-factor=3",
    ]
    dev = rendered_sets["dev"].get("Job", f"{RELEASE}-topics")
    assert dev["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    assert "--replication-factor=1" in dev["spec"]["template"]["spec"]["containers"][0]["args"]
    assert (
        "--bootstrap-servers=demo-kafka:9092"
        in dev["spec"]["template"]["spec"]["containers"][0]["args"]
    )
    with pytest.raises(KeyError):
        rendered_sets["gpu-keda"].get("Job", f"{RELEASE}-topics")


def test_notes_say_what_to_do_next(rendered: Rendered) -> None:
    assert "kubectl -n ml get pods -l app.kubernetes.io/instance=demo" in rendered.notes
    assert "hybridrl score" in rendered.notes
    if rendered.name == "dev":
        assert "DEV MODE" in rendered.notes
