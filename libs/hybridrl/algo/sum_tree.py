"""A vectorised sum tree: the priority index behind the Selective Sample Buffer.

The SSB draws stored samples with probability proportional to their priority (|A| + eps)^alpha
(paper section 3.3.2). A sum tree keeps the priorities of ``capacity`` slots so that a batch of
priority changes and a batch of k proportional draws each cost O(k log n), with the work of each
tree level done by one numpy call over the whole batch.

Layout: level 0 holds the leaf priorities (one per slot, zero for an empty slot); every entry of
level l + 1 is the sum of a block of ``fanout`` consecutive entries of level l; the last level is
a single block whose sum is the total. Each level is padded with zeros to a multiple of
``fanout`` so that it reshapes to ``[blocks, fanout]``.

Why a fanout of 16 and not 2: the cost on the hot path is the number of numpy calls, not the
arithmetic. A binary tree over 10^6 slots has 20 levels; with a fanout of 16 it has 5, which
measured about 4x faster for an update of 8 slots and 3x faster for 256 draws.

Parents are always recomputed from their children, never adjusted by differences, so an empty
subtree sums to exactly 0.0 and rounding cannot accumulate over millions of updates.
"""

import numpy as np
from numpy.typing import ArrayLike, NDArray

DEFAULT_FANOUT = 16


def _block_sums(blocks: NDArray[np.float64]) -> NDArray[np.float64]:
    """Sum ``[m, fanout]`` blocks row by row: ``[m]``.

    The single place where parents are computed, so a full rebuild and an incremental update
    give bit-identical trees.
    """
    sums: NDArray[np.float64] = np.add.reduce(blocks, axis=1)
    return sums


