"""Reading a topic outside any consumer group, and measuring how far a group lags behind.

``read_all`` serves tests and tools (inspecting the dead-letter topic, replaying it, checking
what a stage produced): it reads every partition from the beginning without joining a group,
so it never moves anyone's offsets. ``consumer_lag`` is what the gateway reports and what
KEDA's Kafka scaler computes to scale rollout workers on the prompts backlog.
"""

from __future__ import annotations

import time

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition  # type: ignore[import-untyped]
from kafka.admin import OffsetSpec  # type: ignore[import-untyped]

from hybridrl.bus.records import RawRecord
from hybridrl.config.kafka import KafkaSettings

_POLL_INTERVAL_MS = 100


def read_all(settings: KafkaSettings, topic: str, *, timeout_s: float = 10.0) -> list[RawRecord]:
    """Every record of ``topic``, ordered by partition then offset.

    Reads until each partition's position reaches the high watermark its fetch responses
    report (the end as of the moment it catches up; records produced meanwhile may or may not
    be included). Raises ValueError for an unknown topic and TimeoutError if the end is not
    reached within ``timeout_s``.
    """
    consumer = KafkaConsumer(**settings.consumer_kwargs(), group_id=None, enable_auto_commit=False)
    try:
        partition_ids = consumer.partitions_for_topic(topic)
        if not partition_ids:
            raise ValueError(f"unknown topic {topic!r}")
        partitions = [TopicPartition(topic, index) for index in sorted(partition_ids)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        records: list[RawRecord] = []
        deadline = time.monotonic() + timeout_s
        while True:
            for messages in consumer.poll(timeout_ms=_POLL_INTERVAL_MS).values():
                records.extend(
                    RawRecord(
                        topic=message.topic,
                        partition=message.partition,
                        offset=message.offset,
                        key=message.key,
                        value=message.value,
                        headers=tuple((name, data or b"") for name, data in message.headers or ()),
                        timestamp_ms=message.timestamp,
                    )
                    for message in messages
                )
            # The high watermark comes with fetch responses; ListOffsets is not used for the end
            # because some Kafka-protocol brokers under-report it after multi-record batches.
            if all(_caught_up(consumer, partition) for partition in partitions):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"read {len(records)} records of {topic} but not its end within {timeout_s} s"
                )
        return sorted(records, key=lambda record: (record.partition, record.offset))
    finally:
        consumer.close(autocommit=False)


def _caught_up(consumer: KafkaConsumer, partition: TopicPartition) -> bool:
    highwater = consumer.highwater(partition)
    return highwater is not None and consumer.position(partition) >= highwater


def consumer_lag(settings: KafkaSettings, group_id: str, topic: str) -> dict[int, int]:
    """Records of ``topic`` not yet committed by ``group_id``, per partition.

    A partition the group never committed counts from its earliest offset (the group starts
    there). The end offsets come from the broker's ListOffsets, as KEDA's Kafka scaler reads
    them.
    """
    admin = KafkaAdminClient(**settings.to_kafka_python_kwargs())
    try:
        described = admin.describe_topics([topic])
        if not described or described[0]["error_code"] != 0:
            raise ValueError(f"unknown topic {topic!r}")
        partitions = [
            TopicPartition(topic, entry["partition_index"]) for entry in described[0]["partitions"]
        ]
        committed = admin.list_group_offsets({group_id: partitions}).get(group_id, {})
        ends = admin.list_partition_offsets(dict.fromkeys(partitions, OffsetSpec.LATEST))
        starts = admin.list_partition_offsets(dict.fromkeys(partitions, OffsetSpec.EARLIEST))
        lag = {}
        for partition in partitions:
            entry = committed.get(partition)
            position = entry.offset if entry is not None and entry.offset >= 0 else -1
            if position < 0:
                position = starts[partition].offset
            lag[partition.partition] = max(ends[partition].offset - position, 0)
        return dict(sorted(lag.items()))
    finally:
        admin.close()
