"""build_service without Kafka (gRPC only): health, Generate, the initial checkpoint, stop."""

from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hybridrl_services.rollout.main import build_service
from hybridrl_services.rollout.settings import RolloutSettings

from hybridrl.models.policy_checkpoint import save_policy
from hybridrl.proto.schema import SCHEMA_VERSION
from hybridrl.proto.v1 import common_pb2, rollout_pb2, rollout_pb2_grpc
from hybridrl.rollout.policy_source import tiny_policy
from hybridrl.store import CheckpointStore, LocalObjectStore

REQUEST = rollout_pb2.GenerateRequest(
    schema_version=SCHEMA_VERSION,
    prompt_text="What is 2+3?",
    sampling=common_pb2.SamplingParams(n=2, temperature=1, top_p=1, max_new_tokens=3, seed=4),
)


def health(channel: grpc.Channel) -> int:
    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    return int(reply.status)


def test_grpc_only_service_starts_on_its_initial_checkpoint_and_stops_cleanly(
    tmp_path: Path,
) -> None:
    checkpoints = CheckpointStore(LocalObjectStore(tmp_path), "run-1")
    ref = save_policy(checkpoints, 30, tiny_policy(2).model, "full", 3)
    settings = RolloutSettings.model_validate(
        {
            "grpc": {"host": "127.0.0.1", "port": 0, "grace_seconds": 1.0},
            "consume": False,
            "watch_policy": False,
            "model": {"initial_checkpoint_uri": ref.uri},
            "sampling": {"max_new_tokens_cap": 8},
        }
    )
    service = build_service(settings)
    port = service.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            assert health(channel) == health_pb2.HealthCheckResponse.SERVING
            reply = rollout_pb2_grpc.RolloutServiceStub(channel).Generate(REQUEST, timeout=30)
            assert [c.policy_version for c in reply.completions] == [3, 3]
            assert service.updater.counters.applied == 1
    finally:
        service.stop()
    with (
        grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
        pytest.raises(grpc.RpcError) as raised,
    ):
        health(channel)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
