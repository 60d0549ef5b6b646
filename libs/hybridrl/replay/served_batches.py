"""The last batches served to each learner rank, so that a retried ``Sample`` is idempotent.

A learner rank whose ``Sample`` call timed out on the wire retries it for the same optimizer
step. Serving new samples then would hand out the first answer's fresh samples to nobody and,
if that answer did arrive after all, train the rank on two batches for one step. So the store
keeps the last few batches per (kind, rank) by step and answers a retry with the same batch.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Generic, Protocol, TypeVar


class _Batch(Protocol):
    @property
    def batch_size(self) -> int: ...


BatchT = TypeVar("BatchT", bound=_Batch)


class RecentBatches(Generic[BatchT]):
    """Up to ``per_rank`` batches per rank, the most recently served kept."""

    def __init__(self, per_rank: int) -> None:
        if per_rank < 1:
            raise ValueError(f"per_rank must be >= 1, got {per_rank}")
        self._per_rank = per_rank
        self._by_rank: dict[int, OrderedDict[int, BatchT]] = {}

    def get(self, rank: int, step: int, batch_size: int) -> BatchT | None:
        """The batch served to ``rank`` for ``step``, if still kept.

        Raises ValueError when it was served with another ``batch_size``: a retry must repeat
        its request, and serving a different batch for one step would break idempotency.
        """
        batch = self._by_rank.get(rank, OrderedDict()).get(step)
        if batch is not None and batch.batch_size != batch_size:
            raise ValueError(
                f"step {step} of rank {rank} was served with batch_size {batch.batch_size}; "
                f"a retry must ask for the same, not {batch_size}"
            )
        return batch

    def put(self, rank: int, step: int, batch: BatchT) -> None:
        kept = self._by_rank.setdefault(rank, OrderedDict())
        kept[step] = batch
        kept.move_to_end(step)
        while len(kept) > self._per_rank:
            kept.popitem(last=False)

    def snapshot(self) -> list[tuple[int, list[tuple[int, Any]]]]:
        return [(rank, list(kept.items())) for rank, kept in sorted(self._by_rank.items())]

    @classmethod
    def restore(
        cls, snapshot: list[tuple[int, list[tuple[int, BatchT]]]], per_rank: int
    ) -> RecentBatches[BatchT]:
        batches: RecentBatches[BatchT] = cls(per_rank)
        for rank, kept in snapshot:
            for step, batch in kept:
                batches.put(rank, step, batch)
        return batches
