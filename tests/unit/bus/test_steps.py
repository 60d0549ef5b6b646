"""The broker-free steps of the consumer loop: decode, encode results, batch offsets."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from hybridrl.bus.records import (
    HandlerResult,
    MessageTooLargeError,
    OutputRecord,
    Partition,
    RawRecord,
    Record,
    RecordFailure,
)
from hybridrl.bus.steps import (
    Outgoing,
    decode_records,
    encode_result,
    first_offsets,
    next_offsets,
    position,
)
from hybridrl.proto.v1 import events_pb2

RolloutFactory = Callable[..., events_pb2.RolloutEvent]


def raw(
    partition: int, offset: int, value: bytes | None = b"", key: bytes | None = b"k"
) -> RawRecord:
    return RawRecord("rollouts", partition, offset, key, value)


def test_batch_offsets_are_the_first_and_one_past_the_last_per_partition() -> None:
    batch = [raw(0, 5), raw(1, 9), raw(0, 6), raw(0, 7), raw(1, 10)]
    assert next_offsets(batch) == {Partition("rollouts", 0): 8, Partition("rollouts", 1): 11}
    assert first_offsets(batch) == {Partition("rollouts", 0): 5, Partition("rollouts", 1): 9}


def test_decode_keeps_good_records_and_rejects_the_rest(make_rollout: RolloutFactory) -> None:
    good = make_rollout("p1@v0", 1).SerializeToString()
    batch = [
        raw(0, 0, good, b"p1@v0"),
        raw(0, 1, b"\xff\xff"),
        raw(0, 2, good, b"\xff\xfe"),
        raw(0, 3, make_rollout(schema_version=0).SerializeToString()),
    ]
    records, rejections = decode_records(batch, events_pb2.RolloutEvent)
    assert [(r.offset, r.key, r.value.sample_id) for r in records] == [(0, "p1@v0", "p1@v0#1")]
    assert [(r.record.offset, r.error_class) for r in rejections] == [
        (1, "DecodeError"),
        (2, "BadKey"),
        (3, "SchemaVersionMismatch"),
    ]


def test_encode_result_encodes_outputs_and_resolves_failures(make_rollout: RolloutFactory) -> None:
    source = raw(2, 4, b"v", b"g")
    record = Record("rollouts", 2, 4, "g", make_rollout())
    event = make_rollout("g", 0)
    result = HandlerResult(
        outputs=[OutputRecord("scored", "g", event, (("trace", b"1"),))],
        failures=[RecordFailure(record, "no reference answer", "InvalidInput")],
    )
    outputs, rejections = encode_result(result, {position(source): source}, 1024 * 1024)
    assert outputs == [Outgoing("scored", b"g", event.SerializeToString(), (("trace", b"1"),))]
    assert [(r.record, r.reason, r.error_class) for r in rejections] == [
        (source, "no reference answer", "InvalidInput")
    ]


def test_encode_result_refuses_what_the_loop_cannot_send(make_rollout: RolloutFactory) -> None:
    record = Record("rollouts", 0, 0, "g", make_rollout())
    with pytest.raises(TypeError, match="expected HandlerResult"):
        encode_result([], {}, 1000)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not in its batch"):
        encode_result(HandlerResult(failures=[RecordFailure(record, "x")]), {}, 1000)
    with pytest.raises(ValueError, match="schema_version is 0"):
        encode_result(
            HandlerResult(outputs=[OutputRecord("scored", "g", make_rollout(schema_version=0))]),
            {},
            1000,
        )
    big = make_rollout(response_text="x" * 2000)
    with pytest.raises(MessageTooLargeError, match="over the limit of 1,000"):
        encode_result(HandlerResult(outputs=[OutputRecord("scored", "g", big)]), {}, 1000)
