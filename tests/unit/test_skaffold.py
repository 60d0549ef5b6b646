"""skaffold.yaml: builds every service image from its Dockerfile and deploys the chart with the
value names the chart defines; the dev and gpu profiles patch what exists."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from hybridrl_services.learner.settings import LearnerSettings
from hybridrl_services.reward.settings import RewardSettings
from hybridrl_services.rollout.settings import RolloutSettings
from hybridrl_services.ssb.settings import SSBSettings
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[2]
CONFIG = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
CHART_VALUES = yaml.safe_load((ROOT / "charts" / "hybridrl" / "values.yaml").read_text())
SETTINGS: dict[str, type[BaseSettings]] = {
    "rollout": RolloutSettings,
    "reward": RewardSettings,
    "ssb": SSBSettings,
    "learner": LearnerSettings,
}
CPU_TORCH = "https://download.pytorch.org/whl/cpu"


def artifacts() -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = CONFIG["build"]["artifacts"]
    return result


def declared_args(dockerfile: str) -> set[str]:
    return set(re.findall(r"^ARG (\w+)", (ROOT / dockerfile).read_text(), flags=re.M))


def sanitized(image: str) -> str:
    return re.sub(r"[/.:-]", "_", image)


def profile(name: str) -> dict[str, Any]:
    return next(p for p in CONFIG["profiles"] if p["name"] == name)


def patched_values(name: str) -> dict[str, str]:
    (patch,) = [p for p in profile(name)["patches"] if p["path"].endswith("/setValues")]
    assert patch["op"] == "add"
    assert patch["path"] == "/deploy/helm/releases/0/setValues"
    values: dict[str, str] = patch["value"]
    return values


def build_arg_patches(name: str) -> dict[tuple[int, str], str]:
    found = {}
    for patch in profile(name)["patches"]:
        match = re.fullmatch(r"/build/artifacts/(\d+)/docker/buildArgs/(\w+)", patch["path"])
        if match:
            assert patch["op"] == "add"
            found[(int(match[1]), match[2])] = patch["value"]
    return found


def test_config_uses_the_newest_schema_and_the_chart() -> None:
    assert CONFIG["apiVersion"] == "skaffold/v4beta14"
    assert CONFIG["kind"] == "Config"
    (release,) = CONFIG["deploy"]["helm"]["releases"]
    assert (ROOT / release["chartPath"] / "Chart.yaml").exists()
    assert {p["name"] for p in CONFIG["profiles"]} == {"dev", "gpu"}


def test_one_artifact_per_service_dockerfile_with_its_declared_arguments() -> None:
    on_disk = {path.parent.name for path in (ROOT / "services").glob("*/Dockerfile")}
    assert {a["image"] for a in artifacts()} == {f"ghcr.io/hybridrl/{n}" for n in on_disk}
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for artifact in artifacts():
        name = artifact["image"].rsplit("/", 1)[1]
        assert artifact["context"] == "."
        assert artifact["docker"]["dockerfile"] == f"services/{name}/Dockerfile"
        arguments = artifact["docker"]["buildArgs"]
        assert set(arguments) <= declared_args(artifact["docker"]["dockerfile"]), name
        assert arguments["VERSION"] == version


def test_release_hands_the_chart_every_built_image() -> None:
    (release,) = CONFIG["deploy"]["helm"]["releases"]
    templates = release["setValueTemplates"]
    first = sanitized(artifacts()[0]["image"])
    assert templates["image.registry"] == f"{{{{.IMAGE_DOMAIN_{first}}}}}"
    for artifact in artifacts():
        name, key = artifact["image"].rsplit("/", 1)[1], sanitized(artifact["image"])
        assert templates[f"{name}.image.repository"] == f"{{{{.IMAGE_REPO_NO_DOMAIN_{key}}}}}"
        assert templates[f"{name}.image.tag"] == (
            f"{{{{.IMAGE_TAG_{key}}}}}@{{{{.IMAGE_DIGEST_{key}}}}}"
        )


def chart_value_exists(dotted: str) -> bool:
    """The key names a value of the chart, or lies under one of its free-form maps ({})."""
    node: Any = CHART_VALUES
    for part in dotted.split("."):
        if node == {}:
            return True
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


@pytest.mark.parametrize("name", ["dev", "gpu"])
def test_profile_values_are_chart_values(name: str) -> None:
    (release,) = CONFIG["deploy"]["helm"]["releases"]
    keys = [*patched_values(name), *release["setValueTemplates"]]
    assert [key for key in keys if not chart_value_exists(key)] == []


@pytest.mark.parametrize("name", ["dev", "gpu"])
def test_profile_service_config_is_accepted_by_the_service_settings(name: str) -> None:
    for component, settings in SETTINGS.items():
        config: dict[str, Any] = {}
        prefix = f"{component}.config."
        for key, value in patched_values(name).items():
            if key.startswith(prefix):
                *parents, leaf = key.removeprefix(prefix).split(".")
                node = config
                for parent in parents:
                    node = node.setdefault(parent, {})
                node[leaf] = value
        if component == "learner":
            config.setdefault("checkpoints", {"uri": "s3://bucket/runs/test"})
        settings(**config)  # extra="forbid": a misspelt field fails here


def test_dev_profile_is_cpu_only_with_in_cluster_kafka_and_minio() -> None:
    values = patched_values("dev")
    assert values["dev.enabled"] == "true"
    assert values["topics.replicationFactor"] == "1"
    for component in SETTINGS:
        assert values.get(f"{component}.gpu", "0") == "0"
    assert values["rollout.config.model.source"] == "tiny"
    assert values["rollout.config.engine.kind"] == "cpu"
    patches = build_arg_patches("dev")
    for index, artifact in enumerate(artifacts()):
        arguments = declared_args(artifact["docker"]["dockerfile"])
        if "CUDA_IMAGE" in arguments:
            assert patches[(index, "TORCH_INDEX_URL")] == CPU_TORCH
            assert not patches[(index, "CUDA_IMAGE")].startswith("nvidia/")
        if "EXTRAS" in arguments:
            assert patches[(index, "EXTRAS")] == ""
    for index, argument in patches:
        assert argument in declared_args(artifacts()[index]["docker"]["dockerfile"])


def test_gpu_profile_requests_gpus_and_turns_keda_on() -> None:
    values = patched_values("gpu")
    assert int(values["rollout.gpu"]) >= 1
    assert int(values["learner.gpu"]) >= 1
    assert values["learner.nprocPerNode"] == values["learner.gpu"]
    assert values["rollout.autoscaling.keda.enabled"] == "true"
    assert int(values["rollout.autoscaling.keda.minReplicas"]) <= int(
        values["rollout.autoscaling.keda.maxReplicas"]
    )
    assert build_arg_patches("gpu") == {}
