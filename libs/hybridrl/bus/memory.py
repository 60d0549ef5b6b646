"""An in-memory Kafka stand-in, so services and the consumer loop are tested without a broker.

It keeps what the loop relies on: topics split into partitions, a key always hashing to the same
partition, offsets, consumer groups whose members share the partitions and hand them over on
join and leave (calling the rebalance callbacks), commits that a member may make only for the
partitions it holds, and redelivery from the last commit. It exposes the same ``EventSink`` and
``RecordSource`` interfaces as the Kafka backend; the contract tests run against both. Records
are visible as soon as they are sent (like ``linger_ms=0``). ``set_available(False)`` makes
every send fail, as a broker outage past the delivery timeout would.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import zlib
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from google.protobuf.message import Message

from hybridrl.bus.codec import encode
from hybridrl.bus.records import (
    CommitFailedError,
    Delivery,
    DeliveryError,
    Headers,
    Partition,
    RawRecord,
    RebalanceCallback,
    check_record_size,
    record_size,
)
from hybridrl.bus.topics import TopicSpec
from hybridrl.config.kafka import ONE_MEBIBYTE

logger = logging.getLogger(__name__)


@dataclass
class _Group:
    subscriptions: dict[str, frozenset[str]] = field(default_factory=dict)
    target: dict[str, set[Partition]] = field(default_factory=dict)
    owner: dict[Partition, str] = field(default_factory=dict)
    committed: dict[Partition, int] = field(default_factory=dict)
    generation: int = 0


class InMemoryBroker:
    """Topics, partitions and consumer groups in one process; thread-safe."""

    def __init__(self, *, max_message_bytes: int = ONE_MEBIBYTE) -> None:
        self.max_message_bytes = max_message_bytes
        self._lock = threading.Condition(threading.RLock())
        self._logs: dict[str, list[list[RawRecord]]] = {}
        self._groups: dict[str, _Group] = {}
        self._keyless = itertools.count()
        self._members = itertools.count()
        self._available = True

    # Topics -----------------------------------------------------------------------------

    def create_topics(self, specs: Sequence[TopicSpec]) -> list[str]:
        """Create the topics that do not exist yet; return the names created."""
        with self._lock:
            created = [spec for spec in specs if spec.name not in self._logs]
            for spec in created:
                self._logs[spec.name] = [[] for _ in range(spec.partitions)]
            return sorted(spec.name for spec in created)

    def partition_count(self, topic: str) -> int:
        with self._lock:
            return len(self._partitions_of(topic))

    def _partitions_of(self, topic: str) -> list[list[RawRecord]]:
        if topic not in self._logs:
            raise ValueError(f"unknown topic {topic!r}")
        return self._logs[topic]

    def set_available(self, available: bool) -> None:
        """Simulate a broker outage (False) and its end (True)."""
        with self._lock:
            self._available = available

    def append(self, topic: str, key: bytes | None, value: bytes, headers: Headers) -> Delivery:
        """Store one record: the partition is a hash of the key, round-robin without one."""
        with self._lock:
            if not self._available:
                raise DeliveryError("the in-memory broker is unavailable")
            partitions = self._partitions_of(topic)
            index = zlib.crc32(key) if key else next(self._keyless)
            partition = index % len(partitions)
            log = partitions[partition]
            record = RawRecord(
                topic, partition, len(log), key, value, headers, int(time.time() * 1000)
            )
            log.append(record)
            self._lock.notify_all()
            return Delivery(topic, partition, record.offset)

    def read_all(self, topic: str) -> list[RawRecord]:
        """Every record of ``topic``, ordered by partition then offset."""
        with self._lock:
            return [record for log in self._partitions_of(topic) for record in log]

    def fetch(self, partition: Partition, offset: int, limit: int) -> list[RawRecord]:
        with self._lock:
            log = self._partitions_of(partition.topic)[partition.partition]
            return log[offset : offset + limit]

    def end_offset(self, partition: Partition) -> int:
        with self._lock:
            return len(self._partitions_of(partition.topic)[partition.partition])

    # Groups -----------------------------------------------------------------------------

    def join(self, group_id: str, topics: Sequence[str]) -> str:
        """Add a member to ``group_id``; returns its id. Partitions move at the next polls."""
        with self._lock:
            for topic in topics:
                self._partitions_of(topic)
            member_id = f"{group_id}-{next(self._members):04d}"
            group = self._groups.setdefault(group_id, _Group())
            group.subscriptions[member_id] = frozenset(topics)
            self._rebalance(group)
            return member_id

    def leave(self, group_id: str, member_id: str) -> None:
        """Remove a member; its partitions become free for the others, uncommitted."""
        with self._lock:
            group = self._groups[group_id]
            group.subscriptions.pop(member_id, None)
            for partition in [p for p, owner in group.owner.items() if owner == member_id]:
                del group.owner[partition]
            self._rebalance(group)

    def _rebalance(self, group: _Group) -> None:
        # Round-robin per topic over the members subscribed to it, members in id order.
        group.generation += 1
        group.target = {member: set() for member in group.subscriptions}
        for topic in sorted(set().union(*group.subscriptions.values())):
            members = sorted(m for m, topics in group.subscriptions.items() if topic in topics)
            for index in range(len(self._logs[topic])):
                group.target[members[index % len(members)]].add(Partition(topic, index))
        self._lock.notify_all()

    def _group(self, group_id: str) -> _Group:
        with self._lock:
            return self._groups.setdefault(group_id, _Group())

    def commit(self, group_id: str, member_id: str, offsets: Mapping[Partition, int]) -> None:
        with self._lock:
            group = self._groups[group_id]
            lost = [p for p in offsets if group.owner.get(p) != member_id]
            if lost:
                raise CommitFailedError(f"{member_id} no longer holds {sorted(lost)}")
            group.committed.update(offsets)

    def committed(self, group_id: str) -> dict[Partition, int]:
        """The group's committed offsets (next offset to read) by partition."""
        with self._lock:
            return dict(self._group(group_id).committed)

    def consumer_lag(self, group_id: str, topic: str) -> dict[int, int]:
        """Records of ``topic`` not yet committed by ``group_id``, per partition."""
        with self._lock:
            committed = self._group(group_id).committed
            return {
                index: len(log) - committed.get(Partition(topic, index), 0)
                for index, log in enumerate(self._partitions_of(topic))
            }

    # Clients ----------------------------------------------------------------------------

    def producer(self) -> InMemoryProducer:
        return InMemoryProducer(self)

    def source(self, topics: Sequence[str], group_id: str) -> InMemoryRecordSource:
        return InMemoryRecordSource(self, topics, group_id)


