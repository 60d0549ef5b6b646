"""The whole loop on one machine: broker, S3 server and the services as child processes.

``LocalStack`` is what ``hybridrl demo`` runs and what a developer uses to try the platform
without a cluster: it starts a Kafka-protocol broker and an S3 server on free loopback ports,
creates the topics and the bucket, writes each service's YAML settings into the run directory
and starts ``hybridrl serve rollout|reward|ssb`` as separate processes, waiting for each to
report SERVING. ``stop()`` stops them in reverse order; every process's log stays in the run
directory.
"""

from __future__ import annotations

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
        self.ports = {name: free_port() for name in SERVICES}
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
        """Start everything; on any failure, stop what was started and re-raise."""
        try:
            self._broker.start()
            self._s3.start()
            create_topics(
                self.kafka,
                default_topic_specs(self.topics, partitions=self.config.partitions),
            )
            S3ObjectStore.from_settings(self.object_store).ensure_bucket()
            for name in SERVICES:
                self._start_service(name)
        except BaseException:
            self.stop()
            raise

    def _service_values(self, name: str) -> dict[str, Any]:
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
            "grpc": {"host": "127.0.0.1", "port": self.ports[name], "grace_seconds": 5.0},
        }
        values.update(self.config.services.get(name, {}))
        return values

    def _start_service(self, name: str) -> None:
        path = self.directory / "config" / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self._service_values(name), sort_keys=True))
        port = self.ports[name]
        process = ChildProcess(
            name,
            [sys.executable, "-m", "hybridrl", "serve", name, "--config", str(path)],
            ready=lambda: grpc_serving(port),
            log_path=self.directory / "logs" / f"{name}.log",
            start_timeout=self.config.start_timeout_seconds,
        )
        self._services[name] = process
        process.start()

    def stop(self) -> None:
        """Stop the services (newest first), then the S3 server and the broker."""
        for name in reversed(list(self._services)):
            self._services[name].stop(grace=15.0)
        self._services.clear()
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
