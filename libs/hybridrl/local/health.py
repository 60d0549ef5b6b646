"""Readiness of a local service: its ``grpc.health.v1`` status."""

from __future__ import annotations

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
