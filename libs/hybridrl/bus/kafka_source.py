"""A consumer-group member on a real Kafka cluster, behind the ``RecordSource`` interface.

``ConsumerLoop.from_settings`` builds one per service replica; the group spreads the topics'
partitions over the replicas and moves them when a replica joins or dies. Offsets are never
committed automatically: the consumer loop commits after its outputs are flushed.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from kafka import KafkaConsumer, TopicPartition  # type: ignore[import-untyped]
from kafka.consumer.subscription_state import (  # type: ignore[import-untyped]
    ConsumerRebalanceListener,
)
from kafka.errors import (  # type: ignore[import-untyped]
    CommitFailedError as KafkaCommitFailedError,
)
from kafka.errors import (
    IllegalGenerationError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)
from kafka.structs import OffsetAndMetadata  # type: ignore[import-untyped]

from hybridrl.bus.records import (
    CommitFailedError,
    Partition,
    RawRecord,
    RebalanceCallback,
)
from hybridrl.config.kafka import KafkaSettings

_LOST_GENERATION_ERRORS = (
    KafkaCommitFailedError,
    IllegalGenerationError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)


def _ignore(partitions: set[Partition]) -> None:
    del partitions


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Forwards kafka-python's rebalance events to the source's callbacks."""

    def __init__(self, source: KafkaRecordSource) -> None:
        self._source = source

    # kafka-python 3 calls these on its network thread, where a blocking commit() fails
    # ("Cannot block on net.run() from the IO thread"); the source commits asynchronously
    # while a callback runs. The commit request reaches the coordinator before the JoinGroup
    # that follows on the same connection, so it still lands in the old generation.

    def on_partitions_revoked(self, revoked: Any) -> None:
        with self._source.in_rebalance_callback():
            self._source.on_revoked(_partitions(revoked))

    def on_partitions_lost(self, lost: Any) -> None:
        # Lost partitions cannot be committed any more; the loop's commit attempt is rejected
        # and counted, and its offsets are dropped like those of revoked partitions.
        with self._source.in_rebalance_callback():
            self._source.on_revoked(_partitions(lost))

    def on_partitions_assigned(self, assigned: Any) -> None:
        with self._source.in_rebalance_callback():
            self._source.on_assigned(_partitions(assigned))


def _partitions(topic_partitions: Any) -> set[Partition]:
    return {Partition(tp.topic, tp.partition) for tp in topic_partitions}


class KafkaRecordSource:
    """Subscribes ``group_id`` to ``topics``; a new group starts at the earliest offsets."""

    def __init__(
        self,
        settings: KafkaSettings,
        topics: Sequence[str],
        group_id: str,
        *,
        auto_offset_reset: str = "earliest",
    ) -> None:
        if not topics:
            raise ValueError("a record source needs at least one topic")
        if not group_id:
            raise ValueError("group_id is empty")
        self.on_revoked: RebalanceCallback = _ignore
        self.on_assigned: RebalanceCallback = _ignore
        self._settings = settings
        self._callback_thread: int | None = None
        self._consumer = KafkaConsumer(
            **settings.consumer_kwargs(),
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset=auto_offset_reset,
        )
        self._consumer.subscribe(list(topics), listener=_Listener(self))

    def set_rebalance_callbacks(
        self, on_revoked: RebalanceCallback, on_assigned: RebalanceCallback
    ) -> None:
        self.on_revoked = on_revoked
        self.on_assigned = on_assigned

    def poll(self, max_records: int, timeout_s: float) -> list[RawRecord]:
        batches = self._consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        return [
            RawRecord(
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
                key=message.key,
                value=message.value,
                headers=tuple((name, value or b"") for name, value in message.headers or ()),
                timestamp_ms=message.timestamp,
            )
            for messages in batches.values()
            for message in messages
        ]

    @contextlib.contextmanager
    def in_rebalance_callback(self) -> Iterator[None]:
        """Mark the current thread as running a rebalance callback (commits go async)."""
        self._callback_thread = threading.get_ident()
        try:
            yield
        finally:
            self._callback_thread = None

    def commit(self, offsets: Mapping[Partition, int]) -> None:
        kafka_offsets = {
            TopicPartition(partition.topic, partition.partition): OffsetAndMetadata(offset, "", -1)
            for partition, offset in offsets.items()
        }
        if self._callback_thread == threading.get_ident():
            self._consumer.commit_async(kafka_offsets)
            return
        try:
            self._consumer.commit(kafka_offsets, timeout_ms=self._settings.request_timeout_ms)
        except _LOST_GENERATION_ERRORS as error:
            raise CommitFailedError(str(error)) from error

    def seek(self, offsets: Mapping[Partition, int]) -> None:
        owned = self.assignment()
        for partition, offset in offsets.items():
            if partition in owned:
                self._consumer.seek(TopicPartition(partition.topic, partition.partition), offset)

    def assignment(self) -> set[Partition]:
        return _partitions(self._consumer.assignment())

    def close(self) -> None:
        self._consumer.close(autocommit=False)
