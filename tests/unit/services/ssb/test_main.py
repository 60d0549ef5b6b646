"""The assembled service on the in-memory bus: consume, serve, snapshot on request and on stop,
and come back from the snapshot after a restart."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import grpc
from hybridrl_services.ssb.main import SSBService, build_service
from hybridrl_services.ssb.settings import SSBSettings

from hybridrl.bus.memory import InMemoryBroker, InMemoryRecordSource
from hybridrl.proto.schema import SCHEMA_VERSION
from hybridrl.proto.v1 import buffer_pb2, buffer_pb2_grpc, events_pb2

EventFactory = Callable[..., events_pb2.ScoredEvent]
SCORED = "test.scored"


def settings_for(tmp_path: Path) -> SSBSettings:
    return SSBSettings(
        topic_prefix="test.",
        shard="shard-3",
        grpc={"host": "127.0.0.1", "port": 0},  # type: ignore[arg-type]
        snapshots={"uri": str(tmp_path / "snapshots")},  # type: ignore[arg-type]
        poll_timeout_seconds=0.02,
        max_sample_wait_seconds=0.0,
    )


def start(settings: SSBSettings, broker: InMemoryBroker) -> tuple[SSBService, grpc.Channel]:
    service = build_service(
        settings,
        source=InMemoryRecordSource(broker, [SCORED], settings.group_id),
        producer=broker.producer(),
    )
    port = service.start()
    return service, grpc.insecure_channel(f"127.0.0.1:{port}")


def stats_of(channel: grpc.Channel) -> buffer_pb2.StatsResponse:
    stub = buffer_pb2_grpc.BufferServiceStub(channel)
    return stub.Stats(buffer_pb2.StatsRequest(schema_version=SCHEMA_VERSION), timeout=10)


def wait_for_groups(channel: grpc.Channel, groups: int) -> buffer_pb2.StatsResponse:
    deadline = time.monotonic() + 10.0
    while (stats := stats_of(channel)).groups_seen < groups:
        assert time.monotonic() < deadline, f"{stats.groups_seen} of {groups} groups"
        time.sleep(0.01)
    return stats


def test_service_consumes_serves_and_restores_after_a_restart(
    broker: InMemoryBroker, make_event: EventFactory, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path)
    producer = broker.producer()
    for prompt, rewards in (("a", [1.0, 0.0]), ("z", [1.0, 1.0])):
        for index, reward in enumerate(rewards):
            event = make_event(prompt, 0, index, 2, reward=reward)
            producer.send(SCORED, event.rollout.group_id, event)
    producer.flush()

    service, channel = start(settings, broker)
    try:
        stats = wait_for_groups(channel, 2)
        assert stats.groups_dropped_zero_variance == 1
        stub = buffer_pb2_grpc.BufferServiceStub(channel)
        snapshot = stub.Snapshot(
            buffer_pb2.SnapshotRequest(schema_version=SCHEMA_VERSION), timeout=10
        )
        assert snapshot.snapshot_uri.endswith("/ssb/shard-3/step-000000000/")
        assert sum(o.offset for o in snapshot.consumer_offsets) == 4
        assert {(o.topic, o.offset) for o in snapshot.consumer_offsets} <= {
            (SCORED, o) for o in range(5)
        }
    finally:
        channel.close()
        service.stop(0)
    assert (tmp_path / "snapshots" / "ssb" / "shard-3" / "step-000000000").is_dir()

    again, channel = start(settings, broker)
    try:
        assert stats_of(channel) == stats
    finally:
        channel.close()
        again.stop(0)