class SumTree:
    """Priorities of ``capacity`` slots with O(k log n) batched update and prefix search."""

    def __init__(self, capacity: int, fanout: int = DEFAULT_FANOUT) -> None:
        if capacity <= 0:
            raise ValueError(f"capacity must be > 0, got {capacity}")
        if fanout < 2:
            raise ValueError(f"fanout must be >= 2, got {fanout}")
        self._capacity = capacity
        self._fanout = fanout
        self._levels: list[NDArray[np.float64]] = []
        entries = capacity
        while True:
            padded = -(-entries // fanout) * fanout
            self._levels.append(np.zeros(padded, dtype=np.float64))
            if padded == fanout:
                break
            entries = padded // fanout
        # [blocks, fanout] views of each level, made once: reshaping on every update costs time.
        self._blocks = [level.reshape(-1, fanout) for level in self._levels]

    @classmethod
    def from_priorities(cls, priorities: ArrayLike, fanout: int = DEFAULT_FANOUT) -> "SumTree":
        """Build a tree whose leaves are ``priorities`` (``[capacity]``) in O(n)."""
        values = np.asarray(priorities, dtype=np.float64)
        if values.ndim != 1:
            raise ValueError(f"priorities must be 1-D, got shape {values.shape}")
        _check_priorities(values)
        tree = cls(len(values), fanout)
        tree._levels[0][: len(values)] = values
        for lower_blocks, upper in zip(tree._blocks, tree._levels[1:], strict=False):
            upper[: len(lower_blocks)] = _block_sums(lower_blocks)
        return tree

    @property
    def capacity(self) -> int:
        """Number of slots."""
        return self._capacity

    @property
    def fanout(self) -> int:
        """Children per internal node."""
        return self._fanout

    @property
    def total(self) -> float:
        """Sum of all priorities."""
        return float(self._levels[-1].sum())

    def priorities(self) -> NDArray[np.float64]:
        """Copy of the leaf priorities: ``[capacity]``."""
        return self._levels[0][: self._capacity].copy()

    def get(self, slots: ArrayLike) -> NDArray[np.float64]:
        """Priorities of ``slots``: ``[k]``."""
        index = self._check_slots(slots)
        return self._levels[0][index]

    def update(self, slots: ArrayLike, priorities: ArrayLike) -> None:
        """Set the priority of each slot in ``slots`` (``[k]``, distinct) to ``priorities``.

        Raises:
            ValueError: ragged or mismatched inputs, a slot out of range or repeated, or a
                priority that is negative or not finite.
        """
        index = self._check_slots(slots)
        values = np.asarray(priorities, dtype=np.float64)
        if values.shape != index.shape:
            raise ValueError(
                f"slots and priorities must have the same shape, got {index.shape} and "
                f"{values.shape}"
            )
        _check_priorities(values)
        if len(np.unique(index)) != len(index):
            raise ValueError("slots must be distinct within one update")
        self.update_unchecked(index, values)

    def update_unchecked(self, slots: NDArray[np.int64], priorities: NDArray[np.float64]) -> None:
        """``update`` without validation, for callers that guarantee distinct in-range slots and
        finite non-negative priorities (the buffer's insert path)."""
        self._levels[0][slots] = priorities
        index = slots
        fanout = self._fanout
        for lower_blocks, upper in zip(self._blocks, self._levels[1:], strict=False):
            index = index // fanout
            upper[index] = _block_sums(lower_blocks[index])

    def find_prefix(self, targets: ArrayLike) -> NDArray[np.int64]:
        """For each target t, the first slot i with priorities[0] + ... + priorities[i] > t.

        This is ``searchsorted(cumsum(priorities), t, side="right")`` without the O(n) cumsum.
        With t uniform on [0, total) the slot is drawn with probability priority / total, and a
        slot of priority 0 is never returned. A target at or above the total (possible only by
        rounding) returns the last slot with non-zero priority.

        Args:
            targets: ``[k]`` prefix sums, finite and >= 0.

        Returns:
            ``[k]`` slot indices.
        """
        remaining = np.array(targets, dtype=np.float64, copy=True)
        if remaining.ndim != 1 or len(remaining) == 0:
            raise ValueError(f"targets must be a non-empty 1-D array, got shape {remaining.shape}")
        if not np.all(np.isfinite(remaining)) or np.any(remaining < 0.0):
            raise ValueError("targets must be finite and >= 0")
        if not self.total > 0.0:
            raise ValueError("cannot search a tree whose priorities are all zero")
        fanout = self._fanout
        rows = np.arange(len(remaining))
        node = np.zeros(len(remaining), dtype=np.int64)
        for blocks in reversed(self._blocks):
            block = blocks[node]
            cumulative = np.cumsum(block, axis=1)
            child = np.count_nonzero(cumulative <= remaining[:, None], axis=1)
            overflow = child == fanout
            if overflow.any():
                # Rounding put the target past this block's sum: take its last non-empty child.
                last_non_empty = fanout - 1 - np.argmax(block[:, ::-1] > 0.0, axis=1)
                child = np.where(overflow, last_non_empty, child)
            before = np.where(child > 0, cumulative[rows, child - 1], 0.0)
            remaining -= before
            node = node * fanout + child
        return node

    def _check_slots(self, slots: ArrayLike) -> NDArray[np.int64]:
        index = np.asarray(slots)
        if index.ndim != 1:
            raise ValueError(f"slots must be 1-D, got shape {index.shape}")
        if len(index) == 0:
            return np.zeros(0, dtype=np.int64)
        if not np.issubdtype(index.dtype, np.integer):
            raise ValueError(f"slots must be integers, got dtype {index.dtype}")
        if index.min() < 0 or index.max() >= self._capacity:
            raise ValueError(
                f"slots must lie in [0, {self._capacity}), got values from {index.min()} to "
                f"{index.max()}"
            )
        return index.astype(np.int64, copy=False)


def _check_priorities(values: NDArray[np.float64]) -> None:
    if not np.all(np.isfinite(values)):
        raise ValueError("priorities must be finite")
    if np.any(values < 0.0):
        raise ValueError("priorities must be >= 0")
