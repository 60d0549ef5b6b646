"""Worker processes that score rule rewards with a hard wall-clock deadline per item.

The reward service (a threaded gRPC server and a Kafka consumer) cannot call ``rule_reward``
with a real timeout in its own threads: math-verify's timeout needs ``signal.alarm`` and the
main thread. ``RuleScorerPool`` runs the scorer in long-lived worker processes instead, each
with math-verify imported and warmed up once, in its own main thread so math-verify's timeouts
work as well. A worker still busy when an item's deadline passes is killed and replaced; that
item scores 0.0 with status ``timeout`` and every other item keeps its result.

Each worker has its own pipe and holds one item at a time, so a killed worker takes exactly one
item with it and no late answer can be mistaken for another item's.
"""

from __future__ import annotations

import contextlib
import enum
import multiprocessing
import pickle
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.context import ForkServerContext, SpawnContext
from multiprocessing.process import BaseProcess
from types import TracebackType

from hybridrl.config.rewards import RuleRewardConfig, ScorerPoolConfig
from hybridrl.rewards.rule import RuleResult, RuleStatus, score_rule, warm_up_math_verify

RuleScorer = Callable[[str, str, RuleRewardConfig], RuleResult]
"""A picklable module-level function ``(response, gold, config) -> RuleResult``."""

_READY = "ready"
_RESULT = "result"
_STOP_GRACE_SECONDS = 5.0


class _WorkerState(enum.Enum):
    STARTING = "starting"
    IDLE = "idle"
    BUSY = "busy"


@dataclass
class _Worker:
    process: BaseProcess
    connection: Connection
    state: _WorkerState = _WorkerState.STARTING
    started_at: float = 0.0
    item: int = -1
    deadline: float = 0.0


def _worker_main(connection: Connection, scorer: RuleScorer, config: RuleRewardConfig) -> None:
    """Worker process: warm math-verify up, then score items until told to stop."""
    warm_up_math_verify(config)
    connection.send((_READY, None, None))
    while True:
        try:
            message = connection.recv()
        except EOFError:  # the pool is gone
            return
        if message is None:
            return
        index, response, gold = message
        try:
            result = scorer(response, gold, config)
        except Exception as error:  # a bad item must not take the worker down
            result = RuleResult(0.0, None, RuleStatus.ERROR, f"{type(error).__name__}: {error}")
        connection.send((_RESULT, index, result))


def _process_context(start_method: str) -> ForkServerContext | SpawnContext:
    if start_method == "forkserver":
        return multiprocessing.get_context("forkserver")
    return multiprocessing.get_context("spawn")


