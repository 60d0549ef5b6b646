"""The ConfigMap's YAML files load into the services' real settings models.

Each file is loaded the way its pod loads it: ``Settings.load(file)`` with the environment the
pod spec gives the container (Secret references filled with stand-in values, the pod name for
field references). Because every model forbids unknown keys, this is what proves that the chart
and the code agree on field names, ports and secret variables.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from hybridrl_services.learner.settings import LearnerSettings
from hybridrl_services.reward.settings import RewardSettings
from hybridrl_services.rollout.settings import RolloutSettings
from hybridrl_services.ssb.settings import SSBSettings

from .conftest import RELEASE, Rendered

MODELS: dict[str, Any] = {
    "rollout": RolloutSettings,
    "reward": RewardSettings,
    "ssb": SSBSettings,
    "learner": LearnerSettings,
}
PORTS = {"rollout": 50051, "reward": 50052, "ssb": 50053, "learner": 50054}


def container_of(rendered: Rendered, component: str) -> dict[str, Any] | None:
    for obj in rendered.objects:
        if obj["metadata"]["name"] != f"{RELEASE}-{component}":
            continue
        if obj["kind"] in ("Deployment", "StatefulSet"):
            containers: list[dict[str, Any]] = obj["spec"]["template"]["spec"]["containers"]
            return containers[0]
        if obj["kind"] == "PyTorchJob":
            master = obj["spec"]["pytorchReplicaSpecs"]["Master"]
            return master["template"]["spec"]["containers"][0]
        if obj["kind"] == "TrainingRuntime":
            pod = rendered.trainer_pod(obj)
            (node,) = [c for c in pod["spec"]["containers"] if c["name"] == "node"]
            return node
    return None


def stand_in_environment(container: dict[str, Any], pod_name: str) -> dict[str, str]:
    """The container's HYBRIDRL_* variables with made-up Secret values."""
    environment = {}
    for env in container.get("env", []):
        if "value" in env:
            environment[env["name"]] = env["value"]
        elif "secretKeyRef" in env["valueFrom"]:
            reference = env["valueFrom"]["secretKeyRef"]
            environment[env["name"]] = f"from-{reference['name']}-{reference['key']}"
        elif env["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name":
            environment[env["name"]] = pod_name
    return environment


def load_settings(
    rendered: Rendered, component: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Any:
    for name in list(os.environ):
        if name.startswith("HYBRIDRL_"):
            monkeypatch.delenv(name)
    container = container_of(rendered, component)
    assert container is not None, (rendered.name, component)
    mount = {"name": "config", "mountPath": "/etc/hybridrl", "readOnly": True}
    assert mount in container["volumeMounts"]
    for name, value in stand_in_environment(container, f"{RELEASE}-{component}-0").items():
        monkeypatch.setenv(name, value)
    data = rendered.get("ConfigMap", f"{RELEASE}-config")["data"][f"{component}.yaml"]
    path = tmp_path / f"{component}.yaml"
    path.write_text(data)
    return MODELS[component].load(path)


@pytest.mark.parametrize("component", sorted(MODELS))
def test_config_files_load_into_the_settings_models(
    rendered: Rendered, component: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if container_of(rendered, component) is None:
        assert component == "learner"
        assert rendered.name == "minimal"
        return
    settings = load_settings(rendered, component, tmp_path, monkeypatch)
    assert settings.grpc.port == PORTS[component]
    assert settings.topic_prefix == "hybridrl."
    assert settings.kafka.client_id == f"hybridrl-{component}"
    assert settings.object_store is not None
    if rendered.name == "dev":
        assert settings.kafka.bootstrap_servers == f"{RELEASE}-kafka:9092"
        assert settings.object_store.endpoint == f"{RELEASE}-minio:9000"
        assert settings.object_store.secure is False
        assert settings.object_store.create_bucket is True
        secret = settings.object_store.access_key.get_secret_value()
        assert secret == f"from-{RELEASE}-minio-accessKey"
    if component == "ssb":
        # The StatefulSet names the shard after the pod.
        assert settings.shard == f"{RELEASE}-ssb-0"


def test_sasl_and_tls_settings_reach_every_service(
    rendered_sets: dict[str, Rendered], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rendered = rendered_sets["gpu-keda"]
    for component in MODELS:
        kafka = load_settings(rendered, component, tmp_path, monkeypatch).kafka
        assert kafka.security_protocol == "SASL_SSL"
        assert kafka.sasl_mechanism == "SCRAM-SHA-512"
        assert kafka.sasl_username == "hybridrl"
        assert kafka.sasl_password.get_secret_value() == "from-kafka-user-password"
        assert str(kafka.ssl_cafile) == "/etc/hybridrl/kafka-tls/ca.crt"
        assert str(kafka.ssl_keyfile) == "/etc/hybridrl/kafka-tls/tls.key"
        assert kafka.bootstrap_server_list == ["kafka-0.kafka:9093", "kafka-1.kafka:9093"]


def test_learner_settings_follow_the_values(
    rendered_sets: dict[str, Rendered], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cpu = load_settings(rendered_sets["defaults"], "learner", tmp_path, monkeypatch)
    assert cpu.ssb_address == f"{RELEASE}-ssb-0.{RELEASE}-ssb:50053"
    assert (cpu.deepspeed.backend, cpu.deepspeed.accelerator) == ("gloo", "cpu")
    assert cpu.metrics_file is None
    assert cpu.run_uri == "s3://hybridrl/runs/run"

    gpu = load_settings(rendered_sets["gpu-keda"], "learner", tmp_path, monkeypatch)
    assert (gpu.deepspeed.backend, gpu.deepspeed.accelerator) == ("nccl", "cuda")
    assert (gpu.run.grpo_steps, gpu.run.group_size, gpu.run.grpo.kl_beta) == (500, 16, 0.01)
    assert gpu.checkpoints.every_steps == 20
    secret = gpu.object_store.secret_key.get_secret_value()
    assert secret == "from-s3-keys-secretKey"


def test_component_config_overrides_reach_the_models(
    rendered_sets: dict[str, Rendered], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rendered = rendered_sets["gpu-keda"]
    rollout = load_settings(rendered, "rollout", tmp_path, monkeypatch)
    assert rollout.engine.kind == "vllm"
    assert rollout.group_id == "hybridrl-rollout"
    reward = load_settings(rendered, "reward", tmp_path, monkeypatch)
    assert reward.reward_model.source == "s3://models/vl-reward/"
