"""What varies between learner jobs on a cluster: ``LearnerJobSpec``.

The inputs of ``build_learner_pytorchjob`` and of ``hybridrl learner submit``: the image, the
Helm release whose ConfigMap and Secrets the job reads, the job's shape (workers, ranks and GPUs
per pod), the launcher and the pods' resources. The defaults are the chart's (charts/hybridrl,
``learner.*``), so a job built from ``LearnerJobSpec()`` matches what the release would run.
Names follow the chart: resources of release R are ``R-<component>``.
"""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hybridrl import __version__
from hybridrl.k8s.launchers import Launcher

_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_MODEL_CONFIG = ConfigDict(frozen=True, extra="forbid")


class ObjectStoreSecret(BaseModel):
    """An existing Secret with the object store's key pair (chart: objectStore.existingSecret)."""

    model_config = _MODEL_CONFIG

    name: str = Field(min_length=1, max_length=253)
    access_key_key: str = Field(default="accessKey", min_length=1)
    secret_key_key: str = Field(default="secretKey", min_length=1)


class KafkaSaslSecret(BaseModel):
    """An existing Secret with the SASL password (chart: kafka.security.sasl.existingSecret)."""

    model_config = _MODEL_CONFIG

    name: str = Field(min_length=1, max_length=253)
    password_key: str = Field(default="password", min_length=1)


class KafkaTlsSecret(BaseModel):
    """An existing Secret with the brokers' CA and, for mutual TLS, the client's certificate
    (chart: kafka.security.tls.*). The files appear as ca.crt, tls.crt and tls.key under
    /etc/hybridrl/kafka-tls/, the paths the release's learner.yaml names."""

    model_config = _MODEL_CONFIG

    name: str = Field(min_length=1, max_length=253)
    ca_key: str = Field(default="ca.crt", min_length=1)
    client_auth: bool = False
    cert_key: str = Field(default="tls.crt", min_length=1)
    key_key: str = Field(default="tls.key", min_length=1)


class LearnerJobSpec(BaseModel):
    """The inputs of a learner job; everything else is fixed by the platform."""

    model_config = _MODEL_CONFIG

    name: str | None = Field(
        default=None,
        max_length=50,
        pattern=_DNS_LABEL,
        description=(
            "Job name; None: <release>-learner. Pods are <name>-master-0 and <name>-worker-<i>, "
            "which must fit 63 characters."
        ),
    )
    namespace: str | None = Field(
        default=None, pattern=_DNS_LABEL, description="None: the client's current namespace."
    )
    release: str = Field(
        default="hybridrl",
        max_length=40,
        pattern=_DNS_LABEL,
        description="The Helm release whose ConfigMap, Secrets and ServiceAccount the job uses.",
    )
    image: str = Field(default=f"ghcr.io/hybridrl/learner:{__version__}", min_length=1)
    image_pull_policy: str = Field(default="IfNotPresent", pattern="^(Always|IfNotPresent|Never)$")
    image_pull_secrets: tuple[str, ...] = ()
    workers: int = Field(default=1, ge=0, description="Worker pods besides the Master.")
    nproc_per_node: int = Field(default=1, ge=1, description="Learner ranks per pod.")
    gpus_per_node: int = Field(
        default=0,
        ge=0,
        description=(
            "nvidia.com/gpu per pod. The job sets DeepSpeed's backend and accelerator to match "
            "(nccl and cuda, or gloo and cpu), whatever the release's learner.yaml says."
        ),
    )
    launcher: Launcher = "torchrun"
    cpu: str = Field(default="2", min_length=1, description="CPU request of each pod.")
    memory: str = Field(default="8Gi", min_length=1, description="Memory request of each pod.")
    memory_limit: str = Field(default="16Gi", min_length=1, description="Memory limit.")
    shm_size_limit: str = Field(default="2Gi", description="Size of /dev/shm (NCCL).")
    tmp_size_limit: str = Field(default="50Gi", description="Size of /tmp (DeepSpeed scratch).")
    config_map: str | None = Field(
        default=None, description="ConfigMap with learner.yaml; None: <release>-config."
    )
    service_account: str | None = Field(
        default=None, description="ServiceAccount of the pods; None: <release>-learner."
    )
    object_store_secret: ObjectStoreSecret | None = Field(
        default=None, description="None: anonymous access, as the chart's default."
    )
    kafka_sasl_secret: KafkaSaslSecret | None = None
    kafka_tls_secret: KafkaTlsSecret | None = None
    backoff_limit: int = Field(
        default=3, ge=0, description="Restarts of failed replicas; each resumes from a checkpoint."
    )
    clean_pod_policy: str = Field(default="Running", pattern="^(None|Running|All)$")

    @model_validator(mode="after")
    def _one_rank_per_gpu(self) -> Self:
        if self.gpus_per_node and self.nproc_per_node != self.gpus_per_node:
            raise ValueError(
                f"nproc_per_node ({self.nproc_per_node}) must equal gpus_per_node "
                f"({self.gpus_per_node}): each rank drives one GPU"
            )
        return self

    @property
    def job_name(self) -> str:
        return self.name or f"{self.release}-learner"

    @property
    def config_map_name(self) -> str:
        return self.config_map or f"{self.release}-config"

    @property
    def service_account_name(self) -> str:
        return self.service_account or f"{self.release}-learner"

    @property
    def labels(self) -> dict[str, str]:
        """The chart's selector labels of the learner, and part-of."""
        return {
            "app.kubernetes.io/name": "hybridrl",
            "app.kubernetes.io/instance": self.release,
            "app.kubernetes.io/component": "learner",
            "app.kubernetes.io/part-of": "hybridrl",
        }
