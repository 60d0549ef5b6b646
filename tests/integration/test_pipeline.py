"""The three services wired through a real broker: prompts in, SSB batches out.

Rollout, reward and SSB each run as a separate process (``hybridrl serve NAME``) on a real
Kafka-protocol broker, the SSB snapshots to a real S3 server. Synthetic task prompts go onto the
prompts topic; every group comes back scored, the SSB assembles it, and ``Sample`` returns
samples whose advantages are eq. 6 of the rewards the reward service put on the scored topic.
"""

from __future__ import annotations

import sys
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
import torch
import yaml
from pydantic import SecretStr

from hybridrl.algo.advantages import group_advantages
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
from hybridrl.proto.schema import SCHEMA_VERSION
from hybridrl.proto.v1 import buffer_pb2, buffer_pb2_grpc, events_pb2
from hybridrl.rollout.prompts import prompt_event_from_task
from hybridrl.tasks.visual_reasoning import generate_prompts

pytestmark = pytest.mark.slow

PROMPTS = 8
GROUP_SIZE = 4


def wait_for(condition: Callable[[], bool], what: str, deadline_s: float = 90.0) -> None:
    wait_until(condition, what, deadline_s, 0.2)


@pytest.fixture
def pipeline(
    kafka_broker: LocalKafkaBroker, s3_server: LocalS3Server, tmp_path: Path
) -> Iterator[tuple[KafkaSettings, Topics, int]]:
    kafka = KafkaSettings(
        bootstrap_servers=kafka_broker.bootstrap_servers,
        client_id="pipeline-tests",
        session_timeout_ms=6_000,
        heartbeat_interval_ms=500,
        max_poll_interval_ms=60_000,
        linger_ms=1,
    )
    topics = Topics(f"p{uuid.uuid4().hex[:10]}.")
    create_topics(kafka, default_topic_specs(topics, partitions=2))
    object_store = ObjectStoreSettings(
        endpoint=s3_server.endpoint,
        secure=False,
        access_key=SecretStr(LOCAL_ACCESS_KEY),
        secret_key=SecretStr(LOCAL_SECRET_KEY),
        bucket=f"pipe-{uuid.uuid4().hex[:12]}",
        create_bucket=True,
    )
    store_values = {
        **object_store.model_dump(mode="json", exclude={"access_key", "secret_key"}),
        "access_key": LOCAL_ACCESS_KEY,
        "secret_key": LOCAL_SECRET_KEY,
    }
    common = {
        "kafka": kafka.model_dump(mode="json", exclude_none=True),
        "topic_prefix": topics.prefix,
        "poll_timeout_seconds": 0.2,
    }
    ports = {name: free_port() for name in ("rollout", "reward", "ssb")}
    own = {
        "rollout": {
            "group_id": f"{topics.prefix}rollout",
            "sampling": {"max_new_tokens": 12, "run_seed": 3},
            "max_batch_prompts": 4,
            "watch_policy": False,
        },
        # The tiny reward model gives every response its own r_theta (eq. 7), so the untrained
        # policy's groups have reward variance even when no answer is right.
        "reward": {
            "group_id": f"{topics.prefix}reward",
            "rewards": {"pool": {"workers": 1}},
            "reward_model": {"source": "tiny"},
        },
        "ssb": {
            "group_id": f"{topics.prefix}ssb",
            "object_store": store_values,
            "shard": "pipeline",
            "max_sample_wait_seconds": 1.0,
        },
    }
    processes = []
    try:
        for name, port in ports.items():
            values = {
                **common,
                **own[name],
                "grpc": {"host": "127.0.0.1", "port": port, "grace_seconds": 2.0},
            }
            config = tmp_path / f"{name}.yaml"
            config.write_text(yaml.safe_dump(values))
            process = ChildProcess(
                name,
                [sys.executable, "-m", "hybridrl", "serve", name, "--config", str(config)],
                ready=lambda port=port: grpc_serving(port),
                log_path=tmp_path / f"{name}.log",
                start_timeout=90.0,
            )
            process.start()
            processes.append(process)
        yield kafka, topics, ports["ssb"]
    finally:
        for process in reversed(processes):
            process.stop(grace=10.0)


def test_prompts_become_ssb_batches_with_eq6_advantages(
    pipeline: tuple[KafkaSettings, Topics, int],
) -> None:
    kafka, topics, ssb_port = pipeline
    producer = EventProducer(kafka)
    try:
        for prompt in generate_prompts(PROMPTS, seed=21):
            event = prompt_event_from_task(prompt, GROUP_SIZE)
            producer.send(topics.prompts, event.prompt_id, event)
        producer.flush(10)
    finally:
        producer.close(5)

    with grpc.insecure_channel(f"127.0.0.1:{ssb_port}") as channel:
        buffer = buffer_pb2_grpc.BufferServiceStub(channel)

        def stats() -> buffer_pb2.StatsResponse:
            request = buffer_pb2.StatsRequest(schema_version=SCHEMA_VERSION)
            return buffer.Stats(request, timeout=5)

        wait_for(lambda: stats().groups_seen == PROMPTS, "every group assembled by the SSB")
        final = stats()
        batch = buffer.Sample(
            buffer_pb2.SampleRequest(
                schema_version=SCHEMA_VERSION,
                kind=buffer_pb2.BATCH_KIND_GRPO,
                batch_size=PROMPTS * GROUP_SIZE,
                current_policy_version=0,
                max_staleness=4,
                learner_rank=0,
                learner_world_size=1,
                learner_step=0,
            ),
            timeout=10,
        )

    scored = [decode(r.value, events_pb2.ScoredEvent) for r in read_all(kafka, topics.scored)]
    rewards: dict[str, dict[int, float]] = defaultdict(dict)
    for event in scored:
        rewards[event.rollout.group_id][event.rollout.sample_index] = event.reward.total
    assert len(rewards) == PROMPTS
    assert all(len(group) == GROUP_SIZE for group in rewards.values())

    expected: dict[str, float] = {}
    effective_groups = 0
    for group_id, by_index in rewards.items():
        row = [by_index[i] for i in range(GROUP_SIZE)]
        result = group_advantages(torch.tensor([row], dtype=torch.float64))
        effective_groups += int(result.effective_mask[0])
        for index, advantage in enumerate(result.advantages[0].tolist()):
            expected[f"{group_id}/{index}"] = advantage
    assert final.groups_dropped_zero_variance == PROMPTS - effective_groups
    assert effective_groups > 0

    samples = batch.grpo.samples
    # Zero-variance groups are dropped from training; every sample of the others is served.
    assert len(samples) == effective_groups * GROUP_SIZE
    for sample in samples:
        assert sample.advantage == pytest.approx(expected[sample.sample_id], abs=1e-9)
        assert len(sample.response_token_ids) > 0
