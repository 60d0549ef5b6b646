"""MPO preference pairs waiting for the learner's MPO stage (eqs. 2-5).

``SampleStore`` passes every completed group here; ``build_mpo_pairs`` keeps the pairs whose
reward margin clears the threshold (the paper's "MPO Threshold Analysis"), and they wait,
oldest first, for a ``Sample`` request of kind MPO. Bounded by a capacity (a learner in its GRPO
stage never drains them) and by staleness; each pair is served once, and a retried request for
the same (step, rank) gets the same pairs again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

from hybridrl.algo.pairs import PreferencePair, build_mpo_pairs
from hybridrl.algo.samples import ScoredResponse
from hybridrl.config.buffer import MPOPairConfig
from hybridrl.replay.records import MpoBatch, SamplePayload
from hybridrl.replay.served_batches import RecentBatches

Pair = PreferencePair[SamplePayload]

PAIR_COUNTERS = ("pairs_built", "pairs_stale_dropped", "pairs_overflow_dropped", "pairs_served")


class PairQueue:
    """Pairs by age, at most ``capacity``; served batches kept ``batches_kept_per_rank``."""

    def __init__(self, config: MPOPairConfig, capacity: int, batches_kept_per_rank: int) -> None:
        self._config = config
        self._capacity = capacity
        self._pairs: deque[Pair] = deque()
        self._batches: RecentBatches[MpoBatch] = RecentBatches(batches_kept_per_rank)
        self._counters = dict.fromkeys(PAIR_COUNTERS, 0)

    def __len__(self) -> int:
        return len(self._pairs)

    def counters(self) -> dict[str, int]:
        return dict(self._counters)

    def add_group(self, group: Sequence[ScoredResponse[SamplePayload]]) -> int:
        """Queue the pairs of one complete group; return how many were built."""
        if len(group) < 2:
            return 0
        pairs = build_mpo_pairs(group, self._config.threshold, self._config.max_pairs_per_group)
        self._pairs.extend(pairs)
        self._counters["pairs_built"] += len(pairs)
        overflow = max(len(self._pairs) - self._capacity, 0)
        for _ in range(overflow):
            self._pairs.popleft()
        self._counters["pairs_overflow_dropped"] += overflow
        return len(pairs)

    def ready(self, oldest_version: int) -> int:
        """Drop pairs from policies older than ``oldest_version`` (counted); return the rest."""
        if any(pair.chosen.policy_version < oldest_version for pair in self._pairs):
            kept = [pair for pair in self._pairs if pair.chosen.policy_version >= oldest_version]
            self._counters["pairs_stale_dropped"] += len(self._pairs) - len(kept)
            self._pairs = deque(kept)
        return len(self._pairs)

    def served(self, rank: int, step: int, batch_size: int) -> MpoBatch | None:
        """The batch already served for (rank, step), if kept; see ``RecentBatches.get``."""
        return self._batches.get(rank, step, batch_size)

    def next_batch(self, batch_size: int, oldest_version: int, rank: int, step: int) -> MpoBatch:
        """The kept batch on a retry, else up to ``batch_size`` fresh pairs, oldest first."""
        served = self._batches.get(rank, step, batch_size)
        if served is not None:
            return served
        self.ready(oldest_version)
        pairs = tuple(self._pairs.popleft() for _ in range(min(batch_size, len(self._pairs))))
        self._counters["pairs_served"] += len(pairs)
        batch = MpoBatch(step=step, rank=rank, batch_size=batch_size, pairs=pairs)
        if pairs:
            self._batches.put(rank, step, batch)
        return batch

    def snapshot(self) -> dict[str, Any]:
        return {
            "pairs": list(self._pairs),
            "batches": self._batches.snapshot(),
            "counters": dict(self._counters),
        }

    @classmethod
    def restore(
        cls,
        snapshot: dict[str, Any],
        config: MPOPairConfig,
        capacity: int,
        batches_kept_per_rank: int,
    ) -> PairQueue:
        queue = cls(config, capacity, batches_kept_per_rank)
        queue._pairs = deque(snapshot["pairs"])
        queue._batches = RecentBatches.restore(snapshot["batches"], batches_kept_per_rank)
        queue._counters = {name: int(snapshot["counters"][name]) for name in PAIR_COUNTERS}
        return queue
