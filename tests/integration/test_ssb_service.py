"""The SSB store as a separate process on a real broker and a real S3 server.

Scored events in (some groups zero-variance, one group's tokens behind a claim check in S3);
``Sample`` returns the eq. 6 advantages and ``Stats`` counts the dropped groups. Then the
service is killed with SIGKILL after a ``Snapshot``, more events arrive, and the restarted
service restores the snapshot, reads on from its offsets and reports the statistics the killed
one had reached without the kill; a retried ``Sample`` for a step served before the snapshot
returns the same batch, and fresh samples served before are not served again.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest
import yaml
from pydantic import SecretStr

from hybridrl.algo.samples import group_id_for, sample_id_for
from hybridrl.bus.producer import EventProducer
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
from hybridrl.proto.schema import SCHEMA_VERSION
from hybridrl.proto.tensor_codec import array_from_tensor, tensor_from_array
from hybridrl.proto.v1 import buffer_pb2, buffer_pb2_grpc, common_pb2, events_pb2
from hybridrl.store import ClaimCheckStore, open_object_store
from hybridrl.store.rollout_payloads import offload_if_too_large

START_TIMEOUT_S = 60.0
SHARD = "shard-it"

# [1, 0, 0, 0]: mean 0.25, unbiased std 0.5 -> 0.75 / 0.500001 and -0.25 / 0.500001.
# [3, 1] and [2, 0]: mean +- 1, std sqrt(2) -> +-1 / (1.4142135623730951 + 1e-6).
A_HIGH, A_LOW = 1.499997000006, -0.499999000002
PAIR = 0.7071062811869011


def wait_for(condition: Callable[[], bool], what: str, deadline_s: float = 30.0) -> None:
    wait_until(condition, what, deadline_s, 0.1)


@dataclass
class Run:
    """One test's topics, bucket, clients and service configuration."""

    kafka: KafkaSettings
    object_store: ObjectStoreSettings
    topics: Topics
    directory: Path
    producer: EventProducer
    claim_checks: ClaimCheckStore
    port: int

    def config(self) -> Path:
        values: dict[str, object] = {
            "kafka": self.kafka.model_dump(mode="json", exclude_none=True),
            "object_store": {
                **self.object_store.model_dump(mode="json", exclude={"access_key", "secret_key"}),
                "access_key": LOCAL_ACCESS_KEY,
                "secret_key": LOCAL_SECRET_KEY,
            },
            "grpc": {"host": "127.0.0.1", "port": self.port, "grace_seconds": 2.0},
            "topic_prefix": self.topics.prefix,
            "group_id": f"{self.topics.prefix}ssb",
            "shard": SHARD,
            # Snapshots only on request: the test decides what is durable when it kills.
            "snapshots": {"interval_seconds": 3600, "every_records": 1_000_000},
            "poll_timeout_seconds": 0.2,
            "max_sample_wait_seconds": 1.0,
        }
        path = self.directory / "ssb.yaml"
        path.write_text(yaml.safe_dump(values))
        return path

    def start_service(self, name: str) -> ChildProcess:
        process = ChildProcess(
            f"ssb {name}",
            [sys.executable, "-m", "hybridrl", "serve", "ssb", "--config", str(self.config())],
            ready=lambda: grpc_serving(self.port),
            log_path=self.directory / f"{name}.log",
            start_timeout=START_TIMEOUT_S,
        )
        process.start()
        return process

    def publish(self, events: list[events_pb2.ScoredEvent]) -> None:
        for event in events:
            self.producer.send(self.topics.scored, event.rollout.group_id, event)
        self.producer.flush(10)

    def stub(self, channel: grpc.Channel) -> buffer_pb2_grpc.BufferServiceStub:
        return buffer_pb2_grpc.BufferServiceStub(channel)


