"""The in-memory broker keeps Kafka's partitioning, group and commit rules."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from hybridrl.bus.memory import InMemoryBroker
from hybridrl.bus.records import CommitFailedError, DeliveryError, MessageTooLargeError, Partition
from hybridrl.bus.topics import TopicSpec
from hybridrl.proto.v1 import events_pb2

RolloutFactory = Callable[..., events_pb2.RolloutEvent]


def rollouts(index: int) -> Partition:
    return Partition("rollouts", index)


def test_a_key_always_lands_in_the_same_partition(
    broker: InMemoryBroker, make_rollout: RolloutFactory
) -> None:
    producer = broker.producer()
    deliveries = [
        producer.send("rollouts", group, make_rollout(group, index)).result()
        for index in range(3)
        for group in ("p1@v0", "p2@v0", "p3@v0")
    ]
    by_key = {(d.partition, d.offset) for d in deliveries}
    assert len(by_key) == 9
    assert sorted({d.partition for d in deliveries[0::3]}) == [2]  # p1@v0: crc32 % 4
    assert sorted({d.partition for d in deliveries[1::3]}) == [0]  # p2@v0
    assert sorted({d.partition for d in deliveries[2::3]}) == [1]  # p3@v0
    assert [d.offset for d in deliveries[0::3]] == [0, 1, 2]


def test_records_without_key_go_round_robin(broker: InMemoryBroker) -> None:
    producer = broker.producer()
    partitions = [producer.send_raw("rollouts", None, b"v").result().partition for _ in range(8)]
    assert sorted(partitions) == [0, 0, 1, 1, 2, 2, 3, 3]


def test_two_members_split_the_partitions_and_hand_them_over(broker: InMemoryBroker) -> None:
    first = broker.source(["rollouts"], "reward")
    revoked: list[set[Partition]] = []
    first.set_rebalance_callbacks(revoked.append, lambda partitions: None)
    first.poll(10, 0)
    assert first.assignment() == {rollouts(0), rollouts(1), rollouts(2), rollouts(3)}
    second = broker.source(["rollouts"], "reward")
    second.poll(10, 0)
    assert second.assignment() == set()  # the first member still holds them
    first.poll(10, 0)
    assert revoked == [{rollouts(1), rollouts(3)}]
    second.poll(10, 0)
    assert first.assignment() == {rollouts(0), rollouts(2)}
    assert second.assignment() == {rollouts(1), rollouts(3)}
    second.close()
    first.poll(10, 0)
    assert first.assignment() == {rollouts(0), rollouts(1), rollouts(2), rollouts(3)}


def test_only_the_holder_of_a_partition_may_commit_it(broker: InMemoryBroker) -> None:
    member = broker.source(["rollouts"], "reward")
    member.poll(10, 0)
    member.commit({rollouts(0): 3})
    assert broker.committed("reward") == {rollouts(0): 3}
    other_group = broker.source(["rollouts"], "ssb")
    with pytest.raises(CommitFailedError, match="no longer holds"):
        other_group.commit({rollouts(0): 1})


def test_a_new_member_reads_from_the_last_commit(broker: InMemoryBroker) -> None:
    producer = broker.producer()
    for index in range(5):
        producer.send_raw("rollouts", b"p2@v0", b"%d" % index)  # all in partition 0
    member = broker.source(["rollouts"], "reward")
    assert [r.offset for r in member.poll(2, 0)] == [0, 1]
    member.commit({rollouts(0): 2})
    assert [r.offset for r in member.poll(10, 0)] == [2, 3, 4]
    member.close()  # without committing 2..4
    again = broker.source(["rollouts"], "reward")
    assert [r.value for r in again.poll(10, 0)] == [b"2", b"3", b"4"]
    assert broker.consumer_lag("reward", "rollouts") == {0: 3, 1: 0, 2: 0, 3: 0}


def test_seek_moves_the_next_poll_back(broker: InMemoryBroker) -> None:
    producer = broker.producer()
    for index in range(3):
        producer.send_raw("rollouts", b"p2@v0", b"%d" % index)
    member = broker.source(["rollouts"], "reward")
    assert len(member.poll(10, 0)) == 3
    member.seek({rollouts(0): 1})
    assert [r.value for r in member.poll(10, 0)] == [b"1", b"2"]


def test_sends_fail_while_the_broker_is_unavailable(broker: InMemoryBroker) -> None:
    producer = broker.producer()
    broker.set_available(False)
    future = producer.send_raw("rollouts", b"k", b"v")
    assert isinstance(future.exception(), DeliveryError)
    with pytest.raises(DeliveryError, match="1 records failed to deliver"):
        producer.flush()
    broker.set_available(True)
    producer.send_raw("rollouts", b"k", b"v").result()
    producer.flush()


def test_a_send_to_an_unknown_topic_fails_at_flush(broker: InMemoryBroker) -> None:
    producer = broker.producer()
    producer.send_raw("nope", b"k", b"v")
    with pytest.raises(DeliveryError, match="unknown topic 'nope'"):
        producer.flush()


def test_oversized_events_are_refused_before_sending(make_rollout: RolloutFactory) -> None:
    broker = InMemoryBroker(max_message_bytes=1000)
    broker.create_topics([TopicSpec("rollouts", 1)])
    producer = broker.producer()
    small = make_rollout("g")
    big = make_rollout("g", response_text="x" * 1000)
    assert producer.fits(small, "g")
    assert not producer.fits(big, "g")
    with pytest.raises(MessageTooLargeError, match="claim check"):
        producer.send("rollouts", "g", big)
    assert broker.read_all("rollouts") == []
