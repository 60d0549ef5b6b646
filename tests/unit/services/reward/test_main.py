"""The assembled reward service on the in-memory bus: consume, score, dead-letter, serve, stop."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hybridrl_services.reward.main import build_service
from hybridrl_services.reward.settings import RewardSettings

from hybridrl.bus.codec import SCHEMA_VERSION_MISMATCH, UNDECODABLE
from hybridrl.bus.memory import InMemoryBroker, InMemoryRecordSource
from hybridrl.bus.records import Partition
from hybridrl.bus.topics import Topics, TopicSpec
from hybridrl.proto.schema import SCHEMA_VERSION
from hybridrl.proto.v1 import common_pb2, events_pb2, reward_pb2, reward_pb2_grpc

TOPICS = Topics("test.")
WRONG = "<think>a guess</think> \\boxed{6}"


def settings(**changes: Any) -> RewardSettings:
    values: dict[str, Any] = {
        "topic_prefix": TOPICS.prefix,
        "grpc": {"host": "127.0.0.1", "port": 0, "grace_seconds": 1.0},
        "rewards": {"pool": {"workers": 1}},
        "reward_model": {"source": "tiny"},
        "poll_timeout_seconds": 0.05,
        "max_poll_records": 8,
    }
    values.update(changes)
    return RewardSettings(**values)


def wait_for(condition: Callable[[], bool], what: str, deadline_s: float = 20.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < deadline, f"{what} not reached within {deadline_s} s"
        time.sleep(0.02)


def health(channel: grpc.Channel) -> int:
    request = health_pb2.HealthCheckRequest(service="")
    return int(health_pb2_grpc.HealthStub(channel).Check(request, timeout=5).status)


def score_request() -> reward_pb2.ScoreRequest:
    item = reward_pb2.ScoringItem(
        response_text="<think>2 plus 3</think> \\boxed{5}",
        reference_answer="5",
        task_kind=common_pb2.TASK_KIND_MATH,
    )
    return reward_pb2.ScoreRequest(schema_version=SCHEMA_VERSION, item=item)


def test_service_scores_rollouts_dead_letters_poison_and_commits(
    make_rollout: Any, inline_png: common_pb2.ImageRef
) -> None:
    broker = InMemoryBroker()
    broker.create_topics(
        [TopicSpec(TOPICS.rollouts, 2), TopicSpec(TOPICS.scored, 2), TopicSpec(TOPICS.dlq, 1)]
    )
    producer = broker.producer()
    rollouts = [
        make_rollout("p1", 0, images=[inline_png]),
        make_rollout("p1", 1, response=WRONG, images=[inline_png]),
        make_rollout("p2", 0),
        make_rollout("p2", 1, response=WRONG),
    ]
    for rollout in rollouts:
        producer.send(TOPICS.rollouts, rollout.group_id, rollout)
    broker.append(TOPICS.rollouts, b"poison", b"\xff\xff\xff not protobuf", ())
    future = make_rollout("p3", 0)
    future.schema_version = SCHEMA_VERSION + 1
    broker.append(TOPICS.rollouts, future.group_id.encode(), future.SerializeToString(), ())
    config = settings()
    service = build_service(
        config,
        source=InMemoryRecordSource(broker, [TOPICS.rollouts], config.group_id),
        producer=producer,
    )
    port = service.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        wait_for(lambda: len(broker.read_all(TOPICS.scored)) == 4, "4 scored events")
        wait_for(lambda: len(broker.read_all(TOPICS.dlq)) == 2, "2 dead letters")
        assert health(channel) == health_pb2.HealthCheckResponse.SERVING
        reply = reward_pb2_grpc.RewardServiceStub(channel).Score(score_request(), timeout=10)
        assert reply.result.reward.rule == 1.0
    finally:
        service.stop(grace=1.0)
        channel.close()
    scored = {}
    for raw in broker.read_all(TOPICS.scored):
        event = events_pb2.ScoredEvent.FromString(raw.value or b"")
        assert raw.key == event.rollout.group_id.encode()
        scored[event.rollout.sample_id] = event
    assert {sample_id: event.rollout for sample_id, event in scored.items()} == {
        rollout.sample_id: rollout for rollout in rollouts
    }
    rules = [scored[rollout.sample_id].reward.rule for rollout in rollouts]
    assert rules == [1.0, 0.0, 1.0, 0.0]
    assert all(event.status == common_pb2.SCORER_STATUS_OK for event in scored.values())
    assert all(0.0 < event.reward.model < 1.0 for event in scored.values())
    letters = [
        events_pb2.DeadLetterEvent.FromString(raw.value or b"")
        for raw in broker.read_all(TOPICS.dlq)
    ]
    assert sorted(letter.error_class for letter in letters) == [
        UNDECODABLE,
        SCHEMA_VERSION_MISMATCH,
    ]
    assert all(letter.service_name == "reward" and letter.reason for letter in letters)
    ends = {
        Partition(TOPICS.rollouts, p): broker.end_offset(Partition(TOPICS.rollouts, p))
        for p in (0, 1)
    }
    assert broker.committed(config.group_id) == ends


def test_grpc_only_service_builds_no_consumer_and_serves() -> None:
    service = build_service(settings(consume=False, reward_model={"source": "none"}))
    assert service.loop is None
    port = service.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        assert health(channel) == health_pb2.HealthCheckResponse.SERVING
        reply = reward_pb2_grpc.RewardServiceStub(channel).Score(score_request(), timeout=10)
    finally:
        service.stop(grace=1.0)
    assert (reply.result.reward.total, reply.result.status) == (
        2.0,
        common_pb2.SCORER_STATUS_MODEL_SKIPPED,
    )
    channel.close()
