"""The Selective Sample Buffer (SSB, paper section 3.3.2).

Where it sits: the ssb service assembles scored groups, computes their advantages (eq. 6) and
hands every response with its advantage to ``SelectiveSampleBuffer.add``. Only effective samples
(|A| > tolerance) are kept. When fresh batches run short of effective samples ("vanishing
advantages"), the batch composer draws from here with probability proportional to the priority
``(|A| + eps) ** alpha``; after each policy update ``evict_stale`` drops samples from policies
too far behind.

Design, for a hot path of O(log n) per sample:
- slots ``0 .. capacity-1`` hold the samples; a dict maps sample id -> slot and a stack holds the
  free slots; numpy arrays per slot hold advantage, policy version and insertion order;
- a ``SumTree`` over the slots holds the priorities and serves the proportional draws;
- capacity eviction: ``oldest`` pops the front of an insertion-ordered dict (O(1));
  ``lowest_priority`` pops a lazy min-heap of (priority, insertion order) whose outdated entries
  are skipped and which is rebuilt when it grows past twice the live size (amortised O(log n)).

De-duplication is against the current contents: a re-delivered id that is still stored is
ignored and counted; an id evicted earlier is accepted again as new.

Snapshots are a plain dict (numpy arrays, the records and ints); see ``snapshot``.
"""

import heapq
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Generic, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

from hybridrl.algo.samples import BufferDraw, BufferStats, PayloadT, ScoredResponse
from hybridrl.algo.sum_tree import SumTree
from hybridrl.config.buffer import EvictionPolicy, SSBConfig

SNAPSHOT_FORMAT = "hybridrl.ssb/1"


_COUNTERS = (
    "inserted",
    "duplicates_dropped",
    "zero_advantage_dropped",
    "evicted_capacity",
    "evicted_stale",
)


