"""A dead letter keeps the original record byte for byte, and always fits the size limit."""

from __future__ import annotations

from datetime import UTC, datetime

from hybridrl.bus.dead_letters import MAX_REASON_CHARS, dead_letter_event
from hybridrl.bus.records import RawRecord, record_size
from hybridrl.proto.schema import SCHEMA_VERSION

WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_dead_letter_copies_where_the_record_came_from_and_why() -> None:
    record = RawRecord("hybridrl.rollouts", 3, 41, b"p1@v0", b"\x01\x02garbage")
    event = dead_letter_event(
        record,
        reason="3 bytes do not parse",
        error_class="DecodeError",
        service_name="reward",
        dead_lettered_at=WHEN,
        max_message_bytes=1024 * 1024,
    )
    assert event.schema_version == SCHEMA_VERSION
    assert event.original_value == b"\x01\x02garbage"
    assert event.original_key == b"p1@v0"
    assert (event.original_topic, event.original_partition, event.original_offset) == (
        "hybridrl.rollouts",
        3,
        41,
    )
    assert (event.reason, event.error_class, event.service_name) == (
        "3 bytes do not parse",
        "DecodeError",
        "reward",
    )
    assert event.dead_lettered_at.ToDatetime(tzinfo=UTC) == WHEN


def test_a_record_without_key_or_value_gives_empty_bytes() -> None:
    event = dead_letter_event(
        RawRecord("t", 0, 0, None, None),
        reason="record has no value",
        error_class="EmptyValue",
        service_name="ssb",
        dead_lettered_at=WHEN,
        max_message_bytes=1000,
    )
    assert event.original_key == b""
    assert event.original_value == b""


def test_a_record_near_the_limit_is_cut_so_its_dead_letter_fits() -> None:
    limit = 10_000
    value = bytes(range(256)) * 39  # 9,984 bytes: fits as a record, not once wrapped
    record = RawRecord("hybridrl.rollouts", 0, 7, b"key", value)
    event = dead_letter_event(
        record,
        reason="too odd",
        error_class="DecodeError",
        service_name="reward",
        dead_lettered_at=WHEN,
        max_message_bytes=limit,
    )
    kept = len(event.original_value)
    assert record_size(b"key", event.SerializeToString()) <= limit
    assert 9_500 < kept < 9_984
    assert event.original_value == value[:kept]
    assert event.reason == f"too odd (original_value truncated from 9984 to {kept} bytes)"


def test_a_very_long_reason_is_cut() -> None:
    event = dead_letter_event(
        RawRecord("t", 0, 0, None, b"x"),
        reason="e" * (MAX_REASON_CHARS + 500),
        error_class="ValueError",
        service_name="ssb",
        dead_lettered_at=WHEN,
        max_message_bytes=1024 * 1024,
    )
    assert event.reason == "e" * MAX_REASON_CHARS
