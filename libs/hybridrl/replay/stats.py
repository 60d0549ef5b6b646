"""What the SSB store reports: the effective-sample ratio of section 3.3.2 and its counters.

The paper watched the share of effective samples (non-zero advantage) fall from about 60% to
under 40% as training went on; ``EffectiveRatioWindow`` tracks that share over the last W
groups and since the start, and ``ReplayStats`` gathers it with the queue sizes and counters
that the ssb service exposes through its ``Stats`` RPC.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from hybridrl.algo.samples import BufferStats


class EffectiveRatioWindow:
    """Effective groups / all groups over the last ``size`` completed groups and in total."""

    def __init__(self, size: int, history: Iterable[bool] = ()) -> None:
        if size < 1:
            raise ValueError(f"window size must be >= 1, got {size}")
        self._recent: deque[bool] = deque(maxlen=size)
        self._recent_effective = 0
        for effective in history:
            self.record(effective)

    def record(self, effective: bool) -> None:
        if len(self._recent) == self._recent.maxlen and self._recent[0]:
            self._recent_effective -= 1
        self._recent.append(effective)
        self._recent_effective += int(effective)

    @property
    def ratio(self) -> float | None:
        """Share of effective groups in the window; None before the first group."""
        return self._recent_effective / len(self._recent) if self._recent else None

    def history(self) -> list[bool]:
        """The window's groups, oldest first (what a snapshot keeps)."""
        return list(self._recent)


@dataclass(frozen=True, slots=True)
class ReplayStats:
    """State and counters of one SSB shard; counters run since the shard first started and
    survive snapshot/restore.

    Ratios are None before the first completed group. ``groups_seen`` counts groups that
    received a first response; each of them ends completed, expired or still pending.
    """

    effective_ratio_window: float | None
    effective_ratio_cumulative: float | None
    zero_variance_fraction: float | None
    groups_seen: int
    groups_completed: int
    groups_effective: int
    groups_zero_variance: int
    groups_expired: int
    groups_pending: int
    samples_accepted: int
    samples_expired: int
    duplicates_dropped: int
    fresh_queued: int
    fresh_zero_advantage_dropped: int
    fresh_stale_dropped: int
    fresh_overflow_dropped: int
    pairs_queued: int
    pairs_built: int
    pairs_stale_dropped: int
    pairs_overflow_dropped: int
    samples_served_fresh: int
    samples_served_buffer: int
    pairs_served: int
    newest_policy_version: int | None
    buffer: BufferStats | None

    @property
    def stale_dropped(self) -> int:
        """Fresh samples, pairs and buffered samples dropped for staleness."""
        buffered = self.buffer.evicted_stale if self.buffer is not None else 0
        return self.fresh_stale_dropped + self.pairs_stale_dropped + buffered

    def staleness_range(self) -> tuple[int, int] | None:
        """(min, max) staleness in versions of the buffered samples relative to
        ``newest_policy_version``; None when the buffer is empty or disabled."""
        buffer = self.buffer
        if (
            buffer is None
            or buffer.min_policy_version is None
            or buffer.max_policy_version is None
            or self.newest_policy_version is None
        ):
            return None
        newest = self.newest_policy_version
        return max(newest - buffer.max_policy_version, 0), max(
            newest - buffer.min_policy_version, 0
        )
