"""A child process with a readiness check, its output in a log file, and a clean stop."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import psutil


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_accepts(host: str, port: int, timeout: float = 0.2) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        children: list[psutil.Process] = psutil.Process(pid).children(recursive=True)
        return children
    except psutil.NoSuchProcess:
        return []


def _kill_all(processes: list[psutil.Process], timeout: float) -> None:
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(processes, timeout=timeout)


class ChildProcess:
    """Starts a command, waits until ``ready()`` holds, and stops it (SIGTERM, then SIGKILL).

    The child runs in its own process group so that a stop reaches its children too, and its
    output goes to ``log_path`` so that a failure to start can be reported with the log tail.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        ready: Callable[[], bool],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self._ready = ready
        self._env = dict(os.environ if env is None else env)
        self._start_timeout = start_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError(f"{self.name} is not running")
        return self._process.pid

    def start(self) -> None:
        """Start the child and block until it is ready; raise RuntimeError with its log if not."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            self.argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self._env,
            start_new_session=True,
        )
        deadline = time.monotonic() + self._start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._fail(f"exited with code {self._process.returncode} while starting")
            if self._ready():
                return
            time.sleep(0.05)
        self._fail(f"not ready after {self._start_timeout:.0f} s")

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def exit_code(self) -> int | None:
        """The exit code once the child has ended; None while it runs or before it starts."""
        return None if self._process is None else self._process.poll()

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the child's process group, wait ``grace`` seconds, then SIGKILL it and
        every descendant still alive (a launcher such as torchrun starts its workers in
        sessions of their own, out of reach of the group signal)."""
        process = self._process
        if process is not None and process.poll() is None:
            descendants = _descendants(process.pid)
            self._signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self._signal_group(process.pid, signal.SIGKILL)
                process.wait(timeout=grace)
            _kill_all(descendants, grace)
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill(self) -> None:
        """SIGKILL the child, its process group and every descendant at once, as a crashed
        pod dies."""
        if self._process is not None and self._process.poll() is None:
            descendants = _descendants(self._process.pid)
            self._signal_group(self._process.pid, signal.SIGKILL)
            self._process.wait(timeout=10)
            _kill_all(descendants, 10.0)

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def _fail(self, why: str) -> None:
        self.stop(grace=2.0)
        raise RuntimeError(f"{self.name} {why}; last log lines:\n{self.log_tail()}")

    @staticmethod
    def _signal_group(pid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)

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