def scored(prompt: str, index: int, size: int, reward: float) -> events_pb2.ScoredEvent:
    rollout = events_pb2.RolloutEvent(
        schema_version=SCHEMA_VERSION,
        sample_id=sample_id_for(prompt, 0, index),
        group_id=group_id_for(prompt, 0),
        prompt_id=prompt,
        sample_index=index,
        group_size=size,
        policy_version=0,
        prompt_token_ids=[1, 2, 3],
        response_token_ids=[100 + index],
        behaviour_logprobs=tensor_from_array(np.array([-0.75], dtype=np.float32)),
        response_text=f"answer {index}",
    )
    return events_pb2.ScoredEvent(
        schema_version=SCHEMA_VERSION,
        rollout=rollout,
        reward=common_pb2.RewardParts(rule=reward, total=reward),
        status=common_pb2.SCORER_STATUS_OK,
    )


def group(prompt: str, rewards: list[float]) -> list[events_pb2.ScoredEvent]:
    return [scored(prompt, index, len(rewards), r) for index, r in enumerate(rewards)]


def with_claim_check(
    event: events_pb2.ScoredEvent, checks: ClaimCheckStore
) -> events_pb2.ScoredEvent:
    """The event with its tokens moved to S3, as the rollout worker does for long responses."""
    event.rollout.CopyFrom(
        offload_if_too_large(event.rollout, lambda r: not r.response_token_ids, checks)
    )
    return event


@pytest.fixture
def run(kafka_broker: LocalKafkaBroker, s3_server: LocalS3Server, tmp_path: Path) -> Iterator[Run]:
    kafka = KafkaSettings(
        bootstrap_servers=kafka_broker.bootstrap_servers,
        client_id="ssb-tests",
        request_timeout_ms=5_000,
        delivery_timeout_ms=10_000,
        max_block_ms=5_000,
        session_timeout_ms=6_000,
        heartbeat_interval_ms=500,
        max_poll_interval_ms=20_000,
        linger_ms=1,
    )
    object_store = ObjectStoreSettings(
        endpoint=s3_server.endpoint,
        secure=False,
        access_key=SecretStr(LOCAL_ACCESS_KEY),
        secret_key=SecretStr(LOCAL_SECRET_KEY),
        bucket=f"ssb-{uuid.uuid4().hex[:12]}",
        create_bucket=True,
    )
    topics = Topics(f"t{uuid.uuid4().hex[:10]}.")
    create_topics(kafka, default_topic_specs(topics, partitions=2))
    claims = open_object_store(f"s3://{object_store.bucket}/claim-checks/rollouts", object_store)
    producer = EventProducer(kafka)
    yield Run(
        kafka, object_store, topics, tmp_path, producer, ClaimCheckStore(claims, "", 0), free_port()
    )
    producer.close(5)


def stats(channel: grpc.Channel) -> buffer_pb2.StatsResponse:
    request = buffer_pb2.StatsRequest(schema_version=SCHEMA_VERSION)
    return buffer_pb2_grpc.BufferServiceStub(channel).Stats(request, timeout=10)


def grpo_request(step: int, batch_size: int) -> buffer_pb2.SampleRequest:
    return buffer_pb2.SampleRequest(
        schema_version=SCHEMA_VERSION,
        kind=buffer_pb2.BATCH_KIND_GRPO,
        batch_size=batch_size,
        current_policy_version=0,
        max_staleness=2,
        learner_rank=0,
        learner_world_size=1,
        learner_step=step,
    )


