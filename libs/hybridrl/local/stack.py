"""The whole loop on one machine: broker, S3 server and the services as child processes.

``LocalStack`` is what ``hybridrl demo`` runs and what a developer uses to try the platform
without a cluster: it starts a Kafka-protocol broker and an S3 server on free loopback ports,
creates the topics and the bucket (``start_backends``), writes each service's YAML settings
into the run directory and starts ``hybridrl serve rollout|reward|ssb`` as separate processes,
waiting for each to report SERVING (``start_service``; ``start`` does both for all three).
``start_learner`` launches the learner as a PyTorchJob would, under torchrun with one process
per rank. ``stop()`` stops everything in reverse order; every process's log stays in the run
directory.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import yaml
from pydantic import SecretStr

from hybridrl.bus.topics import Topics, create_topics, default_topic_specs
from hybridrl.config.kafka import KafkaSettings
from hybridrl.config.object_store import ObjectStoreSettings
from hybridrl.local.broker import LocalKafkaBroker
from hybridrl.local.child_process import ChildProcess, free_port
from hybridrl.local.health import grpc_serving
from hybridrl.local.object_server import LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY, LocalS3Server
from hybridrl.store.s3_object_store import S3ObjectStore

SERVICES = ("rollout", "reward", "ssb")
LEARNER = "learner"


@dataclass(frozen=True)
class LocalStackConfig:
    """What the local stack runs; ``services`` holds per-service settings overrides."""

    partitions: int = 2
    bucket: str = "hybridrl"
    topic_prefix: str = "hybridrl."
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    start_timeout_seconds: float = 120.0


class LocalStack:
    """Broker, S3 server and services on loopback; use as a context manager."""

    def __init__(self, run_directory: Path, config: LocalStackConfig | None = None) -> None:
        self.directory = run_directory
        self.config = config or LocalStackConfig()
        self.topics = Topics(self.config.topic_prefix)
        logs = run_directory / "logs"
        self._broker = LocalKafkaBroker(logs)
        self._s3 = LocalS3Server(logs)
        self.ports = {name: free_port() for name in (*SERVICES, LEARNER)}
        self._services: dict[str, ChildProcess] = {}

    @property
    def kafka(self) -> KafkaSettings:
        return KafkaSettings(
            bootstrap_servers=self._broker.bootstrap_servers,
            client_id="hybridrl-local",
            session_timeout_ms=6_000,
            heartbeat_interval_ms=500,
            linger_ms=1,
        )

    @property
    def object_store(self) -> ObjectStoreSettings:
        return ObjectStoreSettings(
            endpoint=self._s3.endpoint,
            secure=False,
            access_key=SecretStr(LOCAL_ACCESS_KEY),
            secret_key=SecretStr(LOCAL_SECRET_KEY),
            bucket=self.config.bucket,
        )

    @property
    def services(self) -> dict[str, ChildProcess]:
        return dict(self._services)

    def start(self) -> None:
        """Start the backends and the three services; on any failure, stop what was started
        and re-raise."""
        self.start_backends()
        for name in SERVICES:
            self.start_service(name)

    def start_backends(self) -> None:
        """Broker, S3 server, topics and bucket; on failure, stop them and re-raise."""
        try:
            self._broker.start()
            self._s3.start()
            create_topics(
                self.kafka,
                default_topic_specs(self.topics, partitions=self.config.partitions),
            )
            S3ObjectStore.from_settings(self.object_store).ensure_bucket()
        except BaseException:
            self.stop()
            raise

    def start_service(
        self, name: str, overrides: dict[str, Any] | None = None, *, instance: str | None = None
    ) -> ChildProcess:
        """Start one of ``SERVICES`` and wait until it reports SERVING; on failure, stop
        everything and re-raise. ``overrides`` go over the config's settings for it.
        ``instance`` names a further replica (``"rollout-2"``): its own port, config and log,
        in the same consumer group, as a second pod of a Deployment."""
        if name not in SERVICES:
            raise ValueError(f"unknown service {name!r}; one of {SERVICES}")
        instance = instance or name
        if instance in self._services:
            raise ValueError(f"{instance!r} is already running")
        self.ports.setdefault(instance, free_port())
        try:
            return self._start(instance, ["serve", name], overrides)
        except BaseException:
            self.stop()
            raise

    def start_learner(
        self, ranks: int = 2, overrides: dict[str, Any] | None = None
    ) -> ChildProcess:
        """The learner under torchrun, ``ranks`` processes on this machine; returns once rank
        0 reports SERVING (it has resumed or started and published its policy)."""
        if ranks < 1:
            raise ValueError(f"ranks must be >= 1, got {ranks}")
        launcher = [
            "-m",
            "torch.distributed.run",
            f"--nproc-per-node={ranks}",
            f"--master-port={free_port()}",
            "--max-restarts=0",
            "-m",
            "hybridrl",
        ]
        try:
            return self._start(LEARNER, ["serve", LEARNER], overrides, launcher=launcher)
        except BaseException:
            self.stop()
            raise

    def _service_values(
        self, name: str, instance: str, overrides: dict[str, Any] | None
    ) -> dict[str, Any]:
        store = self.object_store
        values: dict[str, Any] = {
            "kafka": self.kafka.model_dump(mode="json", exclude_none=True),
            "object_store": {
                **store.model_dump(mode="json", exclude={"access_key", "secret_key"}),
                # The local S3 server accepts any key; a cluster mounts real ones from Secrets.
                "access_key": LOCAL_ACCESS_KEY,
                "secret_key": LOCAL_SECRET_KEY,
            },
            "topic_prefix": self.topics.prefix,
            "grpc": {"host": "127.0.0.1", "port": self.ports[instance], "grace_seconds": 5.0},
        }
        if name == LEARNER:
            values["ssb_address"] = f"127.0.0.1:{self.ports['ssb']}"
        values.update(self.config.services.get(name, {}))
        values.update(overrides or {})
        return values

    def _start(
        self,
        instance: str,
        command: list[str],
        overrides: dict[str, Any] | None,
        *,
        launcher: list[str] | None = None,
    ) -> ChildProcess:
        name = command[-1]  # serve <name>
        path = self.directory / "config" / f"{instance}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        values = self._service_values(name, instance, overrides)
        path.write_text(yaml.safe_dump(values, sort_keys=True))
        port = self.ports[instance]
        # Spinning OpenMP threads of one process would steal the cores of the others.
        env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1"}
        process = ChildProcess(
            instance,
            [
                sys.executable,
                *(launcher or ["-m", "hybridrl"]),
                *command,
                "--config",
                str(path),
            ],
            ready=lambda: grpc_serving(port),
            log_path=self.directory / "logs" / f"{instance}.log",
            env=env,
            start_timeout=self.config.start_timeout_seconds,
        )
        self._services[instance] = process
        process.start()
        return process

    def stop_services(self) -> None:
        """Stop the services and the learner (newest first); the backends keep running."""
        for name in reversed(list(self._services)):
            self._services[name].stop(grace=15.0)
        self._services.clear()

    def stop(self) -> None:
        """Stop the services (newest first), then the S3 server and the broker."""
        self.stop_services()
        self._s3.stop()
        self._broker.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
