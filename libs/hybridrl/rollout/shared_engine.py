"""One generation engine shared by a rollout worker's Kafka loop, its gRPC calls and its updates.

A rollout pod holds one policy in memory. The prompts loop generates batch after batch, gRPC
``Generate`` calls arrive on other threads, and policy updates swap weights in between. The
engines already order their own calls; ``SharedEngine`` adds a wait bounded by the caller's
deadline, so a gRPC call stuck behind a long batch gives up in time instead of hanging.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

import torch

from hybridrl.engines.base import GenerationEngine, GenerationRequest, GenerationResult


class SharedEngine:
    """A ``GenerationEngine`` whose calls take turns; ``generate`` may wait only so long."""

    def __init__(self, engine: GenerationEngine) -> None:
        self._engine = engine
        self._lock = threading.Lock()

    @property
    def policy_version(self) -> int:
        """The version of the weights that the next ``generate`` samples from."""
        return self._engine.policy_version

    def generate(
        self, requests: Sequence[GenerationRequest], timeout: float | None = None
    ) -> list[GenerationResult]:
        """The engine's ``generate``, once the engine is free.

        ``timeout`` bounds the wait for the engine (not the generation itself, which cannot be
        interrupted); ``TimeoutError`` when it runs out. ``None`` waits as long as it takes.
        """
        if not self._lock.acquire(timeout=-1 if timeout is None else max(timeout, 0.0)):
            raise TimeoutError(f"the engine stayed busy for {timeout:.3f} s")
        try:
            return self._engine.generate(requests)
        finally:
            self._lock.release()

    def load_weights(self, state: Mapping[str, torch.Tensor], policy_version: int) -> None:
        """The engine's ``load_weights``, between two ``generate`` calls."""
        with self._lock:
            self._engine.load_weights(state, policy_version)

    def close(self) -> None:
        """Close the engine once no call is running."""
        with self._lock:
            self._engine.close()
