"""The learner as a Kubeflow Trainer v2 TrainJob on the chart's own TrainingRuntime.

The chart's pair must be the stand-alone k8s/learner-trainjob.yaml made from values: the same
fields of the trainer.kubeflow.org/v1alpha1 API (which tests/unit/test_k8s_manifests.py holds
the manifest to), the torch policy that sets the PET_* variables, the launch command of
``hybridrl.k8s.launchers`` and the pods of the chart's PyTorchJob. The pod templates are
validated as core PodTemplates.
"""

from __future__ import annotations

from typing import Any

import helm_python
import pytest
import yaml

from hybridrl.k8s import learner_command

from .conftest import CHART_DIR, RELEASE, Rendered, render
from .test_render import validate_pod_template

MANIFEST = CHART_DIR.parents[1] / "k8s" / "learner-trainjob.yaml"
# Field names of Trainer v2's TrainJobSpec, Trainer and TrainingRuntimeSpec
# (pkg/apis/trainer/v1alpha1): the API server drops a misspelt field without an error.
TRAINJOB_SPEC = {"runtimeRef", "initializer", "trainer", "runtimePatches", "suspend",
                 "activeDeadlineSeconds", "managedBy"}  # fmt: skip
TRAINJOB_TRAINER = {"image", "command", "args", "env", "numNodes", "resourcesPerNode",
                    "numProcPerNode"}  # fmt: skip
TRAINING_RUNTIME_SPEC = {"mlPolicy", "podGroupPolicy", "template"}
# Where the Trainer API embeds core types, which the Kubernetes schemas check instead.
POD_TEMPLATE = ".template.spec.replicatedJobs[].template.spec.template"
TRAINER_CORE_FIELDS = {".trainer.env", ".trainer.resourcesPerNode"}
NAME = f"{RELEASE}-learner"


def field_paths(node: Any, stop: set[str], path: str = "") -> set[str]:
    """Every key path of ``node`` (list items as ``[]``), not descending below ``stop``."""
    if path in stop or not node or not isinstance(node, dict | list):
        return {path}
    if isinstance(node, list):
        return set().union(*(field_paths(item, stop, f"{path}[]") for item in node))
    return set().union(*(field_paths(value, stop, f"{path}.{key}") for key, value in node.items()))


def learner_objects(rendered: Rendered) -> tuple[dict[str, Any], dict[str, Any]]:
    (runtime,) = rendered.of_kind("TrainingRuntime")
    (job,) = rendered.of_kind("TrainJob")
    return runtime, job


def node_container(pod: dict[str, Any]) -> dict[str, Any]:
    (container,) = pod["spec"]["containers"]
    assert container["name"] == "node"  # the container Trainer configures
    return container


