"""Readiness of local services: their ``grpc.health.v1`` status, and waiting for a condition."""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def grpc_serving(port: int, host: str = "127.0.0.1", service: str = "") -> bool:
    """Whether the gRPC server on ``host:port`` reports SERVING for ``service``."""
    with grpc.insecure_channel(f"{host}:{port}") as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=0.5
            )
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def wait_until(
    condition: Callable[[], bool], what: str, timeout_s: float = 30.0, interval_s: float = 0.1
) -> None:
    """Poll ``condition`` until it holds; AssertionError naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout_s} s")
        time.sleep(interval_s)
