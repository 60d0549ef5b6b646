"""Settings of the SSB store service: one frozen model, from YAML and ``HYBRIDRL_SSB_...``.

Parsed once by ``main.serve`` and passed down. Nested fields take ``__`` in the environment,
e.g. ``HYBRIDRL_SSB_KAFKA__BOOTSTRAP_SERVERS=kafka:9092``, ``HYBRIDRL_SSB_SHARD=shard-2`` (a
StatefulSet sets it from the pod name) or ``HYBRIDRL_SSB_BUFFER__CAPACITY=50000``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import SettingsConfigDict

from hybridrl.bus.topics import DEFAULT_PREFIX, Topics
from hybridrl.config.buffer import MPOPairConfig, SSBConfig
from hybridrl.config.kafka import KafkaSettings
from hybridrl.config.losses import GRPOConfig
from hybridrl.config.object_store import ObjectStoreSettings
from hybridrl.config.service_settings import (
    GrpcServerSettings,
    ServiceSettings,
    default_claim_check_uri,
)
from hybridrl.replay.config import GroupAssemblyConfig, SampleStoreConfig
from hybridrl.replay.shard import ShardSettings
from hybridrl.replay.snapshots import shard_prefix


class SnapshotSettings(BaseModel):
    """When and where the shard's state is made durable."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    uri: str | None = Field(
        default=None,
        description=(
            "Object-store location whose ssb/<shard>/ holds the snapshots (s3://bucket, "
            "file:///path or a path). None: s3://<object_store.bucket> when an object store "
            "is set, else no snapshots (the state is rebuilt from the retained topic)."
        ),
    )
    interval_seconds: float = Field(
        default=60.0, gt=0, description="Snapshot at least this often while records arrive."
    )
    every_records: int = Field(
        default=20_000, ge=1, description="Snapshot after this many records since the last."
    )
    keep_last: int = Field(default=3, ge=1, description="Snapshots kept; older ones deleted.")


class SSBSettings(ServiceSettings):
    """Everything the SSB store service reads at start-up."""

    model_config = SettingsConfigDict(env_prefix="HYBRIDRL_SSB_")

    kafka: KafkaSettings = Field(default_factory=lambda: KafkaSettings(client_id="hybridrl-ssb"))
    object_store: ObjectStoreSettings | None = Field(
        default=None, description="S3 for snapshots and for rollout payloads (claim checks)."
    )
    grpc: GrpcServerSettings = Field(default_factory=GrpcServerSettings)
    topic_prefix: str = Field(
        default=DEFAULT_PREFIX, description="Prefix of the loop's topic names (one per run)."
    )
    group_id: str = Field(default="hybridrl-ssb", min_length=1)
    shard: str = Field(
        default="shard-0",
        min_length=1,
        description="Name of this shard; its snapshots live under ssb/<shard>/.",
    )
    buffer: SSBConfig = Field(default_factory=SSBConfig)
    mpo_pairs: MPOPairConfig = Field(default_factory=MPOPairConfig)
    advantages: GRPOConfig = Field(
        default_factory=GRPOConfig,
        description="Only the advantage fields (eq. 6) are used; keep them equal to the learner's.",
    )
    assembly: GroupAssemblyConfig = Field(default_factory=GroupAssemblyConfig)
    store: SampleStoreConfig = Field(default_factory=SampleStoreConfig)
    snapshots: SnapshotSettings = Field(default_factory=SnapshotSettings)
    claim_check_uri: str | None = Field(
        default=None,
        description=(
            "Where oversized rollouts park their tokens (the rollout service's setting); "
            "default s3://<object_store.bucket>/claim-checks/rollouts with an object store."
        ),
    )
    fetch_offloaded_payloads: bool = Field(
        default=True,
        description=(
            "Fetch the tokens of claim-checked rollouts and serve them inline; off keeps the "
            "claim check (payload_uri) and the learner fetches them, sparing the store's memory."
        ),
    )
    max_poll_records: int = Field(default=500, ge=1, description="Records per poll.")
    poll_timeout_seconds: float = Field(
        default=0.5, gt=0, description="Longest poll; also how soon a Snapshot call is served."
    )
    max_batch_size: int = Field(
        default=4096, ge=1, description="Largest batch_size a Sample request may ask for."
    )
    max_sample_wait_seconds: float = Field(
        default=5.0,
        ge=0,
        description=(
            "Longest a Sample call waits for enough fresh samples (never past its deadline); "
            "then it returns what is ready, possibly a short batch."
        ),
    )
    retry_backoff_seconds: float = Field(
        default=1.0, gt=0, description="Pause after the object store or the broker failed."
    )

    @field_validator("topic_prefix")
    @classmethod
    def _legal_prefix(cls, value: str) -> str:
        Topics(value)
        return value

    @field_validator("shard")
    @classmethod
    def _legal_shard(cls, value: str) -> str:
        shard_prefix(value)
        return value

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    def shard_settings(self) -> ShardSettings:
        return ShardSettings(
            assembly=self.assembly,
            store=self.store,
            buffer=self.buffer,
            pairs=self.mpo_pairs,
            advantages=self.advantages,
        )

    @property
    def resolved_snapshot_uri(self) -> str | None:
        if self.snapshots.uri is not None:
            return self.snapshots.uri
        return f"s3://{self.object_store.bucket}" if self.object_store is not None else None

    @property
    def resolved_claim_check_uri(self) -> str | None:
        return default_claim_check_uri(self.claim_check_uri, self.object_store)