class SelectiveSampleBuffer(Generic[PayloadT]):
    """Effective samples with |A|-weighted sampling (paper section 3.3.2)."""

    def __init__(self, config: SSBConfig | None = None) -> None:
        self._config = config if config is not None else SSBConfig()
        capacity = self._config.capacity
        self._tree = SumTree(capacity)
        self._records: list[ScoredResponse[PayloadT] | None] = [None] * capacity
        self._advantages = np.zeros(capacity, dtype=np.float64)
        self._versions = np.zeros(capacity, dtype=np.int64)
        self._insert_order = np.zeros(capacity, dtype=np.int64)
        self._occupied = np.zeros(capacity, dtype=np.bool_)
        self._slot_of: OrderedDict[str, int] = OrderedDict()
        self._free: list[int] = list(range(capacity - 1, -1, -1))
        self._next_order = 0
        self._lowest_first = self._config.eviction is EvictionPolicy.LOWEST_PRIORITY
        # Heap entries are (priority, insertion order, stamp, slot); an entry is current only
        # while _stamps[slot] still equals its stamp.
        self._heap: list[tuple[float, int, int, int]] = []
        self._stamps: list[int] = [-1] * capacity
        self._next_stamp = 0
        self._counters = dict.fromkeys(_COUNTERS, 0)

    @property
    def config(self) -> SSBConfig:
        """The settings this buffer was built with."""
        return self._config

    @property
    def total_priority(self) -> float:
        """Sum of the priorities of the stored samples."""
        return self._tree.total

    def __len__(self) -> int:
        return len(self._slot_of)

    def __contains__(self, sample_id: object) -> bool:
        return sample_id in self._slot_of

    def add(self, samples: Sequence[ScoredResponse[PayloadT]], advantages: ArrayLike) -> int:
        """Store the effective samples of ``samples`` (``[n]``) with their ``advantages`` (``[n]``).

        Samples with |A| <= tolerance are counted and dropped, ids already stored are counted and
        ignored; when the buffer is full the eviction policy makes room. Every position of the
        batch is treated alike, so several groups may arrive in one call.

        Returns:
            How many samples were stored.
        """
        adv = _check_advantages(len(samples), advantages)
        effective = np.flatnonzero(np.abs(adv) > self._config.advantage_tolerance)
        self._counters["zero_advantage_dropped"] += len(adv) - len(effective)
        if len(effective) == 0:
            return 0
        priorities = self._priorities_for(adv[effective]).tolist()
        slot_of, records, free = self._slot_of, self._records, self._free
        # slot -> priority for the tree update; a slot reused within this batch keeps the last.
        written: dict[int, float] = {}
        stored = 0
        for row, position in enumerate(effective.tolist()):
            record = samples[position]
            if record.sample_id in slot_of:
                self._counters["duplicates_dropped"] += 1
                continue
            slot = free.pop() if free else self._make_room(priorities[row])
            if slot < 0:
                continue
            slot_of[record.sample_id] = slot
            records[slot] = record
            self._advantages[slot] = adv[position]
            self._versions[slot] = record.policy_version
            self._insert_order[slot] = self._next_order
            self._occupied[slot] = True
            if self._lowest_first:
                self._push_heap(slot, priorities[row], self._next_order)
            written[slot] = priorities[row]
            self._next_order += 1
            stored += 1
        self._counters["inserted"] += stored
        if written:
            self._tree.update_unchecked(
                np.fromiter(written.keys(), dtype=np.int64, count=len(written)),
                np.fromiter(written.values(), dtype=np.float64, count=len(written)),
            )
        self._compact_heap()
        return stored

    def sample(self, k: int, rng: np.random.Generator) -> BufferDraw[PayloadT]:
        """Draw ``k`` samples with replacement, each with probability priority / total.

        Raises:
            ValueError: ``k <= 0`` or the buffer is empty.
        """
        if k <= 0:
            raise ValueError(f"k must be > 0, got {k}")
        if not self._slot_of:
            raise ValueError("cannot sample from an empty buffer")
        total = self._tree.total
        slots = self._tree.find_prefix(rng.random(k) * total)
        # find_prefix never returns a slot of priority 0, and every occupied slot has a record.
        drawn = cast(list[ScoredResponse[PayloadT]], [self._records[s] for s in slots.tolist()])
        return BufferDraw(
            records=tuple(drawn),
            advantages=self._advantages[slots],
            probabilities=self._tree.get(slots) / total,
        )

    def evict_stale(self, current_policy_version: int, max_staleness: int | None = None) -> int:
        """Remove samples with policy_version < current_policy_version - max_staleness.

        ``max_staleness`` defaults to the configured one. Returns how many were removed.
        """
        staleness = self._config.max_staleness if max_staleness is None else max_staleness
        if current_policy_version < 0 or staleness < 0:
            raise ValueError(
                f"current_policy_version and max_staleness must be >= 0, got "
                f"{current_policy_version} and {staleness}"
            )
        bound = current_policy_version - staleness
        victims = np.flatnonzero(self._occupied & (self._versions < bound))
        self._remove(victims)
        self._counters["evicted_stale"] += len(victims)
        return len(victims)

    def update_advantages(self, sample_ids: Sequence[str], advantages: ArrayLike) -> int:
        """Replace the advantages (and so the priorities) of stored samples.

        Ids not stored are ignored; a sample whose new |A| <= tolerance is removed and counted
        as zero-advantage. Returns how many of ``sample_ids`` were stored.
        """
        adv = _check_advantages(len(sample_ids), advantages)
        if len(set(sample_ids)) != len(sample_ids):
            raise ValueError("sample_ids must be distinct")
        found = [
            (slot, i)
            for i, sid in enumerate(sample_ids)
            if (slot := self._slot_of.get(sid)) is not None
        ]
        if not found:
            return 0
        slots = np.array([slot for slot, _ in found], dtype=np.int64)
        new_adv = adv[[i for _, i in found]]
        keep = np.abs(new_adv) > self._config.advantage_tolerance
        priorities = self._priorities_for(new_adv[keep])  # may raise: before any change
        self._remove(slots[~keep])
        self._counters["zero_advantage_dropped"] += int(np.count_nonzero(~keep))
        kept_slots = slots[keep]
        self._advantages[kept_slots] = new_adv[keep]
        self._tree.update_unchecked(kept_slots, priorities)
        if self._lowest_first:
            for slot, priority in zip(kept_slots.tolist(), priorities.tolist(), strict=True):
                self._push_heap(slot, priority, int(self._insert_order[slot]))
            self._compact_heap()
        return len(found)

    def stats(self) -> BufferStats:
        """Size, capacity, counters and the range of policy versions present."""
        versions = self._versions[self._occupied]
        return BufferStats(
            size=len(self),
            capacity=self._config.capacity,
            min_policy_version=int(versions.min()) if len(versions) else None,
            max_policy_version=int(versions.max()) if len(versions) else None,
            **self._counters,
        )

    def snapshot(self) -> dict[str, Any]:
        """The whole state as plain data: picklable when the payloads are.

        Keys: ``format`` (str), ``config`` (dict), ``slots``, ``priorities``, ``advantages``,
        ``insert_order`` (aligned ``[size]`` numpy arrays), ``records`` (list aligned with
        ``slots``), ``free_slots`` (numpy stack, top last), ``next_order`` (int), ``counters``
        (dict). ``restore`` rebuilds an identical buffer: same contents and priorities, and the
        same future draws, evictions and slot assignments.
        """
        slots = np.flatnonzero(self._occupied)
        return {
            "format": SNAPSHOT_FORMAT,
            "config": self._config.model_dump(mode="json"),
            "slots": slots,
            "priorities": self._tree.get(slots),
            "advantages": self._advantages[slots],
            "insert_order": self._insert_order[slots],
            "records": [self._records[s] for s in slots.tolist()],
            "free_slots": np.array(self._free, dtype=np.int64),
            "next_order": self._next_order,
            "counters": dict(self._counters),
        }

    @classmethod
    def restore(cls, snapshot: dict[str, Any]) -> "SelectiveSampleBuffer[Any]":
        """Rebuild the buffer that produced ``snapshot``; ValueError if it is inconsistent."""
        if snapshot.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"unknown snapshot format {snapshot.get('format')!r}")
        buffer: SelectiveSampleBuffer[Any] = cls(SSBConfig.model_validate(snapshot["config"]))
        capacity = buffer._config.capacity
        slots = np.asarray(snapshot["slots"], dtype=np.int64)
        priorities = np.asarray(snapshot["priorities"], dtype=np.float64)
        advantages = np.asarray(snapshot["advantages"], dtype=np.float64)
        orders = np.asarray(snapshot["insert_order"], dtype=np.int64)
        records: list[ScoredResponse[Any]] = list(snapshot["records"])
        free = np.asarray(snapshot["free_slots"], dtype=np.int64)
        next_order = int(snapshot["next_order"])
        if not (len(slots) == len(priorities) == len(advantages) == len(orders) == len(records)):
            raise ValueError("snapshot arrays and records differ in length")
        if sorted(slots.tolist() + free.tolist()) != list(range(capacity)):
            raise ValueError("snapshot slots and free slots must partition [0, capacity)")
        if len({r.sample_id for r in records}) != len(records):
            raise ValueError("snapshot holds duplicate sample ids")
        if not np.all(np.isfinite(priorities) & (priorities > 0.0)):
            raise ValueError("snapshot priorities must be finite and > 0")
        if np.any(~(np.abs(advantages) > buffer._config.advantage_tolerance)):
            raise ValueError("snapshot holds a sample with |advantage| <= tolerance")
        if len(np.unique(orders)) != len(orders) or np.any(orders >= next_order):
            raise ValueError("snapshot insertion orders must be distinct and < next_order")
        leaves = np.zeros(capacity, dtype=np.float64)
        leaves[slots] = priorities
        buffer._tree = SumTree.from_priorities(leaves, buffer._tree.fanout)
        for position in np.argsort(orders, kind="stable").tolist():
            slot, record = int(slots[position]), records[position]
            buffer._slot_of[record.sample_id] = slot
            buffer._records[slot] = record
            buffer._versions[slot] = record.policy_version
            if buffer._lowest_first:
                buffer._push_heap(slot, float(priorities[position]), int(orders[position]))
        buffer._advantages[slots] = advantages
        buffer._insert_order[slots] = orders
        buffer._occupied[slots] = True
        buffer._free = free.tolist()
        buffer._next_order = next_order
        counters = snapshot["counters"]
        buffer._counters = {name: int(counters[name]) for name in _COUNTERS}
        return buffer

    def _priorities_for(self, advantages: NDArray[np.float64]) -> NDArray[np.float64]:
        """(|A| + eps) ** alpha, ``[n]``; the priority of paper section 3.3.2."""
        alpha = self._config.alpha
        base = np.abs(advantages) + self._config.priority_epsilon
        priorities = base if alpha == 1.0 else base**alpha
        if not (np.isfinite(priorities) & (priorities > 0.0)).all():
            raise ValueError(
                f"priority (|A| + eps) ** alpha under- or overflowed for alpha={alpha}; "
                "raise advantage_tolerance or lower alpha"
            )
        return priorities

    def _make_room(self, incoming_priority: float) -> int:
        """Evict one sample to make room; return the freed slot, or -1 to refuse the newcomer."""
        if not self._lowest_first:
            _, slot = self._slot_of.popitem(last=False)
        else:
            while self._stamps[self._heap[0][3]] != self._heap[0][2]:
                heapq.heappop(self._heap)
            if incoming_priority < self._heap[0][0]:
                self._counters["evicted_capacity"] += 1
                return -1
            slot = heapq.heappop(self._heap)[3]
            self._stamps[slot] = -1
            victim = self._records[slot]
            assert victim is not None  # a current heap entry always points at a stored sample
            del self._slot_of[victim.sample_id]
        self._records[slot] = None
        self._counters["evicted_capacity"] += 1
        return slot

    def _remove(self, slots: NDArray[np.int64]) -> None:
        for slot in slots.tolist():
            record = self._records[slot]
            assert record is not None  # callers pass occupied slots only
            del self._slot_of[record.sample_id]
            self._records[slot] = None
            self._stamps[slot] = -1
            self._free.append(slot)
        self._occupied[slots] = False
        self._tree.update_unchecked(slots, np.zeros(len(slots), dtype=np.float64))

    def _push_heap(self, slot: int, priority: float, order: int) -> None:
        self._stamps[slot] = self._next_stamp
        heapq.heappush(self._heap, (priority, order, self._next_stamp, slot))
        self._next_stamp += 1

    def _compact_heap(self) -> None:
        if len(self._heap) > 2 * len(self._slot_of) + 64:
            self._heap = [entry for entry in self._heap if self._stamps[entry[3]] == entry[2]]
            heapq.heapify(self._heap)


def _check_advantages(count: int, advantages: ArrayLike) -> NDArray[np.float64]:
    adv = np.asarray(advantages, dtype=np.float64)
    if adv.ndim != 1 or len(adv) != count:
        raise ValueError(f"expected {count} advantages in a 1-D array, got shape {adv.shape}")
    if not np.isfinite(adv).all():
        raise ValueError("advantages must be finite (got NaN or inf)")
    return adv
