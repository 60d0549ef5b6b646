"""ScoredEventConsumer on the in-memory bus: offsets are committed only with a snapshot, poison
is dead-lettered, and a restart from the snapshot ends where a run without restart ends."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hybridrl_services.ssb.worker import ScoredEventConsumer

from hybridrl.bus.codec import decode
from hybridrl.bus.memory import InMemoryBroker, InMemoryRecordSource
from hybridrl.bus.records import Partition
from hybridrl.proto.v1 import events_pb2
from hybridrl.replay.shard import ReplayShard
from hybridrl.replay.snapshots import ShardSnapshots
from hybridrl.store.claim_check import ClaimCheckStore
from hybridrl.store.local_object_store import LocalObjectStore
from hybridrl.store.object_store import ObjectStoreUnavailable
from hybridrl.store.rollout_payloads import offload_if_too_large

EventFactory = Callable[..., events_pb2.ScoredEvent]
SCORED = "test.scored"
DLQ = "test.dlq"
GROUP = "ssb-tests"


def produce(broker: InMemoryBroker, events: list[events_pb2.ScoredEvent]) -> None:
    producer = broker.producer()
    for event in events:
        producer.send(SCORED, event.rollout.group_id, event)
    producer.flush()


def group_events(make_event: EventFactory, prompt: str, rewards: list[float]) -> list[Any]:
    return [make_event(prompt, 0, i, len(rewards), reward=r) for i, r in enumerate(rewards)]


def consumer_for(
    broker: InMemoryBroker,
    snapshots: ShardSnapshots | None,
    shard: ReplayShard | None = None,
    group: str = GROUP,
    source: InMemoryRecordSource | None = None,
    **options: Any,
) -> ScoredEventConsumer:
    return ScoredEventConsumer(
        source or InMemoryRecordSource(broker, [SCORED], group),
        broker.producer(),
        shard or ReplayShard(),
        snapshots,
        dlq_topic=DLQ,
        poll_timeout_s=0.01,
        **options,
    )


def drain(consumer: ScoredEventConsumer, shard: ReplayShard, broker: InMemoryBroker) -> None:
    """Run the consumer until it has read every record of the scored topic."""
    wanted = {
        (SCORED, p): broker.end_offset(Partition(SCORED, p))
        for p in range(broker.partition_count(SCORED))
        if broker.end_offset(Partition(SCORED, p))
    }
    deadline = time.monotonic() + 10.0
    while shard.offsets() != wanted:
        assert time.monotonic() < deadline, f"read {shard.offsets()}, wanted {wanted}"
        consumer.run_once()


def test_offsets_are_committed_only_with_a_snapshot(
    broker: InMemoryBroker, make_event: EventFactory, tmp_path: Path
) -> None:
    snapshots = ShardSnapshots.for_shard(LocalObjectStore(tmp_path), "shard-0")
    shard = ReplayShard()
    consumer = consumer_for(broker, snapshots, shard)
    produce(broker, group_events(make_event, "a", [1.0, 0.0]))
    produce(broker, group_events(make_event, "z", [1.0, 1.0]))
    drain(consumer, shard, broker)
    stats = shard.stats()
    assert (stats.groups_completed, stats.groups_zero_variance) == (2, 1)
    assert broker.committed(GROUP) == {}
    saved = consumer.snapshot_and_commit()
    committed = {(p.topic, p.partition): offset for p, offset in broker.committed(GROUP).items()}
    assert committed == saved.offsets == shard.offsets()
    assert sum(saved.offsets.values()) == 4
    assert snapshots.latest() == saved


def test_poison_and_contradicting_records_go_to_the_dead_letter_topic(
    broker: InMemoryBroker, make_event: EventFactory
) -> None:
    shard = ReplayShard()
    consumer = consumer_for(broker, None, shard)
    producer = broker.producer()
    producer.send_raw(SCORED, b"p/v0", b"\xff not a scored event")
    producer.send(SCORED, "p/v0", make_event("p", 0, 0, 2))
    producer.send(SCORED, "p/v0", make_event("p", 0, 1, 3))  # another group size
    producer.flush()
    drain(consumer, shard, broker)
    letters = [decode(r.value, events_pb2.DeadLetterEvent) for r in broker.read_all(DLQ)]
    assert [letter.error_class for letter in letters] == ["DecodeError", "ValueError"]
    assert "group_size" in letters[1].reason
    assert consumer.dead_lettered == 2
    assert shard.stats().samples_accepted == 1


def test_snapshot_requested_from_another_thread_is_taken_by_the_consumer(
    broker: InMemoryBroker, make_event: EventFactory, tmp_path: Path
) -> None:
    snapshots = ShardSnapshots.for_shard(LocalObjectStore(tmp_path), "shard-0")
    shard = ReplayShard()
    consumer = consumer_for(broker, snapshots, shard)
    produce(broker, group_events(make_event, "a", [1.0, 0.0]))
    drain(consumer, shard, broker)
    results: list[Any] = []
    caller = threading.Thread(target=lambda: results.append(consumer.request_snapshot(10.0)))
    caller.start()
    deadline = time.monotonic() + 10.0
    while not results:
        assert time.monotonic() < deadline
        consumer.run_once()
    caller.join()
    assert results[0].offsets == shard.offsets()
    assert results[0].sequence == 0


def test_restart_from_the_snapshot_ends_like_a_run_without_restart(
    broker: InMemoryBroker, make_event: EventFactory, tmp_path: Path
) -> None:
    first_part = group_events(make_event, "a", [1.0, 0.0, 0.0]) + group_events(
        make_event, "z", [2.0, 2.0, 2.0]
    )
    first_part += [make_event("b", 0, 0, 3, reward=5.0)]
    second_part = [make_event("b", 0, i, 3, reward=float(i)) for i in (1, 2)]
    second_part += [make_event("a", 0, 1, 3, reward=0.0)]  # a redelivery
    second_part += group_events(make_event, "c", [0.0, 3.0, 3.0])

    store = LocalObjectStore(tmp_path)
    crashed_shard = ReplayShard()
    source = InMemoryRecordSource(broker, [SCORED], GROUP)
    crashed = consumer_for(
        broker, ShardSnapshots.for_shard(store, "s"), crashed_shard, source=source
    )
    produce(broker, first_part)
    drain(crashed, crashed_shard, broker)
    crashed.snapshot_and_commit()
    produce(broker, second_part)
    drain(crashed, crashed_shard, broker)  # read, but never made durable
    source.set_rebalance_callbacks(lambda _: None, lambda _: None)
    source.close()  # leaves the group without a snapshot or a commit: a kill -9

    snapshots = ShardSnapshots.for_shard(store, "s")
    restored = snapshots.restore_latest()
    assert restored is not None
    shard = restored.shard
    drain(consumer_for(broker, snapshots, shard), shard, broker)

    straight = ReplayShard()
    drain(consumer_for(broker, None, straight, group="straight"), straight, broker)
    assert shard.stats() == straight.stats()
    assert shard.stats().duplicates_dropped == 1
    assert shard.stats().groups_completed == 4


def test_revoked_partitions_are_snapshotted_and_committed_before_they_move(
    broker: InMemoryBroker, make_event: EventFactory, tmp_path: Path
) -> None:
    snapshots = ShardSnapshots.for_shard(LocalObjectStore(tmp_path), "s")
    shard = ReplayShard()
    consumer = consumer_for(broker, snapshots, shard)
    produce(broker, group_events(make_event, "a", [1.0, 0.0]))
    drain(consumer, shard, broker)
    assert broker.committed(GROUP) == {}
    InMemoryRecordSource(broker, [SCORED], GROUP)  # a second member joins: a rebalance
    consumer.run_once()
    latest = snapshots.latest()
    assert latest is not None
    committed = broker.committed(GROUP)
    assert committed
    assert all(latest.offsets[(p.topic, p.partition)] == o for p, o in committed.items())


class FlakyStore(LocalObjectStore):
    """Fails the first read with ObjectStoreUnavailable, as an S3 outage would."""

    failures = 1

    def get_bytes(self, key: str) -> bytes:
        if self.failures:
            self.failures -= 1
            raise ObjectStoreUnavailable(f"get {key}", 3, ConnectionError("refused"))
        return super().get_bytes(key)


def test_unavailable_payload_is_retried_not_dead_lettered(
    broker: InMemoryBroker, make_event: EventFactory, tmp_path: Path
) -> None:
    checks = ClaimCheckStore(FlakyStore(tmp_path), "", 0)
    event = make_event("p", 0, 0, 1, reward=1.0)
    event.rollout.CopyFrom(
        offload_if_too_large(event.rollout, lambda r: not r.response_token_ids, checks)
    )
    produce(broker, [event])
    shard = ReplayShard()
    consumer = consumer_for(broker, None, shard, claim_checks=checks)
    failures = 0
    deadline = time.monotonic() + 10.0
    while not shard.offsets():
        assert time.monotonic() < deadline
        try:
            consumer.run_once()
        except ObjectStoreUnavailable:
            failures += 1
    assert failures == 1
    assert consumer.dead_lettered == 0
    assert shard.stats().samples_accepted == 1
