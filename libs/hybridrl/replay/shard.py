"""One SSB shard: the assembler, the sample store and the stream position they reflect.

The ssb service owns one ``ReplayShard``. Its consumer thread ``apply``s each scored record
(or ``skip``s one it dead-lettered), moving the shard's offsets with it; gRPC threads ask for
batches and statistics. One lock guards everything, so any moment under the lock is a
consistent state at a record boundary: ``snapshot`` takes the state together with the offsets
of exactly the records it reflects.

Waiting for samples: a learner that asks before enough fresh samples are ready is held up to
``wait_s`` (the service passes what is left of the call's deadline, capped) and then gets what
is there, possibly a short or empty batch; a retry of a step already served returns at once.
A short wait on the server is friendlier than polling: the batch goes out as soon as the
group that completes it arrives.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from hybridrl.config.buffer import MPOPairConfig, SSBConfig
from hybridrl.config.losses import GRPOConfig
from hybridrl.replay.assembler import AssemblyResult, GroupAssembler
from hybridrl.replay.config import GroupAssemblyConfig, SampleStoreConfig
from hybridrl.replay.records import GrpoBatch, MpoBatch, PartitionOffsets, ScoredSample
from hybridrl.replay.sample_store import SampleStore, check_batch_request
from hybridrl.replay.stats import ReplayStats

SNAPSHOT_FORMAT = "hybridrl.replay.shard/1"
"""Version of the snapshot's plain-data layout; raise it when the layout changes."""


@dataclass(frozen=True)
class ShardSettings:
    """Everything that shapes a shard's behaviour, in one place for building and restoring."""

    assembly: GroupAssemblyConfig = field(default_factory=GroupAssemblyConfig)
    store: SampleStoreConfig = field(default_factory=SampleStoreConfig)
    buffer: SSBConfig = field(default_factory=SSBConfig)
    pairs: MPOPairConfig = field(default_factory=MPOPairConfig)
    advantages: GRPOConfig = field(default_factory=GRPOConfig)


@dataclass(frozen=True)
class ShardSnapshot:
    """A consistent copy of a shard: plain data, the offsets it reflects, and its revision
    (how many changes the shard had seen; equal revisions mean equal states)."""

    data: dict[str, Any]
    offsets: PartitionOffsets
    revision: int

    @property
    def buffer_size(self) -> int:
        buffer = self.data["store"]["buffer"]
        return len(buffer["records"]) if buffer is not None else 0


