"""An S3-compatible HTTP server (moto) as a child process on a free loopback port.

In a cluster the chart deploys MinIO; locally and in the tests the same S3 calls go to this
server. Its data lives in memory and is gone when it stops.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Self

from hybridrl.local.child_process import ChildProcess, free_port

LOCAL_ACCESS_KEY = "hybridrl-local"
LOCAL_SECRET_KEY = "hybridrl-local-secret"


class LocalS3Server:
    """moto's S3 server on ``127.0.0.1:port``; any credentials are accepted."""

    def __init__(self, log_dir: Path, *, port: int | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self._process = ChildProcess(
            "s3 server",
            [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)],
            ready=self._answers,
            log_path=log_dir / "s3.log",
        )

    @property
    def endpoint(self) -> str:
        """``host:port`` as the minio client takes it."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    @property
    def process(self) -> ChildProcess:
        return self._process

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/", timeout=0.5) as reply:
                return bool(reply.status < 500)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

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
