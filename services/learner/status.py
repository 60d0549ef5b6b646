"""gRPC ``LearnerService`` on rank 0: ``Status`` and an on-demand ``Checkpoint``.

The training loop publishes its progress into a ``LearnerProgress`` after every step; the
servicer answers from it and never touches the model. ``Checkpoint`` cannot write a checkpoint
itself (that is collective, on every rank, between steps): it files a request, which the loop
picks up at the next step boundary, and waits until a checkpoint at least that new exists.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Any

import grpc
from hybridrl_services.common.grpc_server import abort

from hybridrl.proto.schema import SCHEMA_VERSION, check_schema_version
from hybridrl.proto.v1 import common_pb2, learner_pb2, learner_pb2_grpc

SERVICE_NAME = learner_pb2.DESCRIPTOR.services_by_name["LearnerService"].full_name

PHASES = {"mpo": learner_pb2.TRAINING_PHASE_MPO, "grpo": learner_pb2.TRAINING_PHASE_GRPO}


@dataclass(frozen=True)
class ProgressView:
    """One consistent reading of the learner's progress."""

    step: int = 0
    phase: str = ""
    policy_version: int = 0
    losses: dict[str, float] = field(default_factory=dict)
    last_checkpoint_uri: str = ""
    last_checkpoint_step: int = -1
    last_checkpoint_sha256: str = ""
    samples_per_second: float = 0.0
    mode: common_pb2.TrainMode.ValueType = common_pb2.TRAIN_MODE_UNSPECIFIED
    finished: bool = False


class LearnerProgress:
    """Thread-safe progress of the loop, and the checkpoint requests of gRPC callers."""

    def __init__(self, mode: common_pb2.TrainMode.ValueType) -> None:
        self._view = ProgressView(mode=mode)
        self._condition = threading.Condition()
        self._checkpoint_requested = False

    def view(self) -> ProgressView:
        with self._condition:
            return self._view

    def update(self, **changes: Any) -> None:
        with self._condition:
            self._view = replace(self._view, **changes)
            self._condition.notify_all()

    def checkpointed(self, uri: str, step: int, sha256: str) -> None:
        with self._condition:
            self._view = replace(
                self._view,
                last_checkpoint_uri=uri,
                last_checkpoint_step=step,
                last_checkpoint_sha256=sha256,
            )
            self._checkpoint_requested = False
            self._condition.notify_all()

    def take_checkpoint_request(self) -> bool:
        """Whether a caller asked for a checkpoint (the request stays until one is written)."""
        with self._condition:
            return self._checkpoint_requested

    def request_checkpoint(self, timeout_s: float | None) -> ProgressView:
        """File a request and wait for a checkpoint at the current step or later.

        TimeoutError when none is written in time; RuntimeError when the run has ended.
        """
        with self._condition:
            wanted = self._view.step
            self._checkpoint_requested = True

            def written() -> bool:
                return self._view.last_checkpoint_step >= wanted or self._view.finished

            if not self._condition.wait_for(written, timeout_s):
                raise TimeoutError("no checkpoint was written in time")
            if self._view.last_checkpoint_step < wanted:
                raise RuntimeError("the run ended before the checkpoint")
            return self._view


class LearnerServicer(learner_pb2_grpc.LearnerServiceServicer):
    """Serves ``LearnerService`` from a ``LearnerProgress``."""

    def __init__(self, progress: LearnerProgress) -> None:
        self._progress = progress

    def Status(  # noqa: N802 - the RPC's name
        self, request: learner_pb2.StatusRequest, context: Any
    ) -> learner_pb2.StatusResponse:
        try:
            check_schema_version(request)
        except ValueError as error:
            abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(error))
        view = self._progress.view()
        return learner_pb2.StatusResponse(
            schema_version=SCHEMA_VERSION,
            step=view.step,
            phase=PHASES.get(view.phase, learner_pb2.TRAINING_PHASE_UNSPECIFIED),
            policy_version=view.policy_version,
            losses=view.losses,
            last_checkpoint_uri=view.last_checkpoint_uri,
            samples_per_second=view.samples_per_second,
            mode=view.mode,
        )

    def Checkpoint(  # noqa: N802 - the RPC's name
        self, request: learner_pb2.CheckpointRequest, context: Any
    ) -> learner_pb2.CheckpointResponse:
        try:
            check_schema_version(request)
        except ValueError as error:
            abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(error))
        try:
            view = self._progress.request_checkpoint(context.time_remaining())
        except TimeoutError:
            abort(context, grpc.StatusCode.DEADLINE_EXCEEDED, "no checkpoint was written in time")
        except RuntimeError as error:
            abort(context, grpc.StatusCode.FAILED_PRECONDITION, str(error))
        return learner_pb2.CheckpointResponse(
            schema_version=SCHEMA_VERSION,
            checkpoint_uri=view.last_checkpoint_uri,
            step=max(view.last_checkpoint_step, 0),
            manifest_sha256=view.last_checkpoint_sha256,
        )
