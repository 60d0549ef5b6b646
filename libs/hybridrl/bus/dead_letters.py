"""Dead letters: a record a consumer gave up on, wrapped with where it came from and why.

The consumer loop builds one ``DeadLetterEvent`` per rejected record (undecodable bytes, a
schema version mismatch, a record its handler rejected or kept failing on) and produces it on
``hybridrl.dlq`` before committing the record's offset, so the consumer moves on and nothing is
lost: the original key and value are kept byte for byte for a replay after a fix.
"""

from __future__ import annotations

from datetime import datetime

from hybridrl.bus.records import RawRecord, record_size
from hybridrl.proto.schema import SCHEMA_VERSION
from hybridrl.proto.v1 import events_pb2

MAX_REASON_CHARS = 2_000
"""Reasons are for humans; an exception message longer than this is cut."""

# Room for the note appended to the reason on truncation and for length varints that may
# grow, so that a cut event surely fits.
_TRUNCATION_SLACK_BYTES = 96


def dead_letter_event(
    record: RawRecord,
    *,
    reason: str,
    error_class: str,
    service_name: str,
    dead_lettered_at: datetime,
    max_message_bytes: int,
) -> events_pb2.DeadLetterEvent:
    """The DeadLetterEvent for ``record``, cut to fit ``max_message_bytes`` under its key.

    A record close to the size limit no longer fits once wrapped; then ``original_value`` keeps
    its first bytes only and ``reason`` says how many were cut, so the dead letter itself is
    never refused by the broker.
    """
    event = events_pb2.DeadLetterEvent(
        schema_version=SCHEMA_VERSION,
        original_value=record.value or b"",
        original_topic=record.topic,
        original_partition=record.partition,
        original_offset=record.offset,
        original_key=record.key or b"",
        reason=reason[:MAX_REASON_CHARS],
        error_class=error_class,
        service_name=service_name,
    )
    event.dead_lettered_at.FromDatetime(dead_lettered_at)
    excess = record_size(record.key, b"", ()) + event.ByteSize() - max_message_bytes
    if excess > 0:
        original_size = len(event.original_value)
        keep = max(original_size - excess - _TRUNCATION_SLACK_BYTES, 0)
        event.original_value = event.original_value[:keep]
        event.reason += f" (original_value truncated from {original_size} to {keep} bytes)"
    return event
