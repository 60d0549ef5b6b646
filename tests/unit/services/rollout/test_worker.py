"""The prompt loop on the in-memory bus: rollouts keyed by group, dead letters, hot reload."""

from collections import defaultdict
from pathlib import Path

import pytest
from hybridrl_services.rollout.worker import PromptConsumer, PromptHandler

from hybridrl.bus.codec import decode
from hybridrl.bus.consumer import ConsumerLoop
from hybridrl.bus.memory import InMemoryBroker
from hybridrl.bus.topics import TopicSpec
from hybridrl.models.policy_checkpoint import save_policy
from hybridrl.proto.v1 import events_pb2
from hybridrl.rollout.policy_source import tiny_policy
from hybridrl.rollout.policy_updates import PolicyUpdater, policy_version_event
from hybridrl.rollout.prompt_inputs import PromptEncoder
from hybridrl.rollout.prompts import prompt_event_from_task
from hybridrl.rollout.shared_engine import SharedEngine
from hybridrl.rollout.worker import RolloutSampling, RolloutWorker
from hybridrl.store import CheckpointStore, LocalObjectStore
from hybridrl.tasks.visual_reasoning import generate_prompts

GROUP = "hybridrl-rollout"


@pytest.fixture
def broker() -> InMemoryBroker:
    memory = InMemoryBroker()
    memory.create_topics([TopicSpec("prompts", 2), TopicSpec("rollouts", 4), TopicSpec("dlq", 1)])
    return memory


def consumer_for(
    broker: InMemoryBroker, engine: SharedEngine, encoder: PromptEncoder
) -> tuple[PromptConsumer, PolicyUpdater]:
    producer = broker.producer()
    worker = RolloutWorker(
        engine, encoder, RolloutSampling(max_new_tokens=6, run_seed=3), fits=producer.fits
    )
    loop = ConsumerLoop(
        broker.source(["prompts"], GROUP),
        PromptHandler(worker, "rollouts", "pod-a"),
        producer,
        events_pb2.PromptEvent,
        dlq_topic="dlq",
        service_name="rollout",
        max_poll_records=8,
        poll_timeout_s=0.0,
    )
    updater = PolicyUpdater(engine)
    return PromptConsumer(loop, updater), updater


def publish_prompts(broker: InMemoryBroker, count: int, group_size: int) -> None:
    producer = broker.producer()
    for task in generate_prompts(count, seed=0):
        event = prompt_event_from_task(task, group_size)
        producer.send("prompts", event.prompt_id, event)
    producer.flush()


def rollouts(broker: InMemoryBroker) -> list[tuple[bytes | None, events_pb2.RolloutEvent]]:
    return [
        (record.key, decode(record.value, events_pb2.RolloutEvent))
        for record in broker.read_all("rollouts")
    ]


def test_prompts_become_complete_groups_keyed_by_group_id_and_are_committed(
    broker: InMemoryBroker, shared_engine: SharedEngine, encoder: PromptEncoder
) -> None:
    publish_prompts(broker, 3, group_size=4)
    consumer, _ = consumer_for(broker, shared_engine, encoder)
    consumer.run_once()
    produced = rollouts(broker)
    assert len(produced) == 12
    for key, event in produced:
        assert key == event.group_id.encode()
    assert {record.headers for record in broker.read_all("rollouts")} == {
        (("hybridrl-rollout-worker", b"pod-a"),)
    }
    groups: dict[str, list[int]] = defaultdict(list)
    for _, event in produced:
        groups[event.group_id].append(event.sample_index)
    assert {group: sorted(indices) for group, indices in groups.items()} == {
        "train-0-000000/v0": [0, 1, 2, 3],
        "train-0-000001/v0": [0, 1, 2, 3],
        "train-0-000002/v0": [0, 1, 2, 3],
    }
    partitions_of_group: dict[bytes | None, set[int]] = defaultdict(set)
    for record in broker.read_all("rollouts"):
        partitions_of_group[record.key].add(record.partition)
    assert all(len(partitions) == 1 for partitions in partitions_of_group.values())
    assert sum(broker.committed(GROUP).values()) == 3


def test_a_prompt_the_worker_rejects_is_dead_lettered_with_the_reason(
    broker: InMemoryBroker, shared_engine: SharedEngine, encoder: PromptEncoder
) -> None:
    producer = broker.producer()
    bad = prompt_event_from_task(generate_prompts(1, seed=0)[0], 2)
    bad.prompt_id = "two-images"
    bad.images.append(bad.images[0])
    good = prompt_event_from_task(generate_prompts(2, seed=0)[1], 2)
    for event in (bad, good):
        producer.send("prompts", event.prompt_id, event)
    consumer, _ = consumer_for(broker, shared_engine, encoder)
    consumer.run_once()
    (letter,) = [decode(r.value, events_pb2.DeadLetterEvent) for r in broker.read_all("dlq")]
    assert letter.error_class == "InvalidPrompt"
    assert "at most 1 image per prompt, got 2" in letter.reason
    assert letter.original_topic == "prompts"
    assert {event.prompt_id for _, event in rollouts(broker)} == {"train-0-000001"}
    assert sum(broker.committed(GROUP).values()) == 2


def test_a_verified_update_is_applied_before_the_next_batch(
    broker: InMemoryBroker, shared_engine: SharedEngine, encoder: PromptEncoder, tmp_path: Path
) -> None:
    consumer, updater = consumer_for(broker, shared_engine, encoder)
    publish_prompts(broker, 1, group_size=2)
    consumer.run_once()
    checkpoints = CheckpointStore(LocalObjectStore(tmp_path), "run-1")
    ref = save_policy(checkpoints, 10, tiny_policy(1).model, "adapter", 1)
    assert updater.offer(policy_version_event(checkpoints, ref, "adapter", 1))
    assert shared_engine.policy_version == 0
    publish_prompts(broker, 1, group_size=2)  # the same prompt, delivered again
    consumer.run_once()
    assert shared_engine.policy_version == 1
    assert sorted(event.sample_id for _, event in rollouts(broker)) == [
        "train-0-000000/v0/0",
        "train-0-000000/v0/1",
        "train-0-000000/v1/0",
        "train-0-000000/v1/1",
    ]
    assert updater.counters.applied == 1
    assert sum(broker.committed(GROUP).values()) == 2
