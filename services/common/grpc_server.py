"""The gRPC server every service runs: servicers, health checking, reflection and a clean stop.

As in the gRPC examples and vLLM's gRPC server: build the server, register the servicers, the
``grpc.health.v1`` health service and server reflection; report SERVING once the service can
work and NOT_SERVING while it cannot; on SIGTERM report NOT_SERVING, ``stop(grace)`` and return.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterable
from concurrent import futures
from types import FrameType
from typing import Any, NoReturn, Protocol

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from hybridrl.config.service_settings import GrpcServerSettings

logger = logging.getLogger(__name__)

Registrar = Callable[[grpc.Server], None]


def abort(context: Any, code: grpc.StatusCode, message: str) -> NoReturn:
    """``context.abort``, which ends the call by raising; typed so that callers need no
    return after it."""
    context.abort(code, message)
    raise AssertionError("context.abort returns only by raising")


class ServiceServer:
    """A ``grpc.Server`` with health and reflection for the named services."""

    def __init__(
        self,
        settings: GrpcServerSettings,
        service_names: Iterable[str],
        register: Registrar,
    ) -> None:
        self._settings = settings
        self._service_names = list(service_names)
        limit = settings.max_message_bytes
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=settings.max_workers, thread_name_prefix="grpc"),
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
            ],
        )
        register(self._server)
        self._health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        reflection.enable_server_reflection(
            [*self._service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], self._server
        )
        self._stopped = threading.Event()
        self.port = 0

    def start(self) -> int:
        """Bind and start; return the bound port. Health starts NOT_SERVING."""
        address = f"{self._settings.host}:{self._settings.port}"
        self.port = self._server.add_insecure_port(address)
        if self.port == 0:
            raise RuntimeError(f"could not bind gRPC server to {address}")
        self.set_serving(False)
        self._server.start()
        logger.info("gRPC server on port %d: %s", self.port, ", ".join(self._service_names))
        return self.port

    def set_serving(self, serving: bool) -> None:
        """Report SERVING or NOT_SERVING for the whole server and each service."""
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *self._service_names):
            self._health.set(name, status)

    def stop(self, grace: float | None = None) -> None:
        """NOT_SERVING, then let in-flight calls finish for ``grace`` seconds."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.set_serving(False)
        self._server.stop(self._settings.grace_seconds if grace is None else grace).wait()

    def wait_for_termination(self) -> None:
        self._server.wait_for_termination()


def stop_on_signals(on_stop: Callable[[], None]) -> threading.Event:
    """Call ``on_stop`` once on SIGTERM or SIGINT (main thread only); return the stop event."""
    stop = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        if not stop.is_set():
            logger.info("signal %d: stopping", signum)
            stop.set()
            threading.Thread(target=on_stop, name="stop", daemon=True).start()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return stop


class RunnableService(Protocol):
    """What ``run_until_signal`` drives: a service with ``start()`` and ``stop()``."""

    def start(self) -> int: ...

    def stop(self) -> None: ...


def run_until_signal(service: RunnableService, name: str) -> None:
    """Start ``service``, block until SIGTERM or SIGINT, stop it cleanly and return."""
    service.start()
    stopped = threading.Event()

    def stop() -> None:
        service.stop()
        stopped.set()

    stop_on_signals(stop)
    stopped.wait()
    logger.info("%s service stopped", name)
