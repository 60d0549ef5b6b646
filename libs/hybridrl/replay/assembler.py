"""Scored responses in, complete groups of N out: the first step of the SSB store.

The reward stage emits the N responses of a group one by one, in any order, possibly twice
(at-least-once delivery). Eq. (6) needs the whole group, so the store collects responses per
group id here and hands the group on once all ``group_size`` have arrived.

- Duplicates: a response whose sample id is already held, or whose group was completed or
  expired, is dropped and counted. Closed group ids are remembered in a bounded LRU of
  ``closed_group_memory`` ids; a response of a group closed longer ago than that opens the
  group again (and that group then expires, as its other responses never come back).
- Expiry: a partial group whose missing responses were lost upstream would wait forever. It is
  given up once an event from a policy more than ``expiry_policy_versions`` newer arrives, or
  once events stamped ``expiry_seconds`` after its first response arrive. Time is the records'
  event time (a watermark: the largest timestamp seen), so replaying the same records after a
  restart expires the same groups.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from hybridrl.algo.samples import ScoredResponse
from hybridrl.replay.config import GroupAssemblyConfig
from hybridrl.replay.records import SamplePayload, ScoredSample

_COUNTERS = (
    "samples_accepted",
    "duplicates_dropped",
    "groups_opened",
    "groups_completed",
    "groups_expired",
    "samples_expired",
)


@dataclass
class _PartialGroup:
    group_size: int
    prompt_id: str
    policy_version: int
    first_seen_s: float
    by_index: dict[int, ScoredResponse[SamplePayload]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AssemblyResult:
    """What one ``add`` did: the completed group (responses by index) or None, and whether the
    sample was a duplicate. Expired groups are counted, not returned."""

    completed: tuple[ScoredResponse[SamplePayload], ...] | None
    duplicate: bool


class GroupAssembler:
    """Collects the responses of each group until all ``group_size`` have arrived."""

    def __init__(self, config: GroupAssemblyConfig | None = None) -> None:
        self._config = config or GroupAssemblyConfig()
        # group id -> partial group, in order of first arrival (the expiry scan's order).
        self._pending: OrderedDict[str, _PartialGroup] = OrderedDict()
        # group id -> True when completed, False when expired; least recently closed first.
        self._closed: OrderedDict[str, bool] = OrderedDict()
        self._watermark_s = float("-inf")
        self._newest_version = -1
        self._counters = dict.fromkeys(_COUNTERS, 0)

    @property
    def config(self) -> GroupAssemblyConfig:
        return self._config

    @property
    def newest_policy_version(self) -> int:
        """Newest policy version seen in a sample, -1 before the first."""
        return self._newest_version

    @property
    def pending_groups(self) -> int:
        return len(self._pending)

    def counters(self) -> dict[str, int]:
        """samples_accepted, duplicates_dropped, groups_opened/completed/expired,
        samples_expired (responses held by groups that expired)."""
        return dict(self._counters)

    def add(self, sample: ScoredSample, event_time_s: float) -> AssemblyResult:
        """Take one response; return its group once complete.

        ``event_time_s`` is the record's timestamp in seconds. Raises ValueError when the
        sample contradicts its group (other N, prompt or policy version, or another sample id
        at the same index); nothing changes then.
        """
        response = sample.response
        group_id = response.group_id
        if group_id in self._closed:
            self._counters["duplicates_dropped"] += 1
            self._advance(response.policy_version, event_time_s)
            return AssemblyResult(None, duplicate=True)
        partial = self._pending.get(group_id)
        if partial is not None:
            _check_belongs(partial, sample)
            held = partial.by_index.get(sample.sample_index)
            if held is not None:
                if held.sample_id != response.sample_id:
                    raise ValueError(
                        f"group {group_id}: index {sample.sample_index} is held by "
                        f"{held.sample_id}, not {response.sample_id}"
                    )
                self._counters["duplicates_dropped"] += 1
                self._advance(response.policy_version, event_time_s)
                return AssemblyResult(None, duplicate=True)
            if any(r.sample_id == response.sample_id for r in partial.by_index.values()):
                raise ValueError(f"group {group_id}: {response.sample_id} at two indices")
        else:
            partial = _PartialGroup(
                sample.group_size, response.prompt_id, response.policy_version, event_time_s
            )
            self._pending[group_id] = partial
            self._counters["groups_opened"] += 1
        partial.by_index[sample.sample_index] = response
        self._counters["samples_accepted"] += 1
        completed = None
        if len(partial.by_index) == partial.group_size:
            del self._pending[group_id]
            self._close(group_id, completed=True)
            self._counters["groups_completed"] += 1
            completed = tuple(partial.by_index[i] for i in range(partial.group_size))
        self._advance(response.policy_version, event_time_s)
        return AssemblyResult(completed, duplicate=False)

    def _advance(self, policy_version: int, event_time_s: float) -> None:
        """Move the watermark and the newest version forward, then expire what fell behind."""
        newer_version = policy_version > self._newest_version
        self._newest_version = max(self._newest_version, policy_version)
        self._watermark_s = max(self._watermark_s, event_time_s)
        deadline = self._watermark_s - self._config.expiry_seconds
        oldest_version = self._newest_version - self._config.expiry_policy_versions
        if newer_version or policy_version < oldest_version:
            doomed = [
                group_id
                for group_id, partial in self._pending.items()
                if partial.policy_version < oldest_version or partial.first_seen_s < deadline
            ]
        else:
            # Groups are in order of first arrival, so the old ones are at the front; a group
            # stamped out of order expires once it reaches the front.
            doomed = []
            for group_id, partial in self._pending.items():
                if partial.first_seen_s >= deadline:
                    break
                doomed.append(group_id)
        for group_id in doomed:
            expired = self._pending.pop(group_id)
            self._close(group_id, completed=False)
            self._counters["groups_expired"] += 1
            self._counters["samples_expired"] += len(expired.by_index)

    def _close(self, group_id: str, *, completed: bool) -> None:
        self._closed[group_id] = completed
        self._closed.move_to_end(group_id)
        while len(self._closed) > self._config.closed_group_memory:
            self._closed.popitem(last=False)

    def snapshot(self) -> dict[str, Any]:
        """The state as plain data (lists, dicts, records); ``restore`` rebuilds it."""
        return {
            "pending": [
                (
                    group_id,
                    partial.group_size,
                    partial.prompt_id,
                    partial.policy_version,
                    partial.first_seen_s,
                    sorted(partial.by_index.items()),
                )
                for group_id, partial in self._pending.items()
            ],
            "closed": list(self._closed.items()),
            "watermark_s": self._watermark_s,
            "newest_version": self._newest_version,
            "counters": dict(self._counters),
        }

    @classmethod
    def restore(
        cls, snapshot: dict[str, Any], config: GroupAssemblyConfig | None = None
    ) -> GroupAssembler:
        """The assembler that produced ``snapshot``, run with ``config`` from now on."""
        assembler = cls(config)
        for group_id, size, prompt_id, version, first_seen, members in snapshot["pending"]:
            assembler._pending[group_id] = _PartialGroup(
                size, prompt_id, version, first_seen, dict(members)
            )
        for group_id, completed in snapshot["closed"]:
            assembler._close(group_id, completed=completed)
        assembler._watermark_s = float(snapshot["watermark_s"])
        assembler._newest_version = int(snapshot["newest_version"])
        assembler._counters = {name: int(snapshot["counters"][name]) for name in _COUNTERS}
        return assembler


def _check_belongs(partial: _PartialGroup, sample: ScoredSample) -> None:
    response = sample.response
    expected = (partial.group_size, partial.prompt_id, partial.policy_version)
    actual = (sample.group_size, response.prompt_id, response.policy_version)
    if expected != actual:
        raise ValueError(
            f"{response.sample_id} says (group_size, prompt_id, policy_version) = {actual}, "
            f"but its group {response.group_id} has {expected}"
        )
