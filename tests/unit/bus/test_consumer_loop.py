"""The consumer loop over the in-memory bus: outputs, dead letters, commits and failures."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from hybridrl.bus.codec import decode
from hybridrl.bus.consumer import ConsumerLoop
from hybridrl.bus.memory import InMemoryBroker, InMemoryRecordSource
from hybridrl.bus.records import (
    DeliveryError,
    HandlerResult,
    OutputRecord,
    Partition,
    Record,
    RecordFailure,
)
from hybridrl.bus.topics import TopicSpec
from hybridrl.proto.schema import SCHEMA_VERSION
from hybridrl.proto.v1 import events_pb2

RolloutFactory = Callable[..., events_pb2.RolloutEvent]
Rollouts = Sequence[Record[events_pb2.RolloutEvent]]
WHEN = datetime(2026, 1, 2, tzinfo=UTC)


def score(records: Rollouts) -> HandlerResult:
    """Scores every rollout 1.0."""
    return HandlerResult(
        outputs=[
            OutputRecord(
                "scored",
                record.value.group_id,
                events_pb2.ScoredEvent(schema_version=SCHEMA_VERSION, rollout=record.value),
            )
            for record in records
        ]
    )


def make_loop(
    broker: InMemoryBroker,
    handler: Callable[[Rollouts], HandlerResult],
    source: InMemoryRecordSource | None = None,
    **options: Any,
) -> ConsumerLoop[events_pb2.RolloutEvent]:
    return ConsumerLoop(
        source or broker.source(["rollouts"], "reward"),
        handler,
        broker.producer(),
        events_pb2.RolloutEvent,
        dlq_topic="dlq",
        service_name="reward",
        poll_timeout_s=0.0,
        clock=lambda: WHEN,
        **options,
    )


def produce(broker: InMemoryBroker, events: Sequence[events_pb2.RolloutEvent]) -> None:
    producer = broker.producer()
    for event in events:
        producer.send("rollouts", event.group_id, event)


def dead_letters(broker: InMemoryBroker) -> list[events_pb2.DeadLetterEvent]:
    return [decode(r.value, events_pb2.DeadLetterEvent) for r in broker.read_all("dlq")]


def scored_ids(broker: InMemoryBroker) -> list[str]:
    events = [decode(r.value, events_pb2.ScoredEvent) for r in broker.read_all("scored")]
    return sorted(event.rollout.sample_id for event in events)


def test_outputs_are_produced_and_the_batch_committed(
    broker: InMemoryBroker, make_rollout: RolloutFactory
) -> None:
    produce(broker, [make_rollout("p2@v0", i) for i in range(3)])  # partition 0
    loop = make_loop(broker, score)
    outcome = loop.run_once()
    assert (outcome.consumed, outcome.produced, outcome.dead_lettered) == (3, 3, 0)
    assert outcome.committed == {Partition("rollouts", 0): 3}
    assert broker.committed("reward") == {Partition("rollouts", 0): 3}
    assert scored_ids(broker) == ["p2@v0#0", "p2@v0#1", "p2@v0#2"]
    assert [r.key for r in broker.read_all("scored")] == [b"p2@v0"] * 3
    counters = loop.counters
    assert (counters.consumed, counters.produced, counters.commits) == (3, 3, 1)


def test_max_poll_records_bounds_the_batch(
    broker: InMemoryBroker, make_rollout: RolloutFactory
) -> None:
    produce(broker, [make_rollout("p2@v0", i) for i in range(5)])
    loop = make_loop(broker, score, max_poll_records=2)
    assert [loop.run_once().consumed for _ in range(4)] == [2, 2, 1, 0]


def test_a_record_the_handler_rejects_is_dead_lettered_and_the_rest_go_on(
    broker: InMemoryBroker, make_rollout: RolloutFactory
) -> None:
    produce(broker, [make_rollout("p2@v0", i) for i in range(3)])

    def reject_second(records: Rollouts) -> HandlerResult:
        scored = score([r for r in records if r.value.sample_index != 1])
        failures = [
            RecordFailure(r, "no reference answer", "InvalidInput")
            for r in records
            if r.value.sample_index == 1
        ]
        return HandlerResult(scored.outputs, failures)

    outcome = make_loop(broker, reject_second).run_once()
    assert (outcome.produced, outcome.dead_lettered) == (2, 1)
    [letter] = dead_letters(broker)
    assert (letter.reason, letter.error_class, letter.service_name) == (
        "no reference answer",
        "InvalidInput",
        "reward",
    )
    assert (letter.original_topic, letter.original_partition, letter.original_offset) == (
        "rollouts",
        0,
        1,
    )
    assert letter.original_value == make_rollout("p2@v0", 1).SerializeToString()
    assert letter.dead_lettered_at.ToDatetime(tzinfo=UTC) == WHEN
    assert broker.committed("reward") == {Partition("rollouts", 0): 3}


def test_a_record_that_makes_the_handler_raise_is_isolated_and_dead_lettered(
    broker: InMemoryBroker, make_rollout: RolloutFactory
) -> None:
    produce(broker, [make_rollout("p2@v0", i) for i in range(4)])
    calls: list[int] = []

    def fragile(records: Rollouts) -> HandlerResult:
        calls.append(len(records))
        if any(r.value.sample_index == 2 for r in records):
            raise ZeroDivisionError("division by zero")
        return score(records)

    loop = make_loop(broker, fragile, handler_attempts=2)
    outcome = loop.run_once()
    assert calls == [4, 4, 1, 1, 1, 1]  # the batch twice, then each record alone
    assert (outcome.produced, outcome.dead_lettered) == (3, 1)
    assert scored_ids(broker) == ["p2@v0#0", "p2@v0#1", "p2@v0#3"]
    [letter] = dead_letters(broker)
    assert letter.original_offset == 2
    assert letter.error_class == "ZeroDivisionError"
    assert letter.reason == "handler raised ZeroDivisionError: division by zero"
    assert loop.counters.handler_errors == 3
    assert broker.committed("reward") == {Partition("rollouts", 0): 4}


def test_a_handler_that_always_raises_dead_letters_every_record(
    broker: InMemoryBroker, make_rollout: RolloutFactory
) -> None:
    produce(broker, [make_rollout("p2@v0", 0)])

    def broken(records: Rollouts) -> HandlerResult:
        raise RuntimeError("reward model unreachable")

    loop = make_loop(broker, broken, handler_attempts=3)
    outcome = loop.run_once()
    assert (outcome.produced, outcome.dead_lettered) == (0, 1)
    assert loop.counters.handler_errors == 3
    assert dead_letters(broker)[0].reason == "handler raised RuntimeError: reward model unreachable"


def test_an_output_over_the_size_limit_dead_letters_its_input(make_rollout: RolloutFactory) -> None:
    broker = InMemoryBroker(max_message_bytes=2_000)
    broker.create_topics([TopicSpec("rollouts", 1), TopicSpec("scored", 1), TopicSpec("dlq", 1)])
    produce(broker, [make_rollout("g", 0), make_rollout("g", 1, response_text="x" * 1_500)])

    def pad(records: Rollouts) -> HandlerResult:
        # Scoring adds ~600 bytes: the long rollout no longer fits once scored.
        result = score(records)
        for output in result.outputs:
            output.message.extracted_answer = "y" * 600  # type: ignore[attr-defined]
        return result

    outcome = make_loop(broker, pad).run_once()
    assert (outcome.produced, outcome.dead_lettered) == (1, 1)
    [letter] = dead_letters(broker)
    assert letter.original_offset == 1
    assert letter.error_class == "MessageTooLargeError"
    assert "claim check" in letter.reason


def test_poison_records_are_dead_lettered_without_calling_the_handler(
    broker: InMemoryBroker,
) -> None:
    producer = broker.producer()
    producer.send_raw("rollouts", b"p2@v0", b"\xff\xff\xff")
    seen: list[int] = []

    def handler(records: Rollouts) -> HandlerResult:
        seen.append(len(records))
        return HandlerResult()

    outcome = make_loop(broker, handler).run_once()
    assert seen == []
    assert (outcome.consumed, outcome.dead_lettered) == (1, 1)
    assert dead_letters(broker)[0].error_class == "DecodeError"
    assert dead_letters(broker)[0].original_key == b"p2@v0"


def test_a_delivery_failure_rewinds_the_batch_and_commits_nothing(
    broker: InMemoryBroker, make_rollout: RolloutFactory
) -> None:
    produce(broker, [make_rollout("p2@v0", i) for i in range(2)])
    loop = make_loop(broker, score)
    broker.set_available(False)
    with pytest.raises(DeliveryError):
        loop.run_once()
    assert broker.committed("reward") == {}
    assert loop.counters.delivery_failures == 1
    broker.set_available(True)
    outcome = loop.run_once()
    assert (outcome.consumed, outcome.produced) == (2, 2)
    assert broker.committed("reward") == {Partition("rollouts", 0): 2}


def test_run_stops_when_the_stop_event_is_set(
    broker: InMemoryBroker, make_rollout: RolloutFactory
) -> None:
    produce(broker, [make_rollout("p2@v0", i) for i in range(3)])
    stop = threading.Event()

    def score_then_stop(records: Rollouts) -> HandlerResult:
        stop.set()
        return score(records)

    loop = make_loop(broker, score_then_stop, max_poll_records=1)
    loop.run(stop)
    assert loop.counters.consumed == 1
    assert broker.committed("reward") == {Partition("rollouts", 0): 1}


class FlakyCommitSource(InMemoryRecordSource):
    """Fails the first ``failures`` commits with a transient error, as a moving coordinator
    would."""

    def __init__(self, broker: InMemoryBroker, failures: int) -> None:
        super().__init__(broker, ["rollouts"], "reward")
        self.failures = failures

    def commit(self, offsets: Mapping[Partition, int]) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise TimeoutError("coordinator not available")
        super().commit(offsets)


def test_a_failed_commit_is_retried_at_close(
    broker: InMemoryBroker, make_rollout: RolloutFactory
) -> None:
    produce(broker, [make_rollout("p2@v0", 0)])
    loop = make_loop(broker, score, source=FlakyCommitSource(broker, failures=1))
    loop.run_once()
    assert broker.committed("reward") == {}
    assert loop.counters.commit_failures == 1
    loop.close()
    assert broker.committed("reward") == {Partition("rollouts", 0): 1}


def test_a_member_losing_partitions_commits_its_work_first(
    broker: InMemoryBroker, make_rollout: RolloutFactory
) -> None:
    # One rollout in each of the four partitions (keys hashed by crc32 % 4).
    produce(broker, [make_rollout(group, 0) for group in ("p2@v0", "p3@v0", "p1@v0", "a")])
    loop = make_loop(broker, score, source=FlakyCommitSource(broker, failures=2))
    loop.run_once()  # reads all four partitions; the commit fails
    second_member = broker.source(["rollouts"], "reward")
    second = make_loop(broker, score, source=second_member)
    assert second.run_once().consumed == 0  # joined; the first member still holds everything
    loop.run_once()  # retrying the commit fails again, then the poll gives up partitions 1, 3
    assert broker.committed("reward") == {
        Partition("rollouts", 1): 1,
        Partition("rollouts", 3): 1,
    }
    assert second.run_once().consumed == 0  # takes 1 and 3 from the commit: nothing twice
    assert second_member.assignment() == {Partition("rollouts", 1), Partition("rollouts", 3)}
    assert second.counters.consumed == 0
    loop.run_once()
    assert broker.committed("reward") == {Partition("rollouts", p): 1 for p in range(4)}
    assert loop.counters.commit_failures == 2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_poll_records": 0}, "max_poll_records must be >= 1"),
        ({"handler_attempts": 0}, "handler_attempts must be >= 1"),
        ({"retry_backoff_s": -1.0}, "must be >= 0"),
    ],
)
def test_bad_loop_options_are_rejected(
    broker: InMemoryBroker, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        make_loop(broker, score, **options)
