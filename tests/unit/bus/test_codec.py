"""encode/decode: round trips, and every kind of unusable record becomes a PoisonMessage."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from hybridrl.bus.codec import (
    EMPTY_VALUE,
    MISSING_IDENTITY_FIELD,
    SCHEMA_VERSION_MISMATCH,
    UNDECODABLE,
    PoisonMessage,
    decode,
    encode,
    missing_identity_fields,
)
from hybridrl.proto.schema import SCHEMA_VERSION
from hybridrl.proto.v1 import common_pb2, events_pb2

RolloutFactory = Callable[..., events_pb2.RolloutEvent]


def test_encode_then_decode_gives_the_same_rollout(make_rollout: RolloutFactory) -> None:
    event = make_rollout("p7@v3", 2, response_token_ids=[5, 6, 7])
    decoded = decode(encode(event), events_pb2.RolloutEvent)
    assert decoded == event
    assert decoded.group_id == "p7@v3"
    assert list(decoded.response_token_ids) == [5, 6, 7]


@pytest.mark.parametrize("value", [None, b""])
def test_a_record_without_value_is_poison(value: bytes | None) -> None:
    with pytest.raises(PoisonMessage) as caught:
        decode(value, events_pb2.RolloutEvent)
    assert caught.value.error_class == EMPTY_VALUE
    assert caught.value.reason == "record has no value; expected a hybridrl.v1.RolloutEvent"


def test_bytes_that_do_not_parse_are_poison() -> None:
    with pytest.raises(PoisonMessage) as caught:
        decode(b"\xff\xff\xff", events_pb2.RolloutEvent)
    assert caught.value.error_class == UNDECODABLE
    assert caught.value.reason.startswith("3 bytes do not parse as hybridrl.v1.RolloutEvent")


def test_an_unset_schema_version_is_poison(make_rollout: RolloutFactory) -> None:
    data = make_rollout(schema_version=0).SerializeToString()
    with pytest.raises(PoisonMessage) as caught:
        decode(data, events_pb2.RolloutEvent)
    assert caught.value.error_class == SCHEMA_VERSION_MISMATCH
    assert "schema_version is 0 (unset)" in caught.value.reason


def test_a_newer_schema_version_is_poison(make_rollout: RolloutFactory) -> None:
    data = make_rollout(schema_version=SCHEMA_VERSION + 1).SerializeToString()
    with pytest.raises(PoisonMessage) as caught:
        decode(data, events_pb2.RolloutEvent)
    assert caught.value.error_class == SCHEMA_VERSION_MISMATCH
    assert f"schema_version is {SCHEMA_VERSION + 1}" in caught.value.reason


def test_a_rollout_without_group_id_is_poison(make_rollout: RolloutFactory) -> None:
    data = make_rollout(group_id="").SerializeToString()
    with pytest.raises(PoisonMessage) as caught:
        decode(data, events_pb2.RolloutEvent)
    assert caught.value.error_class == MISSING_IDENTITY_FIELD
    assert caught.value.reason == (
        "hybridrl.v1.RolloutEvent is missing required identity fields ['group_id']"
    )


def test_scored_event_identity_is_read_inside_its_rollout(make_rollout: RolloutFactory) -> None:
    without_rollout = events_pb2.ScoredEvent(schema_version=SCHEMA_VERSION)
    assert missing_identity_fields(without_rollout) == [
        "rollout.sample_id",
        "rollout.group_id",
        "rollout.prompt_id",
    ]
    scored = events_pb2.ScoredEvent(
        schema_version=SCHEMA_VERSION, rollout=make_rollout(prompt_id="")
    )
    assert missing_identity_fields(scored) == ["rollout.prompt_id"]
    complete = events_pb2.ScoredEvent(schema_version=SCHEMA_VERSION, rollout=make_rollout())
    assert decode(encode(complete), events_pb2.ScoredEvent) == complete


def test_a_message_type_without_schema_version_cannot_be_decoded() -> None:
    tensor = common_pb2.Tensor(dtype=common_pb2.DATA_TYPE_FLOAT32, shape=[1], data=b"\0\0\0\0")
    with pytest.raises(PoisonMessage) as caught:
        decode(tensor.SerializeToString(), common_pb2.Tensor)
    assert caught.value.error_class == SCHEMA_VERSION_MISMATCH
    assert "has no schema_version field" in caught.value.reason


def test_encode_refuses_an_event_without_schema_version(make_rollout: RolloutFactory) -> None:
    with pytest.raises(ValueError, match="schema_version is 0"):
        encode(make_rollout(schema_version=0))


def test_encode_refuses_an_event_missing_identity_fields(make_rollout: RolloutFactory) -> None:
    with pytest.raises(ValueError, match=r"missing required identity fields \['sample_id'\]"):
        encode(make_rollout(sample_id=""))


def test_policy_event_needs_its_checkpoint_uri() -> None:
    event = events_pb2.PolicyVersionEvent(schema_version=SCHEMA_VERSION, policy_version=3)
    assert missing_identity_fields(event) == ["checkpoint_uri"]
    event.checkpoint_uri = "s3://ckpt/run-1/step-000300/"
    assert missing_identity_fields(event) == []
