"""The learner's Kubeflow PyTorchJob (kubeflow.org/v1), built from a ``LearnerJobSpec``.

``build_learner_pytorchjob`` gives the ``KubeflowOrgV1PyTorchJob`` that ``hybridrl learner
submit`` creates and that ``k8s/learner-pytorchjob.yaml`` spells out: one Master and
``workers`` Workers, each pod running ``nproc_per_node`` ranks under the chosen launcher in the
container the operator requires to be named ``pytorch``. Every pod mounts the release's
ConfigMap at /etc/hybridrl (``learner.yaml``) and reads the object-store credentials, and
optionally the Kafka SASL password and TLS files, from existing Secrets. The pods run as user
10001 on a read-only root filesystem; /tmp (DeepSpeed's scratch) and /dev/shm (NCCL's shared
memory) are emptyDirs.
"""

from __future__ import annotations

import json
from typing import Any, Final

import yaml
from kubeflow.training import ApiClient, models  # type: ignore[import-untyped]

from hybridrl.k8s.launchers import LEARNER_CONFIG_PATH, learner_command
from hybridrl.k8s.learner_job_spec import LearnerJobSpec

API_VERSION: Final[str] = "kubeflow.org/v1"
KIND: Final[str] = "PyTorchJob"
CONTAINER_NAME: Final[str] = "pytorch"
"""The training operator finds the training container of each replica by this name."""
MASTER_PORT: Final[int] = 23456
RENDEZVOUS_PORT_NAME: Final[str] = "pytorchjob-port"
"""The operator derives MASTER_PORT from the port of this name (default 23456)."""
GRPC_PORT: Final[int] = 50054
RUN_AS: Final[int] = 10001
ENV_PREFIX: Final[str] = "HYBRIDRL_LEARNER_"
CONFIG_DIRECTORY: Final[str] = "/etc/hybridrl"
KAFKA_TLS_SUBDIRECTORY: Final[str] = "kafka-tls"


def build_learner_pytorchjob(spec: LearnerJobSpec) -> Any:
    """The ``KubeflowOrgV1PyTorchJob`` of ``spec``: Master 1 + Worker ``spec.workers``."""
    replica_specs = {"Master": _replica(spec, 1, master=True)}
    if spec.workers:
        replica_specs["Worker"] = _replica(spec, spec.workers, master=False)
    return models.KubeflowOrgV1PyTorchJob(
        api_version=API_VERSION,
        kind=KIND,
        metadata=models.V1ObjectMeta(
            name=spec.job_name, namespace=spec.namespace, labels=spec.labels
        ),
        spec=models.KubeflowOrgV1PyTorchJobSpec(
            nproc_per_node=str(spec.nproc_per_node),
            pytorch_replica_specs=replica_specs,
            run_policy=models.KubeflowOrgV1RunPolicy(
                backoff_limit=spec.backoff_limit, clean_pod_policy=spec.clean_pod_policy
            ),
        ),
    )


def _replica(spec: LearnerJobSpec, replicas: int, *, master: bool) -> Any:
    pull_secrets = [models.V1LocalObjectReference(name=name) for name in spec.image_pull_secrets]
    return models.KubeflowOrgV1ReplicaSpec(
        replicas=replicas,
        restart_policy="OnFailure",
        template=models.V1PodTemplateSpec(
            metadata=models.V1ObjectMeta(labels=spec.labels),
            spec=models.V1PodSpec(
                service_account_name=spec.service_account_name,
                automount_service_account_token=False,
                image_pull_secrets=pull_secrets or None,
                security_context=models.V1PodSecurityContext(
                    run_as_non_root=True,
                    run_as_user=RUN_AS,
                    run_as_group=RUN_AS,
                    fs_group=RUN_AS,
                    seccomp_profile=models.V1SeccompProfile(type="RuntimeDefault"),
                ),
                containers=[_container(spec, master=master)],
                volumes=_volumes(spec),
            ),
        ),
    )


def _container(spec: LearnerJobSpec, *, master: bool) -> Any:
    requests = {"cpu": spec.cpu, "memory": spec.memory}
    limits = {"memory": spec.memory_limit}
    if spec.gpus_per_node:
        requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = str(spec.gpus_per_node)
    ports = [
        models.V1ContainerPort(
            name=RENDEZVOUS_PORT_NAME, container_port=MASTER_PORT, protocol="TCP"
        )
    ]
    if master:
        ports.append(models.V1ContainerPort(name="grpc", container_port=GRPC_PORT, protocol="TCP"))
    probes = _master_probes() if master else {}
    return models.V1Container(
        name=CONTAINER_NAME,
        image=spec.image,
        image_pull_policy=spec.image_pull_policy,
        command=learner_command(spec.launcher, LEARNER_CONFIG_PATH),
        env=_environment(spec),
        ports=ports,
        resources=models.V1ResourceRequirements(requests=requests, limits=limits),
        security_context=models.V1SecurityContext(
            run_as_non_root=True,
            run_as_user=RUN_AS,
            run_as_group=RUN_AS,
            allow_privilege_escalation=False,
            read_only_root_filesystem=True,
            capabilities=models.V1Capabilities(drop=["ALL"]),
            seccomp_profile=models.V1SeccompProfile(type="RuntimeDefault"),
        ),
        volume_mounts=[
            models.V1VolumeMount(name="config", mount_path=CONFIG_DIRECTORY, read_only=True),
            models.V1VolumeMount(name="tmp", mount_path="/tmp"),
            models.V1VolumeMount(name="shm", mount_path="/dev/shm"),
        ],
        **probes,
    )


