"""Settings of the reward service: one frozen model, from YAML and ``HYBRIDRL_REWARD_...``.

Parsed once by ``main.serve`` and passed down. Nested fields take ``__`` in the environment,
e.g. ``HYBRIDRL_REWARD_KAFKA__BOOTSTRAP_SERVERS=kafka:9092``,
``HYBRIDRL_REWARD_REWARD_MODEL__SOURCE=s3://models/skywork-vl-reward/`` or
``HYBRIDRL_REWARD_CONSUME=false`` (gRPC only, for outside clients).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import SettingsConfigDict

from hybridrl.bus.topics import DEFAULT_PREFIX, Topics
from hybridrl.config.kafka import KafkaSettings
from hybridrl.config.object_store import ObjectStoreSettings
from hybridrl.config.rewards import RewardsConfig
from hybridrl.config.service_settings import (
    GrpcServerSettings,
    ServiceSettings,
    default_claim_check_uri,
)
from hybridrl.rewards.reward_model import RewardScoringConfig

NO_MODEL = "none"
TINY_MODEL = "tiny"


class RewardModelSettings(BaseModel):
    """Which reward model gives r_theta (eq. 7), if any, and how long a call may take."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str = Field(
        default=NO_MODEL,
        min_length=1,
        description=(
            f"'{NO_MODEL}' (r_theta = 0, status model_skipped), '{TINY_MODEL}' (the CPU test "
            "model, built from tiny_seed), or a directory written by "
            "VisionLanguageRewardModel.save_pretrained: a local path or s3://bucket/prefix/."
        ),
    )
    tiny_seed: int = Field(default=0, ge=0, description="Initial weights of the tiny model.")
    tokenizer: str = Field(
        default="",
        description=(
            "'builtin', a local tokenizer directory, or '' for the model directory's "
            "tokenizer/. The tiny model always uses the built-in one."
        ),
    )
    dtype: Literal["float32", "bfloat16", "float16"] | None = Field(
        default=None, description="Load the weights in this dtype; None keeps the saved one."
    )
    device: str = Field(default="cpu", description="torch device, e.g. 'cuda:0'.")
    cache_dir: Path = Field(
        default=Path("/tmp/hybridrl/reward-models"),
        description="Where an s3:// model directory is copied before loading.",
    )
    deadline_seconds: float = Field(
        default=30.0,
        gt=0,
        allow_inf_nan=False,
        description=(
            "Longest a batch's model call may take; past it the batch scores r_theta = 0 "
            "(status model_skipped) and the service goes on."
        ),
    )
    torch_threads: int = Field(
        default=1, ge=1, description="torch intra-op threads for a model on the CPU."
    )
    scoring: RewardScoringConfig = Field(
        default_factory=RewardScoringConfig,
        description="Squash and scale of r_theta, rows per forward pass, longest row.",
    )


class RewardSettings(ServiceSettings):
    """Everything the reward service reads at start-up."""

    model_config = SettingsConfigDict(env_prefix="HYBRIDRL_REWARD_")

    kafka: KafkaSettings = Field(default_factory=lambda: KafkaSettings(client_id="hybridrl-reward"))
    object_store: ObjectStoreSettings | None = Field(
        default=None,
        description="S3 for s3:// images, an s3:// reward model and claim checks.",
    )
    grpc: GrpcServerSettings = Field(default_factory=GrpcServerSettings)
    topic_prefix: str = Field(
        default=DEFAULT_PREFIX, description="Prefix of the loop's topic names (one per run)."
    )
    group_id: str = Field(default="hybridrl-reward", min_length=1)
    rewards: RewardsConfig = Field(
        default_factory=RewardsConfig,
        description="Rule and format rewards, their worker pool and the eq. 7 weights.",
    )
    reward_model: RewardModelSettings = Field(default_factory=RewardModelSettings)
    consume: bool = Field(
        default=True,
        description="Score rollouts from the rollouts topic; off serves gRPC only.",
    )
    max_poll_records: int = Field(
        default=64, ge=1, description="Rollouts polled and scored together as one batch."
    )
    poll_timeout_seconds: float = Field(default=1.0, gt=0)
    max_batch_items: int = Field(
        default=256, ge=1, description="Most items one ScoreBatch call may carry."
    )
    max_text_chars: int = Field(
        default=262_144,
        ge=1,
        description="Longest prompt, response or gold answer of a gRPC item, in characters.",
    )
    claim_check_uri: str | None = Field(
        default=None,
        description=(
            "Where a scored event over the Kafka limit parks its rollout's tokens; default "
            "s3://<object_store.bucket>/claim-checks/rollouts when an object store is set."
        ),
    )

    @field_validator("topic_prefix")
    @classmethod
    def _legal_prefix(cls, value: str) -> str:
        Topics(value)
        return value

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    @property
    def resolved_claim_check_uri(self) -> str | None:
        return default_claim_check_uri(self.claim_check_uri, self.object_store)