class InMemoryProducer:
    """``EventSink`` over an ``InMemoryBroker``; the same checks as the Kafka producer."""

    def __init__(self, broker: InMemoryBroker) -> None:
        self._broker = broker
        self._failures: list[BaseException] = []

    @property
    def max_message_bytes(self) -> int:
        return self._broker.max_message_bytes

    def fits(self, message: Message, key: str = "") -> bool:
        return record_size(key.encode(), b"", ()) + message.ByteSize() <= self.max_message_bytes

    def send(
        self, topic: str, key: str, message: Message, headers: Headers = ()
    ) -> Future[Delivery]:
        value = encode(message)
        limit = self.max_message_bytes
        check_record_size(topic, key.encode(), value, headers, limit, message.DESCRIPTOR.name)
        return self.send_raw(topic, key.encode(), value, headers)

    def send_raw(
        self, topic: str, key: bytes | None, value: bytes, headers: Headers = ()
    ) -> Future[Delivery]:
        check_record_size(topic, key, value, headers, self.max_message_bytes, "record")
        result: Future[Delivery] = Future()
        try:
            result.set_result(self._broker.append(topic, key, value, headers))
        except (DeliveryError, ValueError) as error:
            self._failures.append(error)
            result.set_exception(error)
        return result

    def flush(self, timeout_s: float | None = None) -> None:
        failures, self._failures = self._failures, []
        if failures:
            raise DeliveryError(
                f"{len(failures)} records failed to deliver; first: {failures[0]}"
            ) from failures[0]

    def close(self, timeout_s: float | None = None) -> None:
        try:
            self.flush(timeout_s)
        except DeliveryError as error:
            logger.error("closing the producer with undelivered records: %s", error)


