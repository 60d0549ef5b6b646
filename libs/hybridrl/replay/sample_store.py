"""The state of one SSB shard behind the assembler: advantages, queues, buffer, batches.

Where it sits: ``GroupAssembler`` hands each complete group to ``SampleStore.add_group``, and
the learner's ``Sample`` calls end in ``next_grpo_batch`` / ``next_mpo_batch``.

On each group: advantages by eq. (6) (``group_advantages``; a group of one response has none
and counts as zero-variance); the group counts as effective or zero-variance (the paper's
"vanishing advantages"); all its samples join the fresh queue with their advantage; MPO pairs
whose margin clears the threshold join the pair queue (``build_mpo_pairs``).

A GRPO batch of ``batch_size`` takes ``batch_size`` fresh samples from the front of the queue
(the rollouts a synchronous GRPO step would have used), drops the stale ones and those without
signal (counted), and lets ``compose_batch`` fill the places left over from the Selective
Sample Buffer, weighted by |A|. The batch records what the fresh samples it consumed looked
like (count, zero-advantage count, mean reward parts and response length), since the dropped
ones never reach the learner. Served fresh samples are never served as fresh again; the
effective ones enter the buffer once a request for a later step arrives, so that a sample is
replayed only after it was trained on, and never twice within one step's batch (as
``compose_batch`` asks). Staleness is ``current_policy_version - policy_version``, bounded by
the request's ``max_staleness`` and by ``SSBConfig.max_staleness``, whichever is smaller.

Batches are remembered per (rank, step) (``RecentBatches``): a retry gets the same batch.
Buffer draws use a generator seeded by (seed, step, rank), so they are reproducible.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from hybridrl.algo.advantages import group_advantages
from hybridrl.algo.batch_composer import compose_batch
from hybridrl.algo.buffer import SelectiveSampleBuffer
from hybridrl.algo.samples import ScoredResponse
from hybridrl.config.buffer import MPOPairConfig, SSBConfig
from hybridrl.config.losses import GRPOConfig
from hybridrl.replay.config import SampleStoreConfig
from hybridrl.replay.pair_queue import PairQueue
from hybridrl.replay.records import (
    GrpoBatch,
    MpoBatch,
    RewardBreakdown,
    SamplePayload,
    ServedSample,
    mean_response_length,
)
from hybridrl.replay.served_batches import RecentBatches
from hybridrl.replay.stats import EffectiveRatioWindow

logger = logging.getLogger(__name__)

Response = ScoredResponse[SamplePayload]

_COUNTERS = (
    "groups_completed",
    "groups_effective",
    "groups_zero_variance",
    "fresh_zero_advantage_dropped",
    "fresh_stale_dropped",
    "fresh_overflow_dropped",
    "samples_served_fresh",
    "samples_served_buffer",
)


def check_batch_request(
    batch_size: int, current_policy_version: int, max_staleness: int, rank: int, world_size: int
) -> None:
    """ValueError unless the request's numbers make sense."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank {rank}, world_size {world_size}")
    if current_policy_version < 0 or max_staleness < 0:
        raise ValueError("current_policy_version and max_staleness must be >= 0")


