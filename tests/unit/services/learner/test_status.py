"""LearnerService on a real gRPC server on loopback: Status from the loop's progress, an
on-demand Checkpoint that waits for the loop, and INVALID_ARGUMENT for bad requests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import grpc
import pytest
from hybridrl_services.common.grpc_server import ServiceServer
from hybridrl_services.learner.status import SERVICE_NAME, LearnerProgress, LearnerServicer

from hybridrl.config.service_settings import GrpcServerSettings
from hybridrl.proto.schema import SCHEMA_VERSION
from hybridrl.proto.v1 import common_pb2, learner_pb2, learner_pb2_grpc


@pytest.fixture
def served() -> Iterator[tuple[LearnerProgress, learner_pb2_grpc.LearnerServiceStub]]:
    progress = LearnerProgress(common_pb2.TRAIN_MODE_ADAPTER_ONLY)
    servicer = LearnerServicer(progress)
    server = ServiceServer(
        GrpcServerSettings(host="127.0.0.1", port=0, max_workers=4),
        [SERVICE_NAME],
        lambda grpc_server: learner_pb2_grpc.add_LearnerServiceServicer_to_server(
            servicer, grpc_server
        ),
    )
    port = server.start()
    server.set_serving(True)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield progress, learner_pb2_grpc.LearnerServiceStub(channel)
    server.stop(0)


def test_status_reports_the_loops_progress(
    served: tuple[LearnerProgress, learner_pb2_grpc.LearnerServiceStub],
) -> None:
    progress, stub = served
    progress.update(
        step=12,
        phase="grpo",
        policy_version=13,
        losses={"total": 0.25, "grpo": 0.2},
        samples_per_second=42.5,
    )
    progress.checkpointed("s3://b/runs/r/learner/step-000000010/", 10, "ab" * 32)
    status = stub.Status(learner_pb2.StatusRequest(schema_version=SCHEMA_VERSION), timeout=5)
    assert (status.step, status.policy_version) == (12, 13)
    assert status.phase == learner_pb2.TRAINING_PHASE_GRPO
    assert dict(status.losses) == {"total": 0.25, "grpo": 0.2}
    assert status.samples_per_second == 42.5
    assert status.last_checkpoint_uri == "s3://b/runs/r/learner/step-000000010/"
    assert status.mode == common_pb2.TRAIN_MODE_ADAPTER_ONLY


def test_a_wrong_schema_version_is_invalid_argument(
    served: tuple[LearnerProgress, learner_pb2_grpc.LearnerServiceStub],
) -> None:
    _, stub = served
    for call, request in (
        (stub.Status, learner_pb2.StatusRequest(schema_version=0)),
        (stub.Checkpoint, learner_pb2.CheckpointRequest(schema_version=0)),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            call(request, timeout=5)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "schema" in (caught.value.details() or "")


def test_checkpoint_waits_for_the_loop_to_write_one(
    served: tuple[LearnerProgress, learner_pb2_grpc.LearnerServiceStub],
) -> None:
    progress, stub = served
    progress.update(step=7)

    def loop() -> None:
        while not progress.take_checkpoint_request():
            time.sleep(0.01)
        progress.checkpointed("s3://b/r/learner/step-000000007/", 7, "cd" * 32)

    thread = threading.Thread(target=loop)
    thread.start()
    response = stub.Checkpoint(
        learner_pb2.CheckpointRequest(schema_version=SCHEMA_VERSION), timeout=10
    )
    thread.join()
    assert (response.checkpoint_uri, response.step) == ("s3://b/r/learner/step-000000007/", 7)
    assert response.manifest_sha256 == "cd" * 32
    assert not progress.take_checkpoint_request()


def test_checkpoint_times_out_and_fails_after_the_run_ended(
    served: tuple[LearnerProgress, learner_pb2_grpc.LearnerServiceStub],
) -> None:
    progress, stub = served
    with pytest.raises(grpc.RpcError) as caught:
        stub.Checkpoint(learner_pb2.CheckpointRequest(schema_version=SCHEMA_VERSION), timeout=0.5)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    progress.update(step=3, finished=True)
    with pytest.raises(grpc.RpcError) as caught:
        stub.Checkpoint(learner_pb2.CheckpointRequest(schema_version=SCHEMA_VERSION), timeout=5)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
