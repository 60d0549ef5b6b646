"""Retry with exponential backoff and full jitter, for calls to the object store.

A learner writing a checkpoint or a rollout worker fetching weights must ride out a MinIO pod
restart or a brief network fault instead of crashing; a missing object or a denied request,
on the other hand, will not fix itself and is raised at once. The policy is a small value
object with its sleep and its random source injected, so tests run it without waiting.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from hybridrl.config.object_store import RetrySettings
from hybridrl.store.object_store import ObjectStoreUnavailable

_logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Calls an operation up to ``attempts`` times while its failures are transient.

    The wait before retry ``n`` (0-based) is ``jitter() * min(max_backoff, initial * 2**n)``
    with ``jitter()`` uniform in ``[0, 1)`` ("full jitter", as in AWS's backoff analysis): it
    spreads the retries of many clients after a shared outage.
    """

    attempts: int = 5
    initial_backoff: float = 0.2
    max_backoff: float = 10.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)
    jitter: Callable[[], float] = field(
        default_factory=lambda: random.Random().random, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {self.attempts}")
        if not self.initial_backoff > 0.0:
            raise ValueError(f"initial_backoff must be > 0, got {self.initial_backoff}")
        if not self.max_backoff >= self.initial_backoff:
            raise ValueError(
                f"max_backoff ({self.max_backoff}) must be >= initial_backoff "
                f"({self.initial_backoff})"
            )

    @classmethod
    def from_settings(
        cls,
        settings: RetrySettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] | None = None,
    ) -> RetryPolicy:
        return cls(
            attempts=settings.attempts,
            initial_backoff=settings.initial_backoff_seconds,
            max_backoff=settings.max_backoff_seconds,
            sleep=sleep,
            jitter=jitter if jitter is not None else random.Random().random,
        )

    def backoff_bounds(self) -> Iterator[float]:
        """Upper bounds of the waits between the attempts (``attempts - 1`` of them)."""
        bound = self.initial_backoff
        for _ in range(self.attempts - 1):
            yield bound
            # Doubling a capped value never overflows, however many attempts are allowed.
            bound = min(self.max_backoff, bound * 2.0)

    def call(
        self,
        operation: Callable[[], T],
        *,
        description: str,
        is_transient: Callable[[BaseException], bool],
    ) -> T:
        """``operation()``, retried on failures for which ``is_transient`` holds.

        A failure that is not transient propagates unchanged on the attempt it happens. When
        the last attempt fails transiently, ``ObjectStoreUnavailable`` is raised from it.
        """
        bounds = self.backoff_bounds()
        for attempt in range(1, self.attempts + 1):
            try:
                return operation()
            except Exception as error:
                if not is_transient(error):
                    raise
                if attempt == self.attempts:
                    raise ObjectStoreUnavailable(description, attempt, error) from error
                delay = next(bounds) * self.jitter()
                _logger.warning(
                    "%s failed (attempt %d of %d: %s: %s); retrying in %.3f s",
                    description,
                    attempt,
                    self.attempts,
                    type(error).__name__,
                    error,
                    delay,
                )
                self.sleep(delay)
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover
