"""The rollout service as separate processes on a real broker and a real S3 server.

Prompts in, complete groups of rollouts out; two workers of one group share the prompts'
partitions; a policy event for a checkpoint in S3 makes the workers hot-reload and tag later
samples with the new version, and a worker that starts later begins on the newest policy.
Each worker is ``python -m hybridrl serve rollout --config FILE``, ready when its gRPC health
check reports SERVING. Waits are loops with deadlines.
"""

from __future__ import annotations

import sys
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import yaml
from hybridrl_services.rollout.worker import WORKER_HEADER
from pydantic import SecretStr

from hybridrl.bus.codec import decode
from hybridrl.bus.producer import EventProducer
from hybridrl.bus.reader import read_all
from hybridrl.bus.topics import Topics, create_topics, default_topic_specs
from hybridrl.config.kafka import KafkaSettings
from hybridrl.config.object_store import ObjectStoreSettings
from hybridrl.local import (
    ChildProcess,
    LocalKafkaBroker,
    LocalS3Server,
    free_port,
    grpc_serving,
    wait_until,
)
from hybridrl.local.object_server import LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY
from hybridrl.models.policy_checkpoint import save_policy
from hybridrl.proto.schema import SCHEMA_VERSION
from hybridrl.proto.v1 import common_pb2, events_pb2, rollout_pb2, rollout_pb2_grpc
from hybridrl.rollout.policy_source import tiny_policy
from hybridrl.rollout.policy_updates import policy_version_event
from hybridrl.rollout.prompts import prompt_event_from_task
from hybridrl.store import CheckpointStore, S3ObjectStore
from hybridrl.tasks.visual_reasoning import generate_prompts

GROUP_SIZE = 3
START_TIMEOUT_S = 60.0


def wait_for(condition: Callable[[], bool], what: str, deadline_s: float = 30.0) -> None:
    wait_until(condition, what, deadline_s, 0.1)


@dataclass
class Run:
    """One test's topics, bucket and clients."""

    kafka: KafkaSettings
    object_store: ObjectStoreSettings
    topics: Topics
    bucket: str
    directory: Path
    producer: EventProducer

    def worker_config(self, name: str, port: int, **overrides: object) -> Path:
        values: dict[str, object] = {
            "kafka": self.kafka.model_dump(mode="json", exclude_none=True),
            "object_store": {
                **self.object_store.model_dump(mode="json", exclude={"access_key", "secret_key"}),
                "access_key": LOCAL_ACCESS_KEY,
                "secret_key": LOCAL_SECRET_KEY,
            },
            "grpc": {"host": "127.0.0.1", "port": port, "grace_seconds": 2.0},
            "topic_prefix": self.topics.prefix,
            "group_id": f"{self.topics.prefix}rollout",
            "worker_id": name,
            "sampling": {"max_new_tokens": 8, "run_seed": 1},
            "max_batch_prompts": 4,
            "poll_timeout_seconds": 0.2,
        }
        values.update(overrides)
        path = self.directory / f"{name}.yaml"
        path.write_text(yaml.safe_dump(values))
        return path

    def publish_prompts(self, seed: int, count: int) -> list[str]:
        events = [prompt_event_from_task(p, GROUP_SIZE) for p in generate_prompts(count, seed=seed)]
        for event in events:
            self.producer.send(self.topics.prompts, event.prompt_id, event)
        self.producer.flush(10)
        return [event.prompt_id for event in events]

    def rollouts(self) -> list[tuple[str, events_pb2.RolloutEvent]]:
        """(worker id, event) of every rollout produced so far."""
        found = []
        for record in read_all(self.kafka, self.topics.rollouts):
            worker = dict(record.headers).get(WORKER_HEADER, b"").decode()
            event = decode(record.value, events_pb2.RolloutEvent)
            assert record.key == event.group_id.encode()
            found.append((worker, event))
        return found


def start_worker(run: Run, name: str, **overrides: object) -> tuple[ChildProcess, int]:
    port = free_port()
    config = run.worker_config(name, port, **overrides)
    process = ChildProcess(
        f"rollout worker {name}",
        [sys.executable, "-m", "hybridrl", "serve", "rollout", "--config", str(config)],
        ready=lambda: grpc_serving(port),
        log_path=run.directory / f"{name}.log",
        start_timeout=START_TIMEOUT_S,
    )
    process.start()
    return process, port


@pytest.fixture
def run(kafka_broker: LocalKafkaBroker, s3_server: LocalS3Server, tmp_path: Path) -> Iterator[Run]:
    kafka = KafkaSettings(
        bootstrap_servers=kafka_broker.bootstrap_servers,
        client_id="rollout-tests",
        request_timeout_ms=5_000,
        delivery_timeout_ms=10_000,
        max_block_ms=5_000,
        session_timeout_ms=6_000,
        heartbeat_interval_ms=500,
        max_poll_interval_ms=20_000,
        linger_ms=1,
    )
    bucket = f"rollout-{uuid.uuid4().hex[:12]}"
    object_store = ObjectStoreSettings(
        endpoint=s3_server.endpoint,
        secure=False,
        access_key=SecretStr(LOCAL_ACCESS_KEY),
        secret_key=SecretStr(LOCAL_SECRET_KEY),
        bucket=bucket,
        create_bucket=True,
    )
    topics = Topics(f"t{uuid.uuid4().hex[:10]}.")
    create_topics(kafka, default_topic_specs(topics, partitions=4))
    producer = EventProducer(kafka)
    yield Run(kafka, object_store, topics, bucket, tmp_path, producer)
    producer.close(5)


