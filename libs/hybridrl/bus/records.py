"""The records that move through the bus and the two interfaces every backend implements.

A ``RecordSource`` is one member of a consumer group (poll, commit, rebalance callbacks); an
``EventSink`` sends records and flushes them. ``hybridrl.bus.consumer`` and
``hybridrl.bus.producer`` implement them over Kafka, ``hybridrl.bus.memory`` in memory; the
consumer loop and the services see only these interfaces, so one contract test suite checks
both backends and services are unit-tested without a broker.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Final, Generic, NamedTuple, Protocol, TypeVar

from google.protobuf.message import Message

MessageT = TypeVar("MessageT", bound=Message)

Headers = tuple[tuple[str, bytes], ...]

RECORD_OVERHEAD_BYTES: Final[int] = 128
"""Framing a record costs on top of key, value and headers (record batch header 61 bytes,
record varints up to 21; rounded up so the check here always fires before the broker's)."""


class Partition(NamedTuple):
    """One partition of one topic."""

    topic: str
    partition: int


@dataclass(frozen=True)
class RawRecord:
    """A record exactly as read from a partition, before decoding."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers = ()
    timestamp_ms: int = 0

    @property
    def source_partition(self) -> Partition:
        return Partition(self.topic, self.partition)


@dataclass(frozen=True)
class Record(Generic[MessageT]):
    """A decoded record handed to a handler; ``key`` is the UTF-8 key (the group id)."""

    topic: str
    partition: int
    offset: int
    key: str | None
    value: MessageT
    headers: Headers = ()


@dataclass(frozen=True)
class OutputRecord:
    """An event a handler wants produced: ``message`` on ``topic`` under ``key``."""

    topic: str
    key: str
    message: Message
    headers: Headers = ()


@dataclass(frozen=True)
class RecordFailure:
    """A record the handler rejected; the loop dead-letters it with ``reason``."""

    record: Record[Any]
    reason: str
    error_class: str = "RejectedByHandler"


@dataclass(frozen=True)
class HandlerResult:
    """What a handler returns for one batch: outputs to produce and records to dead-letter.

    A record that appears in neither is done (for instance a duplicate the handler dropped).
    """

    outputs: Sequence[OutputRecord] = ()
    failures: Sequence[RecordFailure] = ()


@dataclass(frozen=True)
class Delivery:
    """Where the broker stored a produced record."""

    topic: str
    partition: int
    offset: int


class MessageTooLargeError(ValueError):
    """A record would exceed the size limit; offload the payload (claim check) instead."""


class DeliveryError(RuntimeError):
    """Records could not be delivered to the broker within the delivery timeout."""


class CommitFailedError(RuntimeError):
    """The group no longer lets this member commit (it was rebalanced away); the records
    will be delivered again to the partition's new owner."""


def record_size(key: bytes | None, value: bytes, headers: Headers = ()) -> int:
    """Bytes a record takes on the wire, rounded up (see ``RECORD_OVERHEAD_BYTES``)."""
    header_bytes = sum(len(name.encode()) + len(data) for name, data in headers)
    return len(key or b"") + len(value) + header_bytes + RECORD_OVERHEAD_BYTES


def check_record_size(
    topic: str, key: bytes | None, value: bytes, headers: Headers, limit: int, what: str
) -> None:
    """Raise MessageTooLargeError if the record does not fit in ``limit`` bytes."""
    size = record_size(key, value, headers)
    if size > limit:
        raise MessageTooLargeError(
            f"{what} for topic {topic} is {size:,} bytes with framing, over the limit of "
            f"{limit:,} (max_message_bytes); store the payload in the object store and send "
            "its URI instead (claim check)"
        )


RebalanceCallback = Callable[[set[Partition]], None]


class RecordSource(Protocol):
    """One member of a consumer group, reading raw records from its assigned partitions."""

    def poll(self, max_records: int, timeout_s: float) -> list[RawRecord]:
        """Up to ``max_records`` records after the current positions; [] after ``timeout_s``."""
        ...

    def commit(self, offsets: Mapping[Partition, int]) -> None:
        """Commit next-offset-to-read per partition; CommitFailedError if no longer owned."""
        ...

    def seek(self, offsets: Mapping[Partition, int]) -> None:
        """Move the read positions back (or forward) so the next poll starts there."""
        ...

    def assignment(self) -> set[Partition]:
        """The partitions this member owns now."""
        ...

    def set_rebalance_callbacks(
        self, on_revoked: RebalanceCallback, on_assigned: RebalanceCallback
    ) -> None:
        """Called from inside ``poll`` before partitions are taken away and after new ones
        arrive."""
        ...

    def close(self) -> None:
        """Leave the group without committing anything more."""
        ...


class EventSink(Protocol):
    """Sends events; ``flush`` returns once every record sent so far is stored."""

    @property
    def max_message_bytes(self) -> int: ...

    def fits(self, message: Message, key: str = "") -> bool:
        """Whether ``message`` under ``key`` is within ``max_message_bytes``."""
        ...

    def send(
        self, topic: str, key: str, message: Message, headers: Headers = ()
    ) -> Future[Delivery]:
        """Encode and send one event; MessageTooLargeError if it does not fit."""
        ...

    def send_raw(
        self, topic: str, key: bytes | None, value: bytes, headers: Headers = ()
    ) -> Future[Delivery]:
        """Send bytes as they are (dead letters, replays of dead letters)."""
        ...

    def flush(self, timeout_s: float | None = None) -> None:
        """Block until every record sent so far is stored; DeliveryError otherwise."""
        ...

    def close(self, timeout_s: float | None = None) -> None:
        """Flush what can be flushed in ``timeout_s`` and release the connections."""
        ...