def test_trainjob_references_the_charts_runtime(rendered_sets: dict[str, Rendered]) -> None:
    runtime, job = learner_objects(rendered_sets["trainjob"])
    for document in (runtime, job):
        assert document["apiVersion"] == "trainer.kubeflow.org/v1alpha1"
        assert document["metadata"]["name"] == NAME
    assert job["spec"]["runtimeRef"] == {
        "apiGroup": "trainer.kubeflow.org",
        "kind": "TrainingRuntime",
        "name": NAME,
    }
    assert set(job["spec"]) == {"runtimeRef", "trainer"}
    trainer = job["spec"]["trainer"]
    assert set(trainer) == {"image", "numNodes", "numProcPerNode", "resourcesPerNode", "env"}
    assert trainer["image"] == "ghcr.io/hybridrl/learner:0.1.0"
    assert (trainer["numNodes"], trainer["numProcPerNode"]) == (3, 1)  # 1 + workers
    assert trainer["resourcesPerNode"] == {
        "limits": {"memory": "16Gi"},
        "requests": {"cpu": "2", "memory": "8Gi"},
    }
    references = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in trainer["env"]}
    assert references == {
        "HYBRIDRL_LEARNER_OBJECT_STORE__ACCESS_KEY": {"name": "s3-keys", "key": "accessKey"},
        "HYBRIDRL_LEARNER_OBJECT_STORE__SECRET_KEY": {"name": "s3-keys", "key": "secretKey"},
    }
    # The torch policy, whose PET_* variables the launch command reads; Trainer rejects
    # a TrainJob that sets them itself.
    assert runtime["spec"]["mlPolicy"] == {"numNodes": 3, "torch": {}}
    assert runtime["metadata"]["labels"]["trainer.kubeflow.org/framework"] == "deepspeed"
    jobset = runtime["spec"]["template"]["spec"]
    assert jobset["failurePolicy"] == {"maxRestarts": 3}
    (node,) = jobset["replicatedJobs"]
    assert node["name"] == "node"
    assert node["template"]["spec"]["backoffLimit"] == 0
    assert node["template"]["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert f"runs as TrainJob {NAME} on TrainingRuntime {NAME}:" in rendered_sets["trainjob"].notes


def test_trainjob_has_the_fields_of_the_stand_alone_manifest(
    rendered_sets: dict[str, Rendered],
) -> None:
    manifest_runtime, manifest_job = yaml.safe_load_all(MANIFEST.read_text())
    runtime, job = learner_objects(rendered_sets["trainjob"])
    assert (runtime["kind"], job["kind"]) == (manifest_runtime["kind"], manifest_job["kind"])
    assert set(job["spec"]) <= TRAINJOB_SPEC
    assert set(job["spec"]["trainer"]) <= TRAINJOB_TRAINER
    assert set(runtime["spec"]) <= TRAINING_RUNTIME_SPEC
    assert field_paths(job["spec"], TRAINER_CORE_FIELDS) == field_paths(
        manifest_job["spec"], TRAINER_CORE_FIELDS
    )
    assert field_paths(runtime["spec"], {POD_TEMPLATE}) == field_paths(
        manifest_runtime["spec"], {POD_TEMPLATE}
    )
    framework = "trainer.kubeflow.org/framework"
    assert (
        runtime["metadata"]["labels"][framework]
        == manifest_runtime["metadata"]["labels"][framework]
    )
    # The pod as Trainer makes it, the TrainJob's env and resources included, is a core pod.
    rendered = rendered_sets["trainjob"]
    validate_pod_template(rendered.trainer_pod(runtime), f"{NAME}-node")


@pytest.mark.parametrize("launcher", ["torchrun", "deepspeed"])
def test_node_runs_the_launchers_command(chart: helm_python.Chart, launcher: str) -> None:
    rendered = render(chart, launcher, {"learner": {"api": "trainjob", "launcher": launcher}})
    runtime, _ = learner_objects(rendered)
    container = node_container(rendered.trainer_pod(runtime))
    assert container["command"] == learner_command(launcher)
    framework = {"torchrun": "torch", "deepspeed": "deepspeed"}[launcher]
    assert runtime["metadata"]["labels"]["trainer.kubeflow.org/framework"] == framework


def test_runtime_pods_are_the_pytorchjob_pods(chart: helm_python.Chart) -> None:
    learner = {
        "launcher": "deepspeed",
        "gpu": 2,
        "nprocPerNode": 2,
        "workers": 1,
        "nodeSelector": {"nvidia.com/gpu.present": "true"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
        "priorityClassName": "training",
        "podAnnotations": {"team": "rl"},
        "trainJob": {"runtime": {"maxRestarts": 7}},
    }
    values = {"image": {"pullSecrets": ["ghcr-pull"]}, "objectStore": {"existingSecret": "s3"}}
    pytorchjob = render(chart, "pytorchjob", {**values, "learner": learner})
    trainjob = render(chart, "trainjob", {**values, "learner": {**learner, "api": "trainjob"}})
    runtime, job = learner_objects(trainjob)
    assert runtime["spec"]["template"]["spec"]["failurePolicy"] == {"maxRestarts": 7}
    assert job["spec"]["trainer"]["numProcPerNode"] == 2
    pod = trainjob.trainer_pod(runtime)
    worker = pytorchjob.get("PyTorchJob", NAME)["spec"]["pytorchReplicaSpecs"]["Worker"]
    expected = worker["template"]
    assert pod["metadata"] == expected["metadata"]  # labels and the config checksum
    for field in set(pod["spec"]) | set(expected["spec"]):
        if field not in ("containers", "restartPolicy"):
            assert pod["spec"].get(field) == expected["spec"].get(field), field
    assert pod["spec"]["priorityClassName"] == "training"
    container = node_container(pod)
    (expected_container,) = expected["spec"]["containers"]
    for field in set(container) | set(expected_container):
        # The operator names its container and takes the rendezvous port from it; Trainer's
        # torch policy adds its own port 29400.
        if field not in ("name", "ports"):
            assert container.get(field) == expected_container.get(field), field
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert container["ports"] == [{"name": "grpc", "containerPort": 50054, "protocol": "TCP"}]


def test_an_existing_runtime_is_referenced_by_kind_and_name(chart: helm_python.Chart) -> None:
    runtime = {"create": False, "kind": "TrainingRuntime", "name": "team-deepspeed"}
    values = {"learner": {"api": "trainjob", "trainJob": {"runtime": runtime}}}
    rendered = render(chart, "existing", values)
    assert rendered.of_kind("TrainingRuntime") == []
    (job,) = rendered.of_kind("TrainJob")
    assert job["spec"]["runtimeRef"] == {
        "apiGroup": "trainer.kubeflow.org",
        "kind": "TrainingRuntime",
        "name": "team-deepspeed",
    }
    assert "on TrainingRuntime team-deepspeed" in rendered.notes
    service = rendered.get("Service", NAME)
    assert service["spec"]["selector"]["jobset.sigs.k8s.io/replicatedjob-name"] == "node"
