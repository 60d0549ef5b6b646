"""Bytes on a Kafka topic to protobuf events and back, with the checks every consumer runs.

Producers call ``encode``, which refuses an event its consumers would reject (so the bug shows
where it is made); consumers call ``decode``, which turns anything unusable into a
``PoisonMessage`` that the consumer loop sends to the dead-letter topic instead of stopping.
Generic over protobuf message classes: the identity fields each event must carry are listed
in ``REQUIRED_IDENTITY_FIELDS`` by the message's full name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final, TypeVar

from google.protobuf.message import DecodeError, Message

from hybridrl.proto.schema import check_schema_version
from hybridrl.proto.v1 import events_pb2

MessageT = TypeVar("MessageT", bound=Message)

EMPTY_VALUE: Final[str] = "EmptyValue"
UNDECODABLE: Final[str] = "DecodeError"
SCHEMA_VERSION_MISMATCH: Final[str] = "SchemaVersionMismatch"
MISSING_IDENTITY_FIELD: Final[str] = "MissingIdentityField"

REQUIRED_IDENTITY_FIELDS: Final[Mapping[str, tuple[str, ...]]] = {
    events_pb2.PromptEvent.DESCRIPTOR.full_name: ("prompt_id",),
    events_pb2.RolloutEvent.DESCRIPTOR.full_name: ("sample_id", "group_id", "prompt_id"),
    events_pb2.ScoredEvent.DESCRIPTOR.full_name: (
        "rollout.sample_id",
        "rollout.group_id",
        "rollout.prompt_id",
    ),
    events_pb2.PolicyVersionEvent.DESCRIPTOR.full_name: ("checkpoint_uri",),
    events_pb2.DeadLetterEvent.DESCRIPTOR.full_name: ("original_topic",),
}
"""Fields (dotted paths into sub-messages) without which an event cannot be routed or
de-duplicated. A proto3 string that is empty counts as missing. Message types not listed here
are checked for their schema version only."""


class PoisonMessage(Exception):  # noqa: N818 - it is a message, and the services' name for it
    """A record no retry will fix: it goes to the dead-letter topic with ``reason``."""

    def __init__(self, reason: str, error_class: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error_class = error_class


def missing_identity_fields(message: Message) -> list[str]:
    """The required identity fields of ``message`` that are unset or empty."""
    required = REQUIRED_IDENTITY_FIELDS.get(message.DESCRIPTOR.full_name, ())
    return [path for path in required if not _is_set(message, path.split("."))]


def _is_set(message: Message, path: Sequence[str]) -> bool:
    head, *rest = path
    if rest:
        return message.HasField(head) and _is_set(getattr(message, head), rest)
    return bool(getattr(message, head))


def encode(message: Message) -> bytes:
    """Serialize an event for Kafka; ValueError if a consumer would dead-letter it."""
    check_schema_version(message)
    missing = missing_identity_fields(message)
    if missing:
        raise ValueError(
            f"{message.DESCRIPTOR.full_name} is missing required identity fields {missing}"
        )
    return message.SerializeToString()


def decode(data: bytes | None, message_type: type[MessageT]) -> MessageT:
    """Parse ``data`` as ``message_type`` and check it; raise PoisonMessage if unusable.

    Rejected: no value at all (a tombstone), bytes that do not parse, a schema version other
    than this code's, and missing identity fields.
    """
    name = message_type.DESCRIPTOR.full_name
    if not data:
        raise PoisonMessage(f"record has no value; expected a {name}", EMPTY_VALUE)
    message = message_type()
    try:
        message.ParseFromString(data)
    except DecodeError as error:
        raise PoisonMessage(
            f"{len(data)} bytes do not parse as {name}: {error}", UNDECODABLE
        ) from error
    try:
        check_schema_version(message)
    except ValueError as error:
        raise PoisonMessage(str(error), SCHEMA_VERSION_MISMATCH) from error
    missing = missing_identity_fields(message)
    if missing:
        raise PoisonMessage(
            f"{name} is missing required identity fields {missing}", MISSING_IDENTITY_FIELD
        )
    return message
