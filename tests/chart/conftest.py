"""Fixtures of the chart tests: the chart, its value sets, and each set rendered once.

The chart is rendered offline with the Helm SDK (``helm_python``: Helm's Go engine through a
C library, no cluster, ``lookup`` returns nothing); every test reads the parsed objects.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

CHART_DIR = Path(__file__).resolve().parents[2] / "charts" / "hybridrl"
RELEASE = "demo"
NAMESPACE = "ml"
KUBERNETES_VERSION = "1.30"
"""The oldest minor the tests validate against; the chart's kubeVersion is >=1.27."""

# Kinds that the Kubernetes schemas do not know: each is checked by its own test.
CUSTOM_KINDS = {
    ("kubeflow.org/v1", "PyTorchJob"),
    ("trainer.kubeflow.org/v1alpha1", "TrainJob"),
    ("trainer.kubeflow.org/v1alpha1", "TrainingRuntime"),
    ("keda.sh/v1alpha1", "ScaledObject"),
}

VALUE_SETS: dict[str, dict[str, Any]] = {
    # External Kafka and object store, as values.yaml ships.
    "defaults": {},
    # In-cluster Kafka and MinIO, CPU autoscaling.
    "dev": {
        "dev": {"enabled": True},
        "rollout": {"autoscaling": {"hpa": {"enabled": True}}},
    },
    # A GPU cluster: KEDA on prompt lag, SASL_SSL Kafka with mutual TLS, the DeepSpeed launcher.
    "gpu-keda": {
        "kafka": {
            "bootstrapServers": "kafka-0.kafka:9093,kafka-1.kafka:9093",
            "security": {
                "protocol": "SASL_SSL",
                "sasl": {
                    "mechanism": "SCRAM-SHA-512",
                    "username": "hybridrl",
                    "existingSecret": "kafka-user",
                },
                "tls": {"existingSecret": "kafka-tls", "clientAuth": True},
            },
        },
        "topics": {"create": False},
        "objectStore": {"endpoint": "s3.internal:443", "existingSecret": "s3-keys"},
        "rollout": {
            "gpu": 1,
            "config": {"engine": {"kind": "vllm", "vllm_model_path": "/tmp/model"}},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
            "nodeSelector": {"nvidia.com/gpu.present": "true"},
            "priorityClassName": "rl-inference",
            "autoscaling": {
                "keda": {"enabled": True, "lagThreshold": 20, "triggerAuthenticationName": "kafka"}
            },
        },
        "reward": {"gpu": 1, "config": {"reward_model": {"source": "s3://models/vl-reward/"}}},
        "learner": {
            "gpu": 4,
            "nprocPerNode": 4,
            "workers": 3,
            "launcher": "deepspeed",
            "config": {"checkpoints": {"every_steps": 20}},
        },
        "config": {"run": {"grpo_steps": 500, "group_size": 16, "grpo": {"kl_beta": 0.01}}},
    },
    # The smallest install: one pod per service, no learner, no disruption budgets.
    "minimal": {
        "learner": {"enabled": False},
        "rollout": {"replicas": 1, "pdb": {"enabled": False}},
        "reward": {"replicas": 1, "pdb": {"enabled": False}},
        "ssb": {"replicas": 1, "pdb": {"enabled": False}},
    },
    # The less common switches together: labels, pull secrets, extra ingress, dev persistence,
    # a single-pod DeepSpeed learner.
    "options": {
        "commonLabels": {"team": "rl"},
        "commonAnnotations": {"owner": "ml-platform"},
        "image": {"pullSecrets": ["ghcr-pull"], "tag": "0.1.0-rc1"},
        "dev": {
            "enabled": True,
            "kafka": {"persistence": {"enabled": True, "storageClass": "ssd"}},
            "minio": {"persistence": {"enabled": True}},
        },
        "networkPolicy": {"extraIngress": {"rollout": [{"ports": [{"port": 50051}]}]}},
        "learner": {
            "workers": 0,
            "launcher": "deepspeed",
            "runPolicy": {"ttlSecondsAfterFinished": 3600, "activeDeadlineSeconds": 86400},
        },
        "ssb": {"replicas": 2, "image": {"tag": "0.1.1"}},
    },
    # Kubeflow Trainer v2: a TrainJob on the chart's TrainingRuntime (torch policy), DeepSpeed.
    "trainjob": {
        "learner": {"api": "trainjob", "launcher": "deepspeed", "workers": 2},
        "objectStore": {"existingSecret": "s3-keys"},
    },
}


@dataclass
class Rendered:
    """One value set rendered: the objects by (kind, name), the manifests and NOTES."""

    name: str
    values: dict[str, Any]
    objects: list[dict[str, Any]] = field(default_factory=list)
    notes: str = ""

    def get(self, kind: str, name: str) -> dict[str, Any]:
        for obj in self.objects:
            if obj["kind"] == kind and obj["metadata"]["name"] == name:
                return obj
        raise KeyError(f"{self.name}: no {kind} {name}")

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def trainer_pod(self, runtime: dict[str, Any]) -> dict[str, Any]:
        """The pod template of ``runtime``'s trainer step as the TrainJob on it makes its pods.

        Kubeflow Trainer sets the image, the resources and the variables of the TrainJob's
        ``spec.trainer`` on the runtime's container ``node`` (env merged by name), and the
        torch policy adds the ``PET_*`` variables, left out here.
        """
        (step,) = [
            job
            for job in runtime["spec"]["template"]["spec"]["replicatedJobs"]
            if job["template"]["metadata"]["labels"].get(
                "trainer.kubeflow.org/trainjob-ancestor-step"
            )
            == "trainer"
        ]
        pod: dict[str, Any] = copy.deepcopy(step["template"]["spec"]["template"])
        reference = {"kind": runtime["kind"], "name": runtime["metadata"]["name"]}
        (trainer,) = [
            job["spec"]["trainer"]
            for job in self.of_kind("TrainJob")
            if reference.items() <= job["spec"]["runtimeRef"].items()
        ]
        (node,) = [c for c in pod["spec"]["containers"] if c["name"] == "node"]
        node["image"] = trainer["image"]
        node["resources"] = trainer["resourcesPerNode"]
        env = {variable["name"]: variable for variable in node.get("env", [])}
        env.update((variable["name"], variable) for variable in trainer.get("env", []))
        if env:
            node["env"] = list(env.values())
        return pod

    def config_file(self, component: str) -> dict[str, Any]:
        data = self.get("ConfigMap", f"{RELEASE}-config")["data"][f"{component}.yaml"]
        loaded: dict[str, Any] = yaml.safe_load(data)
        return loaded


@pytest.fixture(scope="session")
def chart() -> Iterator[helm_python.Chart]:
    with helm_python.Chart.load(CHART_DIR) as loaded:
        yield loaded


def render(chart: helm_python.Chart, name: str, values: dict[str, Any]) -> Rendered:
    manifests = chart.render(values=values, name=RELEASE, namespace=NAMESPACE)
    rendered = Rendered(name, values)
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            rendered.notes = text
            continue
        rendered.objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return rendered


@pytest.fixture(scope="session")
def rendered_sets(chart: helm_python.Chart) -> dict[str, Rendered]:
    """Every value set by name, each rendered once for the whole run."""
    return {name: render(chart, name, values) for name, values in VALUE_SETS.items()}


@pytest.fixture(params=sorted(VALUE_SETS))
def rendered(request: pytest.FixtureRequest, rendered_sets: dict[str, Rendered]) -> Rendered:
    """Each value set in turn (a test using it runs once per set)."""
    return rendered_sets[request.param]