def groups_of(
    rollouts: list[tuple[str, events_pb2.RolloutEvent]],
) -> dict[str, dict[str, events_pb2.RolloutEvent]]:
    """group id -> sample id -> event; duplicates must be identical to be merged."""
    groups: dict[str, dict[str, events_pb2.RolloutEvent]] = defaultdict(dict)
    for _, event in rollouts:
        earlier = groups[event.group_id].get(event.sample_id)
        if earlier is not None:
            assert list(earlier.response_token_ids) == list(event.response_token_ids)
        groups[event.group_id][event.sample_id] = event
    return groups


def complete_prompts(run: Run) -> set[str]:
    return {
        next(iter(samples.values())).prompt_id
        for samples in groups_of(run.rollouts()).values()
        if len(samples) == GROUP_SIZE
    }


@pytest.mark.slow
def test_prompts_become_complete_groups_and_generate_answers_beside(run: Run) -> None:
    worker, port = start_worker(run, "solo")
    try:
        prompt_ids = run.publish_prompts(seed=1, count=6)
        wait_for(lambda: complete_prompts(run) >= set(prompt_ids), "6 complete groups")
        groups = groups_of(run.rollouts())
        assert set(groups) == {f"{prompt_id}/v0" for prompt_id in prompt_ids}
        for group_id, samples in groups.items():
            assert sorted(samples) == [f"{group_id}/{index}" for index in range(GROUP_SIZE)]
            assert all(event.policy_version == 0 for event in samples.values())
        assert {name for name, _ in run.rollouts()} == {"solo"}
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = rollout_pb2_grpc.RolloutServiceStub(channel).Generate(
                rollout_pb2.GenerateRequest(
                    schema_version=SCHEMA_VERSION,
                    prompt_text="What is 2+3?",
                    sampling=common_pb2.SamplingParams(
                        n=2, temperature=1, top_p=1, max_new_tokens=4
                    ),
                ),
                timeout=30,
            )
        assert len(reply.completions) == 2
    finally:
        worker.stop()
    assert "rollout service stopped" in worker.log_tail(5)


@pytest.mark.slow
def test_two_workers_share_the_partitions_and_lose_nothing(run: Run) -> None:
    first, _ = start_worker(run, "worker-a")
    second, _ = start_worker(run, "worker-b")
    try:
        published: list[str] = []

        def both_produced() -> bool:
            published.extend(run.publish_prompts(seed=100 + len(published), count=4))
            return {name for name, _ in run.rollouts()} == {"worker-a", "worker-b"}

        wait_for(both_produced, "rollouts from both workers", deadline_s=40)
        wait_for(lambda: complete_prompts(run) >= set(published), "every group complete")
        groups = groups_of(run.rollouts())
        assert len(groups) == len(published)
        assert sum(len(samples) for samples in groups.values()) == GROUP_SIZE * len(published)
    finally:
        first.stop()
        second.stop()


@pytest.mark.slow
def test_policy_event_hot_reloads_workers_and_new_workers_start_on_it(run: Run) -> None:
    worker, _ = start_worker(run, "reloading")
    late: ChildProcess | None = None
    try:
        first_ids = run.publish_prompts(seed=200, count=2)
        wait_for(lambda: complete_prompts(run) >= set(first_ids), "groups from version 0")
        store = S3ObjectStore.from_settings(run.object_store, prefix="run-1/checkpoints")
        checkpoints = CheckpointStore(store, "")
        ref = save_policy(checkpoints, 100, tiny_policy(1).model, "adapter", 1)
        event = policy_version_event(checkpoints, ref, "adapter", 1)
        assert event.checkpoint_uri.startswith(f"s3://{run.bucket}/run-1/checkpoints/")
        run.producer.send(run.topics.policy, "policy", event)
        run.producer.flush(10)
        published: list[str] = []

        def tagged_with_the_new_version() -> bool:
            published.extend(run.publish_prompts(seed=300 + len(published), count=1))
            return any(e.policy_version == 1 for _, e in run.rollouts())

        wait_for(tagged_with_the_new_version, "a rollout of version 1")
        after_ids = run.publish_prompts(seed=400, count=3)
        wait_for(lambda: complete_prompts(run) >= set(after_ids), "groups after the update")
        versions = {e.prompt_id: e.policy_version for _, e in run.rollouts()}
        assert {versions[prompt_id] for prompt_id in first_ids} == {0}
        assert {versions[prompt_id] for prompt_id in after_ids} == {1}
        late, port = start_worker(run, "late", consume=False)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = rollout_pb2_grpc.RolloutServiceStub(channel).Generate(
                rollout_pb2.GenerateRequest(
                    schema_version=SCHEMA_VERSION,
                    prompt_text="What is 2+3?",
                    sampling=common_pb2.SamplingParams(
                        n=1, temperature=1, top_p=1, max_new_tokens=2
                    ),
                ),
                timeout=30,
            )
        # A worker reports SERVING only once it has loaded the newest announced policy.
        assert reply.completions[0].policy_version == 1
    finally:
        worker.stop()
        if late is not None:
            late.stop()