class RuleScorerPool:
    """Scores (response, gold) pairs in worker processes with a per-item deadline.

    Use as a context manager. ``score`` may be called from any thread; concurrent calls are
    served one batch at a time. ``workers_replaced`` counts workers killed on a deadline or
    found dead. A worker that fails to start closes the pool and raises RuntimeError.
    """

    def __init__(
        self,
        config: ScorerPoolConfig | None = None,
        *,
        rule_config: RuleRewardConfig | None = None,
        scorer: RuleScorer = score_rule,
    ) -> None:
        self._config = config if config is not None else ScorerPoolConfig()
        self._rule_config = rule_config if rule_config is not None else RuleRewardConfig()
        try:
            pickle.dumps(scorer)
        except (pickle.PicklingError, AttributeError, TypeError) as error:
            raise ValueError(
                f"scorer must be a picklable module-level function, got {scorer!r}"
            ) from error
        self._scorer = scorer
        self._context = _process_context(self._config.start_method)
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self._started = False
        self._closed = False
        self.workers_replaced = 0

    def __enter__(self) -> RuleScorerPool:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Start the workers and wait until each has math-verify loaded."""
        with self._lock:
            if self._closed:
                raise RuntimeError("RuleScorerPool is closed")
            if self._started:
                return
            if self._config.start_method == "forkserver":
                # Workers forked from a server that already imported math-verify start fast.
                self._context.set_forkserver_preload(["hybridrl.rewards.rule"])
            self._workers = [self._spawn_worker() for _ in range(self._config.workers)]
            self._started = True
            while any(worker.state is _WorkerState.STARTING for worker in self._workers):
                self._wait_and_collect([])

    def close(self) -> None:
        """Stop the workers (politely, then by force). The pool cannot be restarted."""
        with self._lock:
            self._shut_down()

    def _shut_down(self) -> None:
        self._closed = True
        for worker in self._workers:
            with contextlib.suppress(OSError):  # already dead: killed below anyway
                worker.connection.send(None)
        for worker in self._workers:
            worker.process.join(_STOP_GRACE_SECONDS)
            self._kill(worker)
        self._workers = []

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[RuleResult]:
        """One ``RuleResult`` per (response, gold) pair, in input order."""
        items = list(pairs)
        for position, pair in enumerate(items):
            if not (
                isinstance(pair, tuple)
                and len(pair) == 2
                and isinstance(pair[0], str)
                and isinstance(pair[1], str)
            ):
                raise ValueError(f"pair {position} is not a (response: str, gold: str) tuple")
        if not self._started:
            self.start()
        with self._lock:
            if self._closed:
                raise RuntimeError("RuleScorerPool is closed")
            results: list[RuleResult | None] = [None] * len(items)
            queue = deque(range(len(items)))
            while queue or any(worker.state is _WorkerState.BUSY for worker in self._workers):
                self._dispatch(queue, items)
                self._wait_and_collect(results)
        scored = [result for result in results if result is not None]
        if len(scored) != len(items):
            raise RuntimeError("RuleScorerPool lost track of an item")  # a bug, never input
        return scored

    def _dispatch(self, queue: deque[int], items: list[tuple[str, str]]) -> None:
        for worker in self._workers:
            if worker.state is not _WorkerState.IDLE or not queue:
                continue
            index = queue.popleft()
            response, gold = items[index]
            try:
                worker.connection.send((index, response, gold))
            except OSError:
                queue.appendleft(index)  # the worker died while idle; its replacement takes it
                self._replace(worker)
                continue
            worker.state = _WorkerState.BUSY
            worker.item = index
            worker.deadline = time.monotonic() + self._config.item_deadline_seconds

    def _wait_and_collect(self, results: list[RuleResult | None]) -> None:
        """Wait for one event (answer, ready worker, death, deadline) and handle it."""
        active = [worker for worker in self._workers if worker.state is not _WorkerState.IDLE]
        if not active:
            return
        now = time.monotonic()
        deadlines = [self._deadline_of(worker) for worker in active]
        waitables: list[Connection | int] = [worker.connection for worker in active]
        waitables += [worker.process.sentinel for worker in active]
        ready = set(wait(waitables, timeout=max(0.0, min(deadlines) - now)))
        now = time.monotonic()
        for worker, deadline in zip(active, deadlines, strict=True):
            if worker.connection in ready:
                self._receive(worker, results)
            elif worker.process.sentinel in ready:
                self._fail(worker, results, RuleStatus.ERROR, "scorer worker died")
            elif now >= deadline:
                self._fail(worker, results, RuleStatus.TIMEOUT, "deadline exceeded")

    def _receive(self, worker: _Worker, results: list[RuleResult | None]) -> None:
        try:
            kind, index, result = worker.connection.recv()
        except (EOFError, OSError):
            self._fail(worker, results, RuleStatus.ERROR, "scorer worker died")
            return
        if kind == _READY:
            worker.state = _WorkerState.IDLE
            return
        if not isinstance(result, RuleResult):
            result = RuleResult(0.0, None, RuleStatus.ERROR, "scorer returned no RuleResult")
        results[index] = result
        worker.state = _WorkerState.IDLE

    def _fail(
        self, worker: _Worker, results: list[RuleResult | None], status: RuleStatus, detail: str
    ) -> None:
        if worker.state is _WorkerState.STARTING:
            # A worker that cannot even start will not do better next time: close the pool
            # and fail loudly rather than respawn in a loop.
            self._shut_down()
            raise RuntimeError(
                f"rule scorer worker failed to start: {detail} "
                f"(exit code {worker.process.exitcode}, start timeout "
                f"{self._config.start_timeout_seconds} s)"
            )
        results[worker.item] = RuleResult(0.0, None, status, detail)
        self._replace(worker)

    def _deadline_of(self, worker: _Worker) -> float:
        if worker.state is _WorkerState.STARTING:
            return worker.started_at + self._config.start_timeout_seconds
        return worker.deadline

    def _spawn_worker(self) -> _Worker:
        parent_end, child_end = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=_worker_main,
            args=(child_end, self._scorer, self._rule_config),
            name="rule-scorer",
            daemon=True,
        )
        process.start()
        child_end.close()
        return _Worker(process, parent_end, started_at=time.monotonic())

    def _replace(self, worker: _Worker) -> None:
        self._kill(worker)
        position = self._workers.index(worker)
        self._workers[position] = self._spawn_worker()
        self.workers_replaced += 1

    @staticmethod
    def _kill(worker: _Worker) -> None:
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join(_STOP_GRACE_SECONDS)
        worker.connection.close()
