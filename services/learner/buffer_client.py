"""The learner's client of the SSB store's ``BufferService``.

``Sample`` is idempotent per (learner_step, learner_rank): the store keeps the batch it served,
so a call that failed in transport (UNAVAILABLE, DEADLINE_EXCEEDED: the store restarting, a
dropped connection) is simply sent again with the same step, and a sample is never trained
twice. Other errors are the caller's to see.
"""

from __future__ import annotations

import logging
import threading
import time

import grpc

from hybridrl.proto.schema import SCHEMA_VERSION
from hybridrl.proto.v1 import buffer_pb2, buffer_pb2_grpc

logger = logging.getLogger(__name__)

_RETRIED = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


class BufferClient:
    """``Sample`` and ``Snapshot`` with retries; one channel for the learner's life."""

    def __init__(
        self,
        address: str,
        *,
        timeout_s: float,
        max_message_bytes: int = 64 * 1024 * 1024,
        stop: threading.Event | None = None,
    ) -> None:
        self._channel = grpc.insecure_channel(
            address, options=[("grpc.max_receive_message_length", max_message_bytes)]
        )
        self._stub = buffer_pb2_grpc.BufferServiceStub(self._channel)
        self._timeout_s = timeout_s
        self._stop = stop or threading.Event()

    def sample(
        self,
        kind: buffer_pb2.BatchKind.ValueType,
        batch_size: int,
        *,
        policy_version: int,
        max_staleness: int,
        rank: int,
        world_size: int,
        step: int,
        attempts: int = 20,
    ) -> buffer_pb2.SampleResponse:
        """This rank's batch of ``step``; may be short or empty when the store has too few."""
        request = buffer_pb2.SampleRequest(
            schema_version=SCHEMA_VERSION,
            kind=kind,
            batch_size=batch_size,
            current_policy_version=policy_version,
            max_staleness=max_staleness,
            learner_rank=rank,
            learner_world_size=world_size,
            learner_step=step,
        )
        backoff = 0.5
        for attempt in range(1, attempts + 1):
            try:
                response: buffer_pb2.SampleResponse = self._stub.Sample(
                    request, timeout=self._timeout_s
                )
                return response
            except grpc.RpcError as error:
                code = error.code()
                if code not in _RETRIED or attempt == attempts or self._stop.is_set():
                    raise
                logger.warning("Sample for step %d failed (%s); retrying", step, code.name)
                time.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
        raise AssertionError("the loop returns or raises")

    def snapshot(self, timeout_s: float = 60.0) -> buffer_pb2.SnapshotResponse | None:
        """Ask the store to snapshot its state; None when it has no snapshot location or
        cannot take one now (the checkpoint then records no offsets)."""
        try:
            response: buffer_pb2.SnapshotResponse = self._stub.Snapshot(
                buffer_pb2.SnapshotRequest(schema_version=SCHEMA_VERSION), timeout=timeout_s
            )
            return response
        except grpc.RpcError as error:
            logger.warning("SSB snapshot before the checkpoint failed: %s", error.code().name)
            return None

    def stats(self, timeout_s: float = 5.0) -> buffer_pb2.StatsResponse | None:
        """The store's statistics; None when it does not answer in time."""
        try:
            response: buffer_pb2.StatsResponse = self._stub.Stats(
                buffer_pb2.StatsRequest(schema_version=SCHEMA_VERSION), timeout=timeout_s
            )
            return response
        except grpc.RpcError as error:
            logger.warning("SSB Stats failed: %s", error.code().name)
            return None

    def close(self) -> None:
        self._channel.close()
