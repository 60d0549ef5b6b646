"""Plain records for scored responses, and their deterministic identifiers.

A ``ScoredResponse`` is what leaves the reward stage: one response of a group of N, with its
hybrid reward (eq. 7) and the policy version that generated it. The Selective Sample Buffer and
the MPO pair builder work on these records; what the services attach (token ids, behaviour
log-probs, image references) travels unopened in ``payload``. ``BufferDraw`` and ``BufferStats``
are what the buffer hands back.

Identifiers are deterministic so that at-least-once delivery can be made idempotent: the same
response re-delivered by the bus carries the same ``sample_id`` and is recognised as a
duplicate.

    group id:  "{prompt_id}/v{policy_version}"
    sample id: "{prompt_id}/v{policy_version}/{sample_index}"

They are readable in logs and injective: the last two ``/``-separated fields are always the
version and the index, so a prompt id may itself contain ``/``.
"""

import math
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
from numpy.typing import NDArray

PayloadT = TypeVar("PayloadT")


def group_id_for(prompt_id: str, policy_version: int) -> str:
    """Return the id of the group of responses to ``prompt_id`` sampled from ``policy_version``.

    This is also the bus key, so that all N responses of a group reach the same partition.
    """
    _check_prompt_and_version(prompt_id, policy_version)
    return f"{prompt_id}/v{policy_version}"


def sample_id_for(prompt_id: str, policy_version: int, sample_index: int) -> str:
    """Return the id of response ``sample_index`` (0-based) of a group.

    Example: ``sample_id_for("geo-17", 3, 5) == "geo-17/v3/5"``.
    """
    _check_prompt_and_version(prompt_id, policy_version)
    if sample_index < 0:
        raise ValueError(f"sample_index must be >= 0, got {sample_index}")
    return f"{prompt_id}/v{policy_version}/{sample_index}"


def _check_prompt_and_version(prompt_id: str, policy_version: int) -> None:
    if not prompt_id:
        raise ValueError("prompt_id must be a non-empty string")
    if policy_version < 0:
        raise ValueError(f"policy_version must be >= 0, got {policy_version}")


@dataclass(frozen=True, slots=True)
class ScoredResponse(Generic[PayloadT]):
    """One scored response of a group.

    Attributes:
        sample_id: Deterministic id, normally ``sample_id_for(prompt_id, policy_version, i)``.
        group_id: Id of the group of N responses to the same prompt from the same policy.
        prompt_id: Id of the prompt.
        policy_version: Version of the policy that generated the response (for staleness).
        reward: Hybrid reward r(x, y_i) of eq. (7).
        payload: Whatever the services attach (token ids, behaviour log-probs, ...); never
            inspected here. Must be picklable if buffer snapshots are pickled.
    """

    sample_id: str
    group_id: str
    prompt_id: str
    policy_version: int
    reward: float
    payload: PayloadT

    def __post_init__(self) -> None:
        if not self.sample_id:
            raise ValueError("sample_id must be a non-empty string")
        if not self.group_id:
            raise ValueError(f"group_id must be a non-empty string (sample {self.sample_id!r})")
        if not self.prompt_id:
            raise ValueError(f"prompt_id must be a non-empty string (sample {self.sample_id!r})")
        if self.policy_version < 0:
            raise ValueError(
                f"policy_version must be >= 0, got {self.policy_version} "
                f"(sample {self.sample_id!r})"
            )
        if not math.isfinite(self.reward):
            raise ValueError(
                f"reward must be finite, got {self.reward} (sample {self.sample_id!r})"
            )


@dataclass(frozen=True, slots=True)
class BufferDraw(Generic[PayloadT]):
    """k samples drawn with replacement: ``records[i]`` has ``advantages[i]`` (``[k]``) and was
    drawn with probability ``probabilities[i]`` (``[k]``, for importance weights if wanted)."""

    records: tuple[ScoredResponse[PayloadT], ...]
    advantages: NDArray[np.float64]
    probabilities: NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class BufferStats:
    """State of a Selective Sample Buffer; the counters run since it was created and survive
    snapshot/restore.

    Attributes:
        size: Samples stored now.
        capacity: Most samples it can hold.
        inserted: Samples stored (including those evicted later).
        duplicates_dropped: Samples ignored because their id was already stored.
        zero_advantage_dropped: Samples refused, or removed by ``update_advantages``, because
            |A| <= tolerance.
        evicted_capacity: Samples evicted to make room, plus newcomers refused by the
            lowest-priority policy.
        evicted_stale: Samples removed by ``evict_stale``.
        min_policy_version: Oldest policy version stored, None when empty.
        max_policy_version: Newest policy version stored, None when empty.
    """

    size: int
    capacity: int
    inserted: int
    duplicates_dropped: int
    zero_advantage_dropped: int
    evicted_capacity: int
    evicted_stale: int
    min_policy_version: int | None
    max_policy_version: int | None