def _master_probes() -> dict[str, Any]:
    """Probes of rank 0's pod, as the chart sets them; workers serve nothing and get none.

    The operator's headless Service publishes only ready pods, the other ranks resolve it to
    join the rendezvous, and rank 0's status server starts only once every rank has joined.
    So startup and readiness check the rendezvous port (open from rank 0's start to its end)
    and only liveness asks the status server's gRPC health, with a budget of ten minutes that
    covers the wait for the other pods.
    """
    rendezvous = models.V1TCPSocketAction(port=RENDEZVOUS_PORT_NAME)
    return {
        "startup_probe": models.V1Probe(
            tcp_socket=rendezvous, period_seconds=10, failure_threshold=30, timeout_seconds=5
        ),
        "liveness_probe": models.V1Probe(
            grpc=models.V1GRPCAction(port=GRPC_PORT),
            period_seconds=30,
            failure_threshold=20,
            timeout_seconds=5,
        ),
        "readiness_probe": models.V1Probe(
            tcp_socket=rendezvous, period_seconds=10, failure_threshold=3, timeout_seconds=5
        ),
    }


def _secret_env(variable: str, secret: str, key: str) -> Any:
    return models.V1EnvVar(
        name=ENV_PREFIX + variable,
        value_from=models.V1EnvVarSource(
            secret_key_ref=models.V1SecretKeySelector(name=secret, key=key)
        ),
    )


def _environment(spec: LearnerJobSpec) -> list[Any]:
    # The release's learner.yaml was rendered for its own learner.gpu; this job's pods may
    # have GPUs where it had none or the reverse, and the environment overrides the file.
    backend, accelerator = ("nccl", "cuda") if spec.gpus_per_node else ("gloo", "cpu")
    env = [
        models.V1EnvVar(name=ENV_PREFIX + "DEEPSPEED__BACKEND", value=backend),
        models.V1EnvVar(name=ENV_PREFIX + "DEEPSPEED__ACCELERATOR", value=accelerator),
    ]
    if spec.object_store_secret is not None:
        store = spec.object_store_secret
        env.append(_secret_env("OBJECT_STORE__ACCESS_KEY", store.name, store.access_key_key))
        env.append(_secret_env("OBJECT_STORE__SECRET_KEY", store.name, store.secret_key_key))
    if spec.kafka_sasl_secret is not None:
        sasl = spec.kafka_sasl_secret
        env.append(_secret_env("KAFKA__SASL_PASSWORD", sasl.name, sasl.password_key))
    return env


def _volumes(spec: LearnerJobSpec) -> list[Any]:
    """/etc/hybridrl as one read-only volume, as the chart mounts it: learner.yaml from the
    release's ConfigMap and the Kafka TLS files under kafka-tls/."""
    sources = [
        models.V1VolumeProjection(
            config_map=models.V1ConfigMapProjection(
                name=spec.config_map_name,
                items=[models.V1KeyToPath(key="learner.yaml", path="learner.yaml")],
            )
        )
    ]
    if spec.kafka_tls_secret is not None:
        tls = spec.kafka_tls_secret
        items = [models.V1KeyToPath(key=tls.ca_key, path=f"{KAFKA_TLS_SUBDIRECTORY}/ca.crt")]
        if tls.client_auth:
            items.append(
                models.V1KeyToPath(key=tls.cert_key, path=f"{KAFKA_TLS_SUBDIRECTORY}/tls.crt")
            )
            items.append(
                models.V1KeyToPath(key=tls.key_key, path=f"{KAFKA_TLS_SUBDIRECTORY}/tls.key")
            )
        sources.append(
            models.V1VolumeProjection(secret=models.V1SecretProjection(name=tls.name, items=items))
        )
    return [
        models.V1Volume(
            name="config",
            projected=models.V1ProjectedVolumeSource(default_mode=0o440, sources=sources),
        ),
        models.V1Volume(
            name="tmp", empty_dir=models.V1EmptyDirVolumeSource(size_limit=spec.tmp_size_limit)
        ),
        models.V1Volume(
            name="shm",
            empty_dir=models.V1EmptyDirVolumeSource(
                medium="Memory", size_limit=spec.shm_size_limit
            ),
        ),
    ]


def pytorchjob_to_dict(job: Any) -> dict[str, Any]:
    """The job as the API server reads it: camelCase keys, no None values."""
    result: dict[str, Any] = ApiClient().sanitize_for_serialization(job)
    return result


class _ManifestDumper(yaml.SafeDumper):
    """Writes multi-line strings (the DeepSpeed launch script) as literal blocks."""


def _represent_text(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_ManifestDumper.add_representer(str, _represent_text)


def pytorchjob_to_yaml(job: Any) -> str:
    """The job as a manifest for ``kubectl apply -f``."""
    return yaml.dump(pytorchjob_to_dict(job), Dumper=_ManifestDumper, sort_keys=False)


class _Response:
    """What ``ApiClient.deserialize`` reads: an HTTP response whose ``data`` is JSON text."""

    def __init__(self, data: str) -> None:
        self.data = data


def pytorchjob_from_dict(manifest: dict[str, Any]) -> Any:
    """A ``KubeflowOrgV1PyTorchJob`` from a manifest (e.g. a loaded ``k8s/`` YAML file).

    Raises:
        ValueError: if the manifest is not a kubeflow.org/v1 PyTorchJob.
    """
    if manifest.get("apiVersion") != API_VERSION or manifest.get("kind") != KIND:
        raise ValueError(
            f"expected apiVersion {API_VERSION} and kind {KIND}, got "
            f"{manifest.get('apiVersion')!r} and {manifest.get('kind')!r}"
        )
    return ApiClient().deserialize(_Response(json.dumps(manifest)), "KubeflowOrgV1PyTorchJob")
