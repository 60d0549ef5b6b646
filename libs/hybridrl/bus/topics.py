"""The Kafka topics of the training loop: their names, their layout, and creating them.

prompts -> rollouts -> scored carry the bulk of the loop, keyed by group id so that the N
responses of one group share a partition; policy announces new weights and is compacted (only
the newest event per key survives); dlq keeps the records a consumer could not process. The CLI
``hybridrl topics create`` and the local runtime call ``create_topics`` with
``default_topic_specs``; the chart's init job does the same against the cluster's Kafka.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from kafka import KafkaAdminClient  # type: ignore[import-untyped]
from kafka.admin import ConfigResource, ConfigResourceType  # type: ignore[import-untyped]
from kafka.errors import TopicAlreadyExistsError  # type: ignore[import-untyped]

from hybridrl.config.kafka import KafkaSettings

DEFAULT_PREFIX: Final[str] = "hybridrl."
DLQ_RETENTION_MS: Final[int] = 30 * 24 * 3600 * 1000
"""Thirty days: long enough to notice a poison message, fix the code and replay it."""

_LEGAL_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")


def check_topic_name(name: str) -> None:
    """Raise ValueError unless Kafka accepts ``name`` as a topic name."""
    if not _LEGAL_TOPIC_NAME.fullmatch(name) or name in {".", ".."}:
        raise ValueError(
            f"topic name {name!r} is not legal in Kafka: use 1-249 characters of "
            "[A-Za-z0-9._-], not '.' or '..'"
        )


@dataclass(frozen=True)
class Topics:
    """Names of the loop's topics; ``prefix`` separates runs that share one Kafka cluster."""

    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        check_topic_name(self.prefix + "prompts")

    @property
    def prompts(self) -> str:
        return f"{self.prefix}prompts"

    @property
    def rollouts(self) -> str:
        return f"{self.prefix}rollouts"

    @property
    def scored(self) -> str:
        return f"{self.prefix}scored"

    @property
    def policy(self) -> str:
        return f"{self.prefix}policy"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}dlq"

    def all(self) -> tuple[str, ...]:
        """Every topic of the loop, in the order data flows through them, dlq last."""
        return (self.prompts, self.rollouts, self.scored, self.policy, self.dlq)


@dataclass(frozen=True)
class TopicSpec:
    """How one topic is laid out: partitions, replicas and topic-level configs."""

    name: str
    partitions: int
    replication_factor: int = 1
    configs: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_topic_name(self.name)
        if self.partitions < 1:
            raise ValueError(f"topic {self.name}: partitions must be >= 1, got {self.partitions}")
        if self.replication_factor < 1:
            raise ValueError(
                f"topic {self.name}: replication_factor must be >= 1, got {self.replication_factor}"
            )


@dataclass(frozen=True)
class TopicDescription:
    """A topic as the broker reports it."""

    name: str
    partitions: int
    configs: Mapping[str, str]


def default_topic_specs(
    topics: Topics | None = None,
    *,
    partitions: int = 8,
    replication_factor: int = 1,
    dlq_partitions: int = 2,
    max_message_bytes: int | None = None,
) -> list[TopicSpec]:
    """The loop's topics with their layout.

    The data topics get ``partitions`` partitions, the unit of consumer parallelism (one SSB
    shard or reward pod per partition set). The policy topic has one partition so that every
    rollout worker sees the versions in order, and is compacted so a worker that starts late
    reads only the newest version. The dlq gets few partitions and a long retention. With three
    or more replicas, ``min.insync.replicas=2`` makes ``acks=all`` mean two copies on disk.
    ``max_message_bytes`` sets the broker-side record limit to match the producers'.
    """
    names = topics or Topics()
    common: dict[str, str] = {}
    if replication_factor >= 3:
        common["min.insync.replicas"] = "2"
    if max_message_bytes is not None:
        common["max.message.bytes"] = str(max_message_bytes)

    dlq_configs = {**common, "retention.ms": str(DLQ_RETENTION_MS)}
    return [
        TopicSpec(names.prompts, partitions, replication_factor, dict(common)),
        TopicSpec(names.rollouts, partitions, replication_factor, dict(common)),
        TopicSpec(names.scored, partitions, replication_factor, dict(common)),
        TopicSpec(names.policy, 1, replication_factor, {**common, "cleanup.policy": "compact"}),
        TopicSpec(names.dlq, dlq_partitions, replication_factor, dlq_configs),
    ]


def _admin(settings: KafkaSettings) -> Any:
    return KafkaAdminClient(**settings.to_kafka_python_kwargs())


def create_topics(settings: KafkaSettings, specs: Sequence[TopicSpec]) -> list[str]:
    """Create the topics of ``specs`` that do not exist yet; return the names created.

    Idempotent: existing topics are left as they are (their layout is not compared or
    changed), so this runs safely at every start-up and from concurrent pods.
    """
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate topic names in specs: {sorted(names)}")
    admin = _admin(settings)
    try:
        existing = set(admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        if not missing:
            return []
        response = admin.create_topics(
            {
                spec.name: {
                    "num_partitions": spec.partitions,
                    "replication_factor": spec.replication_factor,
                    "configs": dict(spec.configs),
                }
                for spec in missing
            },
            raise_errors=False,
        )
        created = []
        for result in response["topics"]:
            if result["error_code"] == 0:
                created.append(result["name"])
            elif result["error_code"] != TopicAlreadyExistsError.errno:
                raise RuntimeError(
                    f"creating topic {result['name']} failed with error {result['error_code']}: "
                    f"{result['error_message']}"
                )
        admin.wait_for_topics(created, timeout_ms=settings.request_timeout_ms)
        return sorted(created)
    finally:
        admin.close()


def list_topics(settings: KafkaSettings) -> list[str]:
    """Names of the topics on the cluster, sorted, without Kafka's internal ones."""
    admin = _admin(settings)
    try:
        return sorted(
            topic["name"] for topic in admin.describe_topics() if not topic["is_internal"]
        )
    finally:
        admin.close()


def describe_topics(settings: KafkaSettings, names: Sequence[str]) -> list[TopicDescription]:
    """Partition count and topic-level configs of each named topic, in the order given.

    The configs are what the broker reports for the topic (Kafka reports every config with its
    value; some Kafka-protocol brokers report only those set at creation).
    """
    admin = _admin(settings)
    try:
        metadata = {topic["name"]: topic for topic in admin.describe_topics(list(names))}
        unknown = [name for name in names if metadata.get(name, {}).get("error_code", 3) != 0]
        if unknown:
            raise ValueError(f"unknown topics: {unknown}")
        resources = [ConfigResource(ConfigResourceType.TOPIC, name, configs=None) for name in names]
        configs = admin.describe_configs(resources, config_filter="all").get("topic", {})
        return [
            TopicDescription(
                name=name,
                partitions=len(metadata[name]["partitions"]),
                configs={
                    key: entry["value"]
                    for key, entry in configs.get(name, {}).items()
                    if entry.get("value") is not None
                },
            )
            for name in names
        ]
    finally:
        admin.close()