@pytest.mark.slow
def test_ssb_serves_eq6_batches_and_recovers_from_a_kill_after_a_snapshot(run: Run) -> None:
    # Part one: an effective group, a zero-variance one, and one whose tokens are in S3.
    run.publish(group("a", [1.0, 0.0, 0.0, 0.0]) + group("z", [1.0, 1.0, 1.0, 1.0]))
    run.publish([with_claim_check(event, run.claim_checks) for event in group("b", [3.0, 1.0])])
    service = run.start_service("first")
    channel = grpc.insecure_channel(f"127.0.0.1:{run.port}")
    try:
        wait_for(lambda: stats(channel).groups_seen == 3, "3 groups assembled")
        first = run.stub(channel).Sample(grpo_request(step=0, batch_size=10), timeout=10)
        advantages = {s.sample_id: s.advantage for s in first.grpo.samples}
        assert advantages == pytest.approx(
            {
                "a/v0/0": A_HIGH,
                "a/v0/1": A_LOW,
                "a/v0/2": A_LOW,
                "a/v0/3": A_LOW,
                "b/v0/0": PAIR,
                "b/v0/1": -PAIR,
            },
            abs=1e-12,
        )
        b0 = next(s for s in first.grpo.samples if s.sample_id == "b/v0/0")
        assert list(b0.response_token_ids) == [100]  # fetched from the claim check
        assert array_from_tensor(b0.behaviour_logprobs).tolist() == [-0.75]
        assert {s.origin for s in first.grpo.samples} == {buffer_pb2.SAMPLE_ORIGIN_FRESH}
        # All ten fresh samples were taken, z's four without signal; rewards 1 + 4 + 3 + 1 of
        # 10 (rule only), one token each (b's fetched from its claim check).
        assert (first.grpo.fresh_offered, first.grpo.fresh_zero_advantage) == (10, 4)
        assert first.grpo.fresh_reward_mean == common_pb2.RewardParts(rule=0.9, total=0.9)
        assert first.grpo.fresh_response_length_mean == 1.0
        assert b0.reward_parts == common_pb2.RewardParts(rule=3.0, total=3.0)
        counted = stats(channel)
        assert (counted.groups_seen, counted.groups_dropped_zero_variance) == (3, 1)
        assert counted.effective_sample_ratio == pytest.approx(2 / 3)

        snapshot = run.stub(channel).Snapshot(
            buffer_pb2.SnapshotRequest(schema_version=SCHEMA_VERSION), timeout=30
        )
        assert snapshot.snapshot_uri.startswith(
            f"s3://{run.object_store.bucket}/ssb/{SHARD}/step-000000000"
        )
        assert sum(o.offset for o in snapshot.consumer_offsets) == 10

        # Part two arrives and is applied, but only in memory: then the process dies.
        run.publish(group("c", [2.0, 0.0]) + group("d", [5.0, 5.0]) + [scored("a", 0, 4, 1.0)])
        wait_for(lambda: stats(channel).groups_seen == 5, "5 groups assembled")
        before_kill = stats(channel)
        assert before_kill.duplicates_dropped == 1
        service.kill()
    finally:
        channel.close()
        service.stop()

    restarted = run.start_service("restarted")
    channel = grpc.insecure_channel(f"127.0.0.1:{run.port}")
    try:
        wait_for(lambda: stats(channel).groups_seen == 5, "5 groups after the restart", 45.0)
        assert stats(channel) == before_kill
        stub = run.stub(channel)
        assert stub.Sample(grpo_request(step=0, batch_size=10), timeout=10) == first
        # Step 1 takes c and d (d has no signal) and fills two places from the buffer, which
        # now holds step 0's effective samples; nothing of step 0 comes back as fresh.
        second_batch = stub.Sample(grpo_request(step=1, batch_size=4), timeout=10).grpo
        second = second_batch.samples
        assert (second_batch.fresh_offered, second_batch.fresh_zero_advantage) == (4, 2)
        assert second_batch.fresh_reward_mean == common_pb2.RewardParts(rule=3.0, total=3.0)
        fresh = {
            s.sample_id: s.advantage for s in second if s.origin == buffer_pb2.SAMPLE_ORIGIN_FRESH
        }
        replayed = [s.sample_id for s in second if s.origin == buffer_pb2.SAMPLE_ORIGIN_BUFFER]
        assert fresh == pytest.approx({"c/v0/0": PAIR, "c/v0/1": -PAIR}, abs=1e-12)
        assert len(replayed) == 2
        assert set(replayed) <= set(advantages)
        after = stats(channel)
        assert after.groups_dropped_zero_variance == 2
        assert after.buffer_size == 6
    finally:
        channel.close()
        restarted.stop()
