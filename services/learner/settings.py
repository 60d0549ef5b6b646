"""Settings of the learner: one frozen model, from YAML and ``HYBRIDRL_LEARNER_...``.

Every rank of the learner job parses the same file (a ConfigMap in a PyTorchJob); the rank and
world size come from the launcher's environment (``RANK``, ``WORLD_SIZE``, set by torchrun or
the DeepSpeed launcher), not from here. ``run`` is the training recipe (``LearnerConfig``: the
phases, their lengths, the loss weights); the rest says where the learner's inputs and outputs
are. Nested fields take ``__`` in the environment, e.g.
``HYBRIDRL_LEARNER_SSB_ADDRESS=ssb:50051`` or ``HYBRIDRL_LEARNER_RUN__GRPO_STEPS=500``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from hybridrl.bus.topics import DEFAULT_PREFIX, Topics
from hybridrl.config.kafka import KafkaSettings
from hybridrl.config.learner import LearnerConfig
from hybridrl.config.object_store import ObjectStoreSettings
from hybridrl.config.service_settings import (
    GrpcServerSettings,
    ServiceSettings,
    default_claim_check_uri,
)


class DeepSpeedSettings(BaseModel):
    """How DeepSpeed runs the data-parallel learner."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    zero_stage: int = Field(
        default=2,
        ge=0,
        le=2,
        description=(
            "ZeRO stage: 0 plain data parallel, 1 partitions the optimizer state, 2 also the "
            "gradients. Every rank keeps whole weights, which the policy checkpoints read."
        ),
    )
    backend: Literal["gloo", "nccl", "ccl"] = Field(
        default="gloo", description="torch.distributed backend: gloo on CPU, nccl on GPUs."
    )
    accelerator: Literal["cpu", "cuda"] | None = Field(
        default=None,
        description=(
            "DeepSpeed's accelerator (DS_ACCELERATOR): 'cpu' on machines without GPUs; None "
            "lets DeepSpeed detect it."
        ),
    )
    weight_decay: float = Field(default=0.01, ge=0, description="AdamW weight decay.")


class CheckpointSettings(BaseModel):
    """Where and how often the learner's resumable state and its policies are written."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    uri: str | None = Field(
        default=None,
        description=(
            "Object-store location of the run: checkpoints go to <uri>/learner/, published "
            "policies to <uri>/policy/. None: s3://<object_store.bucket>/runs/<run_name>."
        ),
    )
    every_steps: int = Field(
        default=50,
        ge=1,
        description=(
            "Resumable checkpoint (weights, optimizer, BCO shift, step, policy version, SSB "
            "offsets) every this many steps, and at the end of the run."
        ),
    )
    keep_last: int = Field(default=2, ge=1, description="Resumable checkpoints kept.")
    publish_every_steps: int = Field(
        default=1,
        ge=1,
        description=(
            "Publish the policy (weights for rollout workers, then an event on the policy "
            "topic) every this many steps. Keep it at or below run.max_staleness, or rollout "
            "samples go stale before their policy is replaced."
        ),
    )
    keep_policies: int = Field(
        default=1000,
        ge=1,
        description="Published policies kept (adapter-only ones are kilobytes each).",
    )
    local_directory: Path = Field(
        default=Path("/tmp/hybridrl/learner"),
        description="Scratch space for DeepSpeed's checkpoint files before upload.",
    )


class LearnerSettings(ServiceSettings):
    """Everything a learner rank reads at start-up."""

    model_config = SettingsConfigDict(env_prefix="HYBRIDRL_LEARNER_")

    run_name: str = Field(
        default="run",
        min_length=1,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="Names the run; its checkpoints go under runs/<run_name>/ by default.",
    )
    run: LearnerConfig = Field(default_factory=LearnerConfig)
    kafka: KafkaSettings = Field(
        default_factory=lambda: KafkaSettings(client_id="hybridrl-learner")
    )
    object_store: ObjectStoreSettings | None = Field(
        default=None, description="S3 for checkpoints, policies and claim-checked rollouts."
    )
    topic_prefix: str = Field(
        default=DEFAULT_PREFIX, description="Prefix of the loop's topic names (one per run)."
    )
    grpc: GrpcServerSettings = Field(
        default_factory=lambda: GrpcServerSettings(port=50054),
        description="Status server; rank 0 only.",
    )
    ssb_address: str = Field(
        default="127.0.0.1:50053", min_length=3, description="host:port of the SSB store."
    )
    sample_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Deadline of one Sample call; the SSB answers earlier with what it has.",
    )
    initial_checkpoint_uri: str | None = Field(
        default=None,
        description=(
            "A policy checkpoint (full weights) the run starts from, e.g. the warm-up's; it "
            "is also the frozen reference pi_0 of MPO and of the KL term. None: the tiny "
            "model built from run.seed."
        ),
    )
    checkpoints: CheckpointSettings = Field(default_factory=CheckpointSettings)
    claim_check_uri: str | None = Field(
        default=None,
        description=(
            "Where rollouts over the Kafka limit park their tokens (the rollout service's "
            "setting); default s3://<object_store.bucket>/claim-checks/rollouts."
        ),
    )
    metrics_file: Path | None = Field(
        default=None,
        description="Rank 0 appends one JSON line per step here (hybridrl report reads it).",
    )
    deepspeed: DeepSpeedSettings = Field(default_factory=DeepSpeedSettings)

    @field_validator("topic_prefix")
    @classmethod
    def _legal_prefix(cls, value: str) -> str:
        Topics(value)
        return value

    @model_validator(mode="after")
    def _has_a_checkpoint_location(self) -> Self:
        if self.checkpoints.uri is None and self.object_store is None:
            raise ValueError("set checkpoints.uri or object_store: the learner must checkpoint")
        return self

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    @property
    def run_uri(self) -> str:
        """Where the run's checkpoints and policies live."""
        if self.checkpoints.uri is not None:
            return self.checkpoints.uri.rstrip("/")
        assert self.object_store is not None  # the validator above
        return f"s3://{self.object_store.bucket}/runs/{self.run_name}"

    @property
    def resolved_claim_check_uri(self) -> str | None:
        return default_claim_check_uri(self.claim_check_uri, self.object_store)