class ReplayShard:
    """Thread-safe facade over ``GroupAssembler`` and ``SampleStore`` with stream offsets."""

    def __init__(self, settings: ShardSettings | None = None) -> None:
        self._settings = settings or ShardSettings()
        self._assembler = GroupAssembler(self._settings.assembly)
        self._store = SampleStore(
            self._settings.store,
            self._settings.buffer,
            self._settings.pairs,
            self._settings.advantages,
        )
        self._offsets: PartitionOffsets = {}
        self._revision = 0
        self._condition = threading.Condition()

    @property
    def settings(self) -> ShardSettings:
        return self._settings

    @property
    def revision(self) -> int:
        with self._condition:
            return self._revision

    def offsets(self) -> PartitionOffsets:
        """Next offset to read per (topic, partition) of the records applied so far."""
        with self._condition:
            return dict(self._offsets)

    def apply(
        self, sample: ScoredSample, topic: str, partition: int, offset: int, event_time_s: float
    ) -> AssemblyResult:
        """Take the scored sample read at ``topic[partition]@offset``.

        ValueError when the sample contradicts its group; the shard is unchanged then and the
        caller dead-letters the record and calls ``skip``.
        """
        with self._condition:
            result = self._assembler.add(sample, event_time_s)
            if result.completed is not None:
                self._store.add_group(result.completed)
                self._condition.notify_all()
            self._move_offset(topic, partition, offset)
            return result

    def skip(self, topic: str, partition: int, offset: int) -> None:
        """Record that the record at ``offset`` is done without data (it was dead-lettered)."""
        with self._condition:
            self._move_offset(topic, partition, offset)

    def _move_offset(self, topic: str, partition: int, offset: int) -> None:
        key = (topic, partition)
        self._offsets[key] = max(self._offsets.get(key, 0), offset + 1)
        self._revision += 1

    def next_grpo_batch(
        self,
        batch_size: int,
        current_policy_version: int,
        max_staleness: int,
        rank: int,
        world_size: int,
        step: int,
        *,
        wait_s: float = 0.0,
    ) -> GrpoBatch:
        """``SampleStore.next_grpo_batch`` after waiting up to ``wait_s`` for enough fresh
        samples (see the module docstring)."""
        check_batch_request(batch_size, current_policy_version, max_staleness, rank, world_size)
        with self._condition:
            served = self._store.served_grpo_batch(rank, step, batch_size)
            if served is not None:
                return served
            deadline = time.monotonic() + wait_s
            while self._store.fresh_ready(current_policy_version, max_staleness) < batch_size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._condition.wait(remaining)
            self._revision += 1
            return self._store.next_grpo_batch(
                batch_size, current_policy_version, max_staleness, rank, world_size, step
            )

    def next_mpo_batch(
        self,
        batch_size: int,
        current_policy_version: int,
        max_staleness: int,
        rank: int,
        world_size: int,
        step: int,
        *,
        wait_s: float = 0.0,
    ) -> MpoBatch:
        """``SampleStore.next_mpo_batch`` after waiting up to ``wait_s`` for enough pairs."""
        check_batch_request(batch_size, current_policy_version, max_staleness, rank, world_size)
        with self._condition:
            served = self._store.served_mpo_batch(rank, step, batch_size)
            if served is not None:
                return served
            deadline = time.monotonic() + wait_s
            while self._store.pairs_ready(current_policy_version, max_staleness) < batch_size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._condition.wait(remaining)
            self._revision += 1
            return self._store.next_mpo_batch(
                batch_size, current_policy_version, max_staleness, rank, world_size, step
            )

    def stats(self) -> ReplayStats:
        with self._condition:
            assembly = self._assembler.counters()
            store = self._store.counters()
            fresh, pairs = self._store.queue_sizes()
            completed = store["groups_completed"]
            newest = max(
                self._assembler.newest_policy_version, self._store.newest_requested_version
            )
            buffer = self._store.buffer
            return ReplayStats(
                effective_ratio_window=self._store.effective_ratio_window,
                effective_ratio_cumulative=(
                    store["groups_effective"] / completed if completed else None
                ),
                zero_variance_fraction=(
                    store["groups_zero_variance"] / completed if completed else None
                ),
                groups_seen=assembly["groups_opened"],
                groups_completed=completed,
                groups_effective=store["groups_effective"],
                groups_zero_variance=store["groups_zero_variance"],
                groups_expired=assembly["groups_expired"],
                groups_pending=self._assembler.pending_groups,
                samples_accepted=assembly["samples_accepted"],
                samples_expired=assembly["samples_expired"],
                duplicates_dropped=assembly["duplicates_dropped"],
                fresh_queued=fresh,
                fresh_zero_advantage_dropped=store["fresh_zero_advantage_dropped"],
                fresh_stale_dropped=store["fresh_stale_dropped"],
                fresh_overflow_dropped=store["fresh_overflow_dropped"],
                pairs_queued=pairs,
                pairs_built=store["pairs_built"],
                pairs_stale_dropped=store["pairs_stale_dropped"],
                pairs_overflow_dropped=store["pairs_overflow_dropped"],
                samples_served_fresh=store["samples_served_fresh"],
                samples_served_buffer=store["samples_served_buffer"],
                pairs_served=store["pairs_served"],
                newest_policy_version=newest if newest >= 0 else None,
                buffer=buffer.stats() if buffer is not None else None,
            )

    def snapshot(self) -> ShardSnapshot:
        """A consistent copy of the whole state; serialise it outside the lock."""
        with self._condition:
            return ShardSnapshot(
                data={
                    "format": SNAPSHOT_FORMAT,
                    "assembler": self._assembler.snapshot(),
                    "store": self._store.snapshot(),
                    "offsets": sorted((t, p, o) for (t, p), o in self._offsets.items()),
                    "revision": self._revision,
                },
                offsets=dict(self._offsets),
                revision=self._revision,
            )

    @classmethod
    def restore(cls, data: dict[str, Any], settings: ShardSettings | None = None) -> ReplayShard:
        """The shard ``snapshot().data`` was taken from, run with ``settings`` from now on."""
        if data.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(
                f"snapshot format {data.get('format')!r}; this code reads {SNAPSHOT_FORMAT!r}"
            )
        shard = cls(settings)
        chosen = shard._settings
        shard._assembler = GroupAssembler.restore(data["assembler"], chosen.assembly)
        shard._store = SampleStore.restore(
            data["store"], chosen.store, chosen.buffer, chosen.pairs, chosen.advantages
        )
        shard._offsets = {(t, p): o for t, p, o in data["offsets"]}
        shard._revision = int(data["revision"])
        return shard
