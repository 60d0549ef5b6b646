"""The steps of one consumer-loop iteration that need no broker: decode, encode, offsets.

``ConsumerLoop`` chains them with the handler, the producer and the source; kept apart here so
each step is small, pure and tested on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hybridrl.bus.codec import MessageT, PoisonMessage, decode, encode
from hybridrl.bus.records import (
    HandlerResult,
    Headers,
    Partition,
    RawRecord,
    Record,
    check_record_size,
)

RecordPosition = tuple[str, int, int]
"""(topic, partition, offset): where a record sits, the same for its raw and decoded forms."""


@dataclass(frozen=True)
class Outgoing:
    """An encoded record ready to send."""

    topic: str
    key: bytes | None
    value: bytes
    headers: Headers = ()


@dataclass(frozen=True)
class Rejection:
    """A record to dead-letter, with why."""

    record: RawRecord
    reason: str
    error_class: str


def position(record: RawRecord | Record[MessageT]) -> RecordPosition:
    return (record.topic, record.partition, record.offset)


def decode_records(
    raw_records: Sequence[RawRecord], message_type: type[MessageT]
) -> tuple[list[Record[MessageT]], list[Rejection]]:
    """Decode each record; those with a non-UTF-8 key or an unusable value are rejected."""
    records: list[Record[MessageT]] = []
    rejections: list[Rejection] = []
    for raw in raw_records:
        try:
            key = raw.key.decode() if raw.key is not None else None
        except UnicodeDecodeError:
            rejections.append(Rejection(raw, "record key is not UTF-8", "BadKey"))
            continue
        try:
            value = decode(raw.value, message_type)
        except PoisonMessage as poison:
            rejections.append(Rejection(raw, poison.reason, poison.error_class))
            continue
        records.append(Record(raw.topic, raw.partition, raw.offset, key, value, raw.headers))
    return records, rejections


def encode_result(
    result: HandlerResult,
    raw_by_position: dict[RecordPosition, RawRecord],
    max_message_bytes: int,
) -> tuple[list[Outgoing], list[Rejection]]:
    """Encode a handler's outputs and resolve its failures to the raw records.

    Raises TypeError for a result that is not a HandlerResult, ValueError for an output the
    codec refuses or a failure naming a record outside the batch, and MessageTooLargeError for
    an output over ``max_message_bytes``: the loop treats all of them as a handler failure.
    """
    if not isinstance(result, HandlerResult):
        raise TypeError(f"handler returned {type(result).__name__}, expected HandlerResult")
    outputs = []
    for output in result.outputs:
        key = output.key.encode()
        value = encode(output.message)
        what = output.message.DESCRIPTOR.name
        check_record_size(output.topic, key, value, output.headers, max_message_bytes, what)
        outputs.append(Outgoing(output.topic, key, value, output.headers))
    rejections = []
    for failure in result.failures:
        raw = raw_by_position.get(position(failure.record))
        if raw is None:
            raise ValueError(f"handler rejected a record not in its batch: {failure.record}")
        rejections.append(Rejection(raw, failure.reason, failure.error_class))
    return outputs, rejections


def next_offsets(raw_records: Sequence[RawRecord]) -> dict[Partition, int]:
    """Per partition, the offset after the last record: what a commit of the batch stores."""
    offsets: dict[Partition, int] = {}
    for raw in raw_records:
        partition = raw.source_partition
        offsets[partition] = max(offsets.get(partition, 0), raw.offset + 1)
    return offsets


def first_offsets(raw_records: Sequence[RawRecord]) -> dict[Partition, int]:
    """Per partition, the offset of the first record: where to rewind to read the batch again."""
    offsets: dict[Partition, int] = {}
    for raw in raw_records:
        partition = raw.source_partition
        offsets[partition] = min(offsets.get(partition, raw.offset), raw.offset)
    return offsets
