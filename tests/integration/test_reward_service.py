"""The reward service as a separate process on a real broker, scored from Kafka and over gRPC.

Rollouts in (one group with an inline image for the tiny reward model), scored events out on
the scored topic with eq. 7's parts under the rollouts' keys; a poison record and an event of
another schema version land in the dead-letter topic with their reasons while the rest are
scored, and the group's offsets are committed. ``hybridrl score`` against the running
service prints the parts. The service is ``python -m hybridrl serve reward --config FILE``,
ready when its gRPC health check reports SERVING. Waits are loops with deadlines.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

from hybridrl.algo.samples import group_id_for, sample_id_for
from hybridrl.bus.codec import SCHEMA_VERSION_MISMATCH, UNDECODABLE, decode
from hybridrl.bus.producer import EventProducer
from hybridrl.bus.reader import consumer_lag, read_all
from hybridrl.bus.topics import Topics, create_topics, default_topic_specs
from hybridrl.config.kafka import KafkaSettings
from hybridrl.local import ChildProcess, LocalKafkaBroker, free_port, grpc_serving, wait_until
from hybridrl.models.images import encode_png, inline_image_ref
from hybridrl.proto.schema import SCHEMA_VERSION
from hybridrl.proto.tensor_codec import tensor_from_array
from hybridrl.proto.v1 import common_pb2, events_pb2

START_TIMEOUT_S = 90.0
CORRECT = "<think>2 plus 3 is 5</think> \\boxed{5}"
WRONG = "<think>a guess</think> \\boxed{6}"
UNSURE = "<think>hmm</think> I am not sure."


def wait_for(condition: Callable[[], bool], what: str, deadline_s: float = 30.0) -> None:
    wait_until(condition, what, deadline_s, 0.1)


def rollout(
    prompt: str, index: int, response: str, images: list[common_pb2.ImageRef] | None = None
) -> events_pb2.RolloutEvent:
    return events_pb2.RolloutEvent(
        schema_version=SCHEMA_VERSION,
        sample_id=sample_id_for(prompt, 0, index),
        group_id=group_id_for(prompt, 0),
        prompt_id=prompt,
        sample_index=index,
        group_size=2,
        policy_version=0,
        prompt_token_ids=[1, 2, 3],
        response_token_ids=[10 + index],
        behaviour_logprobs=tensor_from_array(np.array([-0.5], dtype=np.float32)),
        response_text=response,
        prompt_text="What is 2+3?",
        reference_answer="5",
        task_kind=common_pb2.TASK_KIND_MATH,
        images=images or [],
    )


@dataclass
class Run:
    kafka: KafkaSettings
    topics: Topics
    group_id: str
    port: int
    service: ChildProcess


@pytest.fixture
def run(kafka_broker: LocalKafkaBroker, tmp_path: Path) -> Iterator[Run]:
    kafka = KafkaSettings(
        bootstrap_servers=kafka_broker.bootstrap_servers,
        client_id="reward-tests",
        request_timeout_ms=5_000,
        delivery_timeout_ms=10_000,
        max_block_ms=5_000,
        session_timeout_ms=6_000,
        heartbeat_interval_ms=500,
        max_poll_interval_ms=20_000,
        linger_ms=1,
    )
    topics = Topics(f"t{uuid.uuid4().hex[:10]}.")
    create_topics(kafka, default_topic_specs(topics, partitions=2))
    port = free_port()
    group_id = f"{topics.prefix}reward"
    config = tmp_path / "reward.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "kafka": kafka.model_dump(mode="json", exclude_none=True),
                "grpc": {"host": "127.0.0.1", "port": port, "grace_seconds": 2.0},
                "topic_prefix": topics.prefix,
                "group_id": group_id,
                "rewards": {"pool": {"workers": 1}},
                "reward_model": {"source": "tiny"},
                "poll_timeout_seconds": 0.2,
                "max_poll_records": 16,
            }
        )
    )
    service = ChildProcess(
        "reward service",
        [sys.executable, "-m", "hybridrl", "serve", "reward", "--config", str(config)],
        ready=lambda: grpc_serving(port),
        log_path=tmp_path / "reward.log",
        start_timeout=START_TIMEOUT_S,
    )
    service.start()
    yield Run(kafka, topics, group_id, port, service)
    service.stop(grace=10.0)


def test_rollouts_are_scored_poison_is_dead_lettered_and_the_cli_scores(run: Run) -> None:
    pixels = np.zeros((32, 32, 3), dtype=np.uint8)
    pixels[:, :16] = (200, 10, 30)
    image = inline_image_ref(encode_png(pixels))
    rollouts = [
        rollout("p1", 0, CORRECT, [image]),
        rollout("p1", 1, WRONG, [image]),
        rollout("p2", 0, CORRECT),
        rollout("p2", 1, UNSURE),
    ]
    future = rollout("p3", 0, CORRECT)
    future.schema_version = SCHEMA_VERSION + 1
    producer = EventProducer(run.kafka)
    try:
        for event in rollouts[:2]:
            producer.send(run.topics.rollouts, event.group_id, event)
        producer.send_raw(run.topics.rollouts, b"poison", b"\xff\xff\xff not protobuf")
        producer.send_raw(run.topics.rollouts, b"future", future.SerializeToString())
        for event in rollouts[2:]:
            producer.send(run.topics.rollouts, event.group_id, event)
        producer.flush(10)
    finally:
        producer.close(5)

    wait_for(lambda: len(read_all(run.kafka, run.topics.scored)) >= 4, "4 scored events", 60)
    wait_for(lambda: len(read_all(run.kafka, run.topics.dlq)) >= 2, "2 dead letters")
    scored: dict[str, events_pb2.ScoredEvent] = {}
    for record in read_all(run.kafka, run.topics.scored):
        scored_event = decode(record.value, events_pb2.ScoredEvent)
        assert record.key == scored_event.rollout.group_id.encode()
        scored[scored_event.rollout.sample_id] = scored_event
    assert sorted(scored) == sorted(event.sample_id for event in rollouts)
    summary = [
        (
            scored[event.sample_id].reward.rule,
            scored[event.sample_id].reward.format,
            scored[event.sample_id].extracted_answer,
            scored[event.sample_id].status,
        )
        for event in rollouts
    ]
    assert summary == [
        (1.0, 1.0, "5", common_pb2.SCORER_STATUS_OK),
        (0.0, 1.0, "6", common_pb2.SCORER_STATUS_OK),
        (1.0, 1.0, "5", common_pb2.SCORER_STATUS_OK),
        (0.0, 1.0, "", common_pb2.SCORER_STATUS_NO_ANSWER),
    ]
    for event in rollouts:
        parts = scored[event.sample_id].reward
        assert 0.0 < parts.model < 1.0
        assert parts.total == pytest.approx(parts.rule + parts.model + parts.format, abs=1e-12)
        assert scored[event.sample_id].rollout == event
    # The same response with and without the image: the reward model sees the image.
    assert scored[rollouts[0].sample_id].reward.model != scored[rollouts[2].sample_id].reward.model

    letters = [
        decode(r.value, events_pb2.DeadLetterEvent) for r in read_all(run.kafka, run.topics.dlq)
    ]
    by_key = {letter.original_key: letter for letter in letters}
    assert by_key[b"poison"].error_class == UNDECODABLE
    assert by_key[b"poison"].original_value == b"\xff\xff\xff not protobuf"
    assert by_key[b"future"].error_class == SCHEMA_VERSION_MISMATCH
    assert "schema_version is 2" in by_key[b"future"].reason
    assert {letter.service_name for letter in letters} == {"reward"}
    assert {letter.original_topic for letter in letters} == {run.topics.rollouts}
    wait_for(
        lambda: set(consumer_lag(run.kafka, run.group_id, run.topics.rollouts).values()) == {0},
        "every rollout committed",
    )

    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "hybridrl",
            "score",
            "--target",
            f"127.0.0.1:{run.port}",
            "--gold",
            "5",
            "--prompt",
            "What is 2+3?",
            CORRECT,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    for row in ("r_rule", "r_theta", "r_format", "total", "'5'", "ok"):
        assert row in completed.stdout
    assert "1.0000" in completed.stdout