class SampleStore:
    """Fresh queue, pair queue, Selective Sample Buffer and served batches of one shard."""

    def __init__(
        self,
        config: SampleStoreConfig | None = None,
        buffer_config: SSBConfig | None = None,
        pair_config: MPOPairConfig | None = None,
        advantage_config: GRPOConfig | None = None,
    ) -> None:
        self._config = config or SampleStoreConfig()
        self._buffer_config = buffer_config or SSBConfig()
        self._advantage_config = advantage_config or GRPOConfig()
        self._buffer: SelectiveSampleBuffer[SamplePayload] | None = (
            SelectiveSampleBuffer(self._buffer_config) if self._buffer_config.enabled else None
        )
        self._fresh: deque[tuple[Response, float]] = deque()
        self._pairs = PairQueue(
            pair_config or MPOPairConfig(),
            self._config.pair_capacity,
            self._config.batches_kept_per_rank,
        )
        # Effective fresh samples served for a step, waiting for a later step to enter the buffer.
        self._awaiting_buffer: list[tuple[int, list[Response], list[float]]] = []
        self._grpo_batches: RecentBatches[GrpoBatch] = RecentBatches(
            self._config.batches_kept_per_rank
        )
        self._window = EffectiveRatioWindow(self._config.effective_window_groups)
        self._newest_requested_version = -1
        self._counters = dict.fromkeys(_COUNTERS, 0)

    @property
    def buffer(self) -> SelectiveSampleBuffer[SamplePayload] | None:
        return self._buffer

    @property
    def effective_ratio_window(self) -> float | None:
        return self._window.ratio

    @property
    def newest_requested_version(self) -> int:
        """Newest current_policy_version of a batch request, -1 before the first."""
        return self._newest_requested_version

    def counters(self) -> dict[str, int]:
        return {**self._counters, **self._pairs.counters()}

    def queue_sizes(self) -> tuple[int, int]:
        """(fresh samples, pairs) waiting to be served."""
        return len(self._fresh), len(self._pairs)

    def add_group(self, group: Sequence[Response]) -> bool:
        """Score one complete group (responses in index order); return whether it is effective."""
        advantages = self.advantages_of(group)
        effective = bool(np.any(advantages != 0.0))
        self._counters["groups_completed"] += 1
        self._counters["groups_effective" if effective else "groups_zero_variance"] += 1
        self._window.record(effective)
        for response, advantage in zip(group, advantages.tolist(), strict=True):
            self._fresh.append((response, advantage))
        overflow = len(self._fresh) - self._config.fresh_capacity
        for _ in range(max(overflow, 0)):
            self._fresh.popleft()
        self._counters["fresh_overflow_dropped"] += max(overflow, 0)
        if self._config.build_mpo_pairs:
            self._pairs.add_group(group)
        return effective

    def advantages_of(self, group: Sequence[Response]) -> NDArray[np.float64]:
        """Eq. (6) for one group, ``[group_size]`` float64; zeros for a single response."""
        if len(group) < 2:
            return np.zeros(len(group), dtype=np.float64)
        settings = self._advantage_config
        rewards = torch.tensor([[response.reward for response in group]], dtype=torch.float64)
        result = group_advantages(
            rewards,
            eps=settings.advantage_eps,
            std_tol=settings.advantage_std_tol,
            normalize_std=settings.advantage_estimator == "grpo",
        )
        return result.advantages[0].numpy().astype(np.float64)

    def staleness_bound(self, max_staleness: int) -> int:
        return min(max_staleness, self._buffer_config.max_staleness)

    def fresh_ready(self, current_policy_version: int, max_staleness: int) -> int:
        """Drop stale fresh samples (counted) and return how many are left."""
        oldest = current_policy_version - self.staleness_bound(max_staleness)
        if any(response.policy_version < oldest for response, _ in self._fresh):
            kept = [(r, a) for r, a in self._fresh if r.policy_version >= oldest]
            self._counters["fresh_stale_dropped"] += len(self._fresh) - len(kept)
            self._fresh = deque(kept)
        return len(self._fresh)

    def pairs_ready(self, current_policy_version: int, max_staleness: int) -> int:
        """Drop stale pairs (counted) and return how many are left."""
        return self._pairs.ready(current_policy_version - self.staleness_bound(max_staleness))

    def served_grpo_batch(self, rank: int, step: int, batch_size: int) -> GrpoBatch | None:
        """The GRPO batch already served for (rank, step), if kept; see ``RecentBatches.get``."""
        return self._grpo_batches.get(rank, step, batch_size)

    def served_mpo_batch(self, rank: int, step: int, batch_size: int) -> MpoBatch | None:
        return self._pairs.served(rank, step, batch_size)

    def next_grpo_batch(
        self,
        batch_size: int,
        current_policy_version: int,
        max_staleness: int,
        rank: int,
        world_size: int,
        step: int,
    ) -> GrpoBatch:
        """The GRPO batch for (step, rank): the kept one on a retry, else a new one at once.

        A new batch may be short (even empty) when too few samples are ready; an empty batch
        is not kept, as it handed nothing out.
        """
        check_batch_request(batch_size, current_policy_version, max_staleness, rank, world_size)
        served = self._grpo_batches.get(rank, step, batch_size)
        if served is not None:
            return served
        self._note_request(current_policy_version)
        self._release_to_buffer(before_step=step)
        if self._buffer is not None:
            self._buffer.evict_stale(current_policy_version, self.staleness_bound(max_staleness))
        self.fresh_ready(current_policy_version, max_staleness)
        taken = [self._fresh.popleft() for _ in range(min(batch_size, len(self._fresh)))]
        tolerance = self._buffer_config.advantage_tolerance
        rng = np.random.default_rng([self._config.sampling_seed, step, rank])
        composed = compose_batch(
            [response for response, _ in taken],
            [advantage for _, advantage in taken],
            self._buffer,
            batch_size,
            self._buffer_config.buffered_fraction,
            rng,
            advantage_tolerance=tolerance,
        )
        # compose_batch uses the effective fresh samples in order; the rest go back, in order.
        effective = [item for item in taken if abs(item[1]) > tolerance]
        used, unused = effective[: composed.fresh_count], effective[composed.fresh_count :]
        self._fresh.extendleft(reversed(unused))
        if used:
            self._awaiting_buffer.append((step, [r for r, _ in used], [a for _, a in used]))
        # Offered: what this batch consumed of the queue, with signal (served) or without.
        offered = [r for r, a in taken if abs(a) <= tolerance] + [r for r, _ in used]
        self._counters["fresh_zero_advantage_dropped"] += len(taken) - len(effective)
        self._counters["samples_served_fresh"] += composed.fresh_count
        self._counters["samples_served_buffer"] += composed.buffered_count
        batch = GrpoBatch(
            step=step,
            rank=rank,
            batch_size=batch_size,
            samples=tuple(
                ServedSample(response, float(advantage), bool(from_buffer))
                for response, advantage, from_buffer in zip(
                    composed.samples,
                    composed.advantages.tolist(),
                    composed.from_buffer.tolist(),
                    strict=True,
                )
            ),
            fresh_offered=len(offered),
            fresh_zero_advantage=len(taken) - len(effective),
            fresh_reward_mean=RewardBreakdown.mean_of([r.payload.reward_parts for r in offered]),
            fresh_response_length_mean=mean_response_length([r.payload for r in offered]),
        )
        if batch.samples:
            self._grpo_batches.put(rank, step, batch)
        return batch

    def next_mpo_batch(
        self,
        batch_size: int,
        current_policy_version: int,
        max_staleness: int,
        rank: int,
        world_size: int,
        step: int,
    ) -> MpoBatch:
        """Up to ``batch_size`` MPO pairs for (step, rank), oldest first; idempotent per step."""
        check_batch_request(batch_size, current_policy_version, max_staleness, rank, world_size)
        self._note_request(current_policy_version)
        oldest = current_policy_version - self.staleness_bound(max_staleness)
        return self._pairs.next_batch(batch_size, oldest, rank, step)

    def _note_request(self, current_policy_version: int) -> None:
        self._newest_requested_version = max(self._newest_requested_version, current_policy_version)

    def _release_to_buffer(self, before_step: int) -> None:
        """Move the samples served for steps before ``before_step`` into the buffer."""
        released = [entry for entry in self._awaiting_buffer if entry[0] < before_step]
        if not released:
            return
        self._awaiting_buffer = [
            entry for entry in self._awaiting_buffer if entry[0] >= before_step
        ]
        if self._buffer is None:
            return
        for _, responses, advantages in released:
            self._buffer.add(responses, advantages)

    def snapshot(self) -> dict[str, Any]:
        """The state as plain data; records are immutable, so sharing them is safe."""
        return {
            "fresh": list(self._fresh),
            "pairs": self._pairs.snapshot(),
            "buffer": self._buffer.snapshot() if self._buffer is not None else None,
            "awaiting_buffer": [(s, list(r), list(a)) for s, r, a in self._awaiting_buffer],
            "grpo_batches": self._grpo_batches.snapshot(),
            "window": self._window.history(),
            "newest_requested_version": self._newest_requested_version,
            "counters": dict(self._counters),
        }

    @classmethod
    def restore(
        cls,
        snapshot: dict[str, Any],
        config: SampleStoreConfig | None = None,
        buffer_config: SSBConfig | None = None,
        pair_config: MPOPairConfig | None = None,
        advantage_config: GRPOConfig | None = None,
    ) -> SampleStore:
        """The store that produced ``snapshot``, run with the given settings from now on.

        The buffer comes back exactly when its settings are unchanged; with other settings its
        samples are added again to a buffer built with the new ones (its counters restart).
        """
        store = cls(config, buffer_config, pair_config, advantage_config)
        store._fresh = deque(snapshot["fresh"])
        store._pairs = PairQueue.restore(
            snapshot["pairs"],
            pair_config or MPOPairConfig(),
            store._config.pair_capacity,
            store._config.batches_kept_per_rank,
        )
        store._buffer = _restore_buffer(snapshot["buffer"], store._buffer_config)
        store._awaiting_buffer = [(s, list(r), list(a)) for s, r, a in snapshot["awaiting_buffer"]]
        per_rank = store._config.batches_kept_per_rank
        store._grpo_batches = RecentBatches.restore(snapshot["grpo_batches"], per_rank)
        store._window = EffectiveRatioWindow(
            store._config.effective_window_groups, snapshot["window"]
        )
        store._newest_requested_version = int(snapshot["newest_requested_version"])
        store._counters = {name: int(snapshot["counters"][name]) for name in _COUNTERS}
        return store


def _restore_buffer(
    snapshot: dict[str, Any] | None, config: SSBConfig
) -> SelectiveSampleBuffer[SamplePayload] | None:
    if not config.enabled:
        if snapshot is not None and snapshot["records"]:
            logger.warning(
                "the buffer is disabled now: %d samples dropped", len(snapshot["records"])
            )
        return None
    if snapshot is None:
        return SelectiveSampleBuffer(config)
    if SSBConfig.model_validate(snapshot["config"]) == config:
        return SelectiveSampleBuffer.restore(snapshot)
    logger.warning("buffer settings changed since the snapshot: its samples are added again")
    buffer: SelectiveSampleBuffer[SamplePayload] = SelectiveSampleBuffer(config)
    order = np.argsort(np.asarray(snapshot["insert_order"]), kind="stable").tolist()
    buffer.add([snapshot["records"][i] for i in order], np.asarray(snapshot["advantages"])[order])
    return buffer
