"""build_learner_pytorchjob: the job's shape, its names and Secrets follow the inputs."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from hybridrl.k8s import (
    KafkaSaslSecret,
    KafkaTlsSecret,
    LearnerJobSpec,
    ObjectStoreSecret,
    build_learner_pytorchjob,
    learner_command,
    pytorchjob_from_dict,
    pytorchjob_to_dict,
    pytorchjob_to_yaml,
)


def pods(job: Any) -> dict[str, Any]:
    return {name: spec.template.spec for name, spec in job.spec.pytorch_replica_specs.items()}


def env_of(pod: Any) -> dict[str, Any]:
    return {variable.name: variable for variable in pod.containers[0].env}


def test_defaults_are_one_master_and_one_cpu_worker_of_release_hybridrl() -> None:
    job = build_learner_pytorchjob(LearnerJobSpec())
    assert (job.api_version, job.kind) == ("kubeflow.org/v1", "PyTorchJob")
    assert job.metadata.name == "hybridrl-learner"
    assert job.metadata.namespace is None
    assert {name: spec.replicas for name, spec in job.spec.pytorch_replica_specs.items()} == {
        "Master": 1,
        "Worker": 1,
    }
    assert job.spec.run_policy.backoff_limit == 3
    master = pods(job)["Master"]
    assert master.service_account_name == "hybridrl-learner"
    assert "nvidia.com/gpu" not in master.containers[0].resources.limits
    assert env_of(master)["HYBRIDRL_LEARNER_DEEPSPEED__BACKEND"].value == "gloo"
    assert env_of(master)["HYBRIDRL_LEARNER_DEEPSPEED__ACCELERATOR"].value == "cpu"
    # The chart's default: no object-store Secret, anonymous access.
    assert not any("OBJECT_STORE" in name for name in env_of(master))


def test_gpus_set_the_resources_and_switch_deepspeed_to_nccl_on_cuda() -> None:
    spec = LearnerJobSpec(workers=3, nproc_per_node=4, gpus_per_node=4, launcher="deepspeed")
    job = build_learner_pytorchjob(spec)
    assert job.spec.nproc_per_node == "4"
    assert job.spec.pytorch_replica_specs["Worker"].replicas == 3
    for pod in pods(job).values():
        container = pod.containers[0]
        assert container.resources.requests["nvidia.com/gpu"] == "4"
        assert container.resources.limits["nvidia.com/gpu"] == "4"
        assert container.command == learner_command("deepspeed")
        assert env_of(pod)["HYBRIDRL_LEARNER_DEEPSPEED__BACKEND"].value == "nccl"
        assert env_of(pod)["HYBRIDRL_LEARNER_DEEPSPEED__ACCELERATOR"].value == "cuda"


def test_no_workers_gives_a_single_master_pod() -> None:
    job = build_learner_pytorchjob(LearnerJobSpec(workers=0))
    assert set(job.spec.pytorch_replica_specs) == {"Master"}


def test_names_follow_the_release() -> None:
    spec = LearnerJobSpec(release="team-a", namespace="ml")
    job = build_learner_pytorchjob(spec)
    assert (job.metadata.name, job.metadata.namespace) == ("team-a-learner", "ml")
    assert job.metadata.labels["app.kubernetes.io/instance"] == "team-a"
    master = pods(job)["Master"]
    assert master.service_account_name == "team-a-learner"
    (source,) = master.volumes[0].projected.sources
    assert source.config_map.name == "team-a-config"


def test_secrets_reach_the_environment_and_the_tls_files_their_paths() -> None:
    spec = LearnerJobSpec(
        object_store_secret=ObjectStoreSecret(name="s3", access_key_key="id", secret_key_key="k"),
        kafka_sasl_secret=KafkaSaslSecret(name="kafka-user", password_key="pw"),
        kafka_tls_secret=KafkaTlsSecret(name="kafka-ca", ca_key="ca.pem", client_auth=True),
    )
    master = pods(build_learner_pytorchjob(spec))["Master"]
    references = {
        name: (v.value_from.secret_key_ref.name, v.value_from.secret_key_ref.key)
        for name, v in env_of(master).items()
        if v.value_from is not None
    }
    assert references == {
        "HYBRIDRL_LEARNER_OBJECT_STORE__ACCESS_KEY": ("s3", "id"),
        "HYBRIDRL_LEARNER_OBJECT_STORE__SECRET_KEY": ("s3", "k"),
        "HYBRIDRL_LEARNER_KAFKA__SASL_PASSWORD": ("kafka-user", "pw"),
    }
    _, tls = master.volumes[0].projected.sources
    assert tls.secret.name == "kafka-ca"
    assert [(item.key, item.path) for item in tls.secret.items] == [
        ("ca.pem", "kafka-tls/ca.crt"),
        ("tls.crt", "kafka-tls/tls.crt"),
        ("tls.key", "kafka-tls/tls.key"),
    ]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"gpus_per_node": 2, "nproc_per_node": 1}, "must equal gpus_per_node"),
        ({"name": "Learner_1"}, "name"),
        ({"release": "x" * 41}, "release"),
        ({"workers": -1}, "workers"),
        ({"launcher": "mpirun"}, "launcher"),
        ({"clean_pod_policy": "Sometimes"}, "clean_pod_policy"),
    ],
)
def test_bad_inputs_are_value_errors(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LearnerJobSpec(**fields)


def test_yaml_round_trips_to_an_equal_job() -> None:
    spec = LearnerJobSpec(
        workers=2,
        gpus_per_node=2,
        nproc_per_node=2,
        launcher="deepspeed",
        image_pull_secrets=("registry",),
        kafka_tls_secret=KafkaTlsSecret(name="ca"),
    )
    job = build_learner_pytorchjob(spec)
    text = pytorchjob_to_yaml(job)
    assert "|\n" in text  # the launch script reads as a block, not an escaped string
    loaded = yaml.safe_load(text)
    assert loaded == pytorchjob_to_dict(job)
    assert pytorchjob_from_dict(loaded) == job


def test_from_dict_rejects_another_kind() -> None:
    with pytest.raises(ValueError, match="PyTorchJob"):
        pytorchjob_from_dict({"apiVersion": "kubeflow.org/v1", "kind": "TFJob"})