def _ignore(partitions: set[Partition]) -> None:
    del partitions


class InMemoryRecordSource:
    """``RecordSource`` for one member of a group on an ``InMemoryBroker``.

    Like Kafka's eager rebalance, a member gives up partitions (calling ``on_revoked``, during
    which it may still commit them) before another member takes them, both at their next poll.
    """

    def __init__(self, broker: InMemoryBroker, topics: Sequence[str], group_id: str) -> None:
        self._broker = broker
        self._group_id = group_id
        self._member_id = broker.join(group_id, topics)
        self._positions: dict[Partition, int] = {}
        self._on_revoked: RebalanceCallback = _ignore
        self._on_assigned: RebalanceCallback = _ignore
        self._closed = False
        self._polls = 0

    def set_rebalance_callbacks(
        self, on_revoked: RebalanceCallback, on_assigned: RebalanceCallback
    ) -> None:
        self._on_revoked = on_revoked
        self._on_assigned = on_assigned

    def _sync_assignment(self) -> None:
        group = self._broker._group(self._group_id)
        with self._broker._lock:
            target = set(group.target.get(self._member_id, set()))
            revoked = set(self._positions) - target
        if revoked:
            self._on_revoked(revoked)
        with self._broker._lock:
            for partition in revoked:
                self._positions.pop(partition)
                group.owner.pop(partition, None)
            acquired = {p for p in target - set(self._positions) if p not in group.owner}
            for partition in acquired:
                group.owner[partition] = self._member_id
                self._positions[partition] = group.committed.get(partition, 0)
            if revoked:
                self._broker._lock.notify_all()
        if acquired:
            self._on_assigned(acquired)

    def _available(self) -> bool:
        return any(
            self._broker.end_offset(partition) > position
            for partition, position in self._positions.items()
        )

    def poll(self, max_records: int, timeout_s: float) -> list[RawRecord]:
        if self._closed:
            raise RuntimeError("poll on a closed source")
        self._sync_assignment()
        with self._broker._lock:
            generation = self._broker._group(self._group_id).generation
            self._broker._lock.wait_for(
                lambda: (
                    self._available()
                    or self._broker._group(self._group_id).generation != generation
                ),
                timeout=timeout_s,
            )
        records: list[RawRecord] = []
        # Start from a different partition each poll so that a busy one starves none.
        order = sorted(self._positions)
        self._polls += 1
        start = self._polls % len(order) if order else 0
        for partition in order[start:] + order[:start]:
            wanted = max_records - len(records)
            if wanted == 0:
                break
            fetched = self._broker.fetch(partition, self._positions[partition], wanted)
            records.extend(fetched)
            self._positions[partition] += len(fetched)
        return records

    def commit(self, offsets: Mapping[Partition, int]) -> None:
        self._broker.commit(self._group_id, self._member_id, offsets)

    def seek(self, offsets: Mapping[Partition, int]) -> None:
        for partition, offset in offsets.items():
            if partition in self._positions:
                self._positions[partition] = offset

    def assignment(self) -> set[Partition]:
        return set(self._positions)

    def close(self) -> None:
        """Leave the group; like Kafka's close, first hand the partitions back (on_revoked)."""
        if not self._closed:
            self._closed = True
            if self._positions:
                self._on_revoked(set(self._positions))
            self._positions.clear()
            self._broker.leave(self._group_id, self._member_id)
