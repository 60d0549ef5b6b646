"""The plain records of the SSB store: what arrives from the reward stage and what is served.

The ssb service turns each ``ScoredEvent`` into a ``ScoredSample`` (a ``ScoredResponse`` of
``hybridrl.algo`` plus its place in its group) and turns the batches here back into
``SampleResponse`` messages; the store in between never sees a message. Token ids, behaviour
log-probs and image references travel in ``SamplePayload`` unopened; images stay the bytes of
serialized ``hybridrl.v1.ImageRef`` messages, which the store passes through.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import MISSING, dataclass, field, fields

import numpy as np
from numpy.typing import NDArray

from hybridrl.algo.pairs import PreferencePair
from hybridrl.algo.samples import ScoredResponse

PartitionOffsets = dict[tuple[str, int], int]
"""Next offset to read per (topic, partition): the position of the stream a state reflects."""


@dataclass(frozen=True, slots=True)
class RewardBreakdown:
    """The parts of the hybrid reward of eq. (7); ``total`` enters eq. (6)."""

    total: float
    rule: float = 0.0
    model: float = 0.0
    format: float = 0.0

    @classmethod
    def mean_of(cls, parts: Sequence[RewardBreakdown]) -> RewardBreakdown:
        """The mean of each part over ``parts``; all zero when there are none."""
        if not parts:
            return cls(total=0.0)
        count = len(parts)
        return cls(
            total=math.fsum(p.total for p in parts) / count,
            rule=math.fsum(p.rule for p in parts) / count,
            model=math.fsum(p.model for p in parts) / count,
            format=math.fsum(p.format for p in parts) / count,
        )


@dataclass(frozen=True, slots=True, eq=False)
class SamplePayload:
    """What the learner needs besides the advantage: tokens, pi_old log-probs, images.

    Token ids are ``[prompt_len]`` and ``[response_len]`` uint32 arrays (numpy, not tuples of
    ints: a buffer holds millions of tokens) and ``behaviour_logprobs`` is ``[response_len]``
    float32. When ``payload_uri`` is set the tokens were left in the object store (claim
    check) and the three token fields are empty; the learner fetches them. Compared by value
    (``__eq__`` below). Treat the arrays as read-only.
    """

    prompt_token_ids: NDArray[np.uint32]
    response_token_ids: NDArray[np.uint32]
    behaviour_logprobs: NDArray[np.float32]
    reward_parts: RewardBreakdown
    images: tuple[bytes, ...] = ()
    payload_uri: str = ""
    payload_sha256: str = ""

    def __post_init__(self) -> None:
        for name in ("prompt_token_ids", "response_token_ids"):
            ids = getattr(self, name)
            if ids.dtype != np.uint32 or ids.ndim != 1:
                raise ValueError(f"{name} must be a 1-D uint32 array, got {ids.dtype} {ids.shape}")
        if self.behaviour_logprobs.dtype != np.float32:
            raise ValueError(
                f"behaviour_logprobs must be float32, got {self.behaviour_logprobs.dtype}"
            )
        if self.behaviour_logprobs.shape != (len(self.response_token_ids),):
            raise ValueError(
                f"{self.behaviour_logprobs.shape} behaviour log-probs for "
                f"{len(self.response_token_ids)} response tokens"
            )
        if bool(self.payload_uri) != bool(self.payload_sha256):
            raise ValueError("payload_uri and payload_sha256 go together")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SamplePayload):
            return NotImplemented
        return (
            np.array_equal(self.prompt_token_ids, other.prompt_token_ids)
            and np.array_equal(self.response_token_ids, other.response_token_ids)
            and np.array_equal(self.behaviour_logprobs, other.behaviour_logprobs)
            and self.reward_parts == other.reward_parts
            and self.images == other.images
            and self.payload_uri == other.payload_uri
            and self.payload_sha256 == other.payload_sha256
        )

    __hash__ = None  # type: ignore[assignment]  # mutable numpy inside: not hashable


def mean_response_length(payloads: Sequence[SamplePayload]) -> float:
    """Mean number of response tokens over the payloads that hold their tokens inline.

    A payload behind a claim check (``payload_uri``) has no tokens here and an unknown
    length, so it is left out rather than counted as empty; 0.0 when none is left.
    """
    lengths = [len(p.response_token_ids) for p in payloads if not p.payload_uri]
    return sum(lengths) / len(lengths) if lengths else 0.0


@dataclass(frozen=True, slots=True)
class ScoredSample:
    """One scored response on its way into a group: the response and where it belongs.

    ``sample_index`` is its position in the group (0-based) and ``group_size`` the N the group
    waits for; every response of a group must agree on N, the prompt and the policy version.
    """

    response: ScoredResponse[SamplePayload]
    sample_index: int
    group_size: int

    def __post_init__(self) -> None:
        if self.group_size < 1:
            raise ValueError(
                f"group_size must be >= 1, got {self.group_size} ({self.response.sample_id})"
            )
        if not 0 <= self.sample_index < self.group_size:
            raise ValueError(
                f"sample_index {self.sample_index} is outside [0, {self.group_size}) "
                f"({self.response.sample_id})"
            )
        if not math.isfinite(self.response.payload.reward_parts.total):
            raise ValueError(f"reward total is not finite ({self.response.sample_id})")


@dataclass(frozen=True, slots=True)
class ServedSample:
    """A sample in a GRPO batch with its advantage (eq. 6) and whether it is a replay."""

    response: ScoredResponse[SamplePayload]
    advantage: float
    from_buffer: bool


@dataclass(frozen=True, slots=True)
class GrpoBatch:
    """The GRPO samples served to one learner rank for one step: fresh first, then buffered.

    Holds fewer than ``batch_size`` samples only when too few were ready before the wait ran
    out; ``fresh_offered`` counts the fresh samples taken from the queue for it, of which
    ``fresh_zero_advantage`` had no learning signal and were dropped. Over those
    ``fresh_offered`` samples: ``fresh_reward_mean``, the mean of each part of eq. (7), and
    ``fresh_response_length_mean`` (``mean_response_length``: claim-checked samples left out).
    """

    step: int
    rank: int
    batch_size: int
    samples: tuple[ServedSample, ...]
    fresh_offered: int = 0
    fresh_zero_advantage: int = 0
    # New fields go last, with defaults: ``__setstate__`` fills them in for older snapshots.
    fresh_reward_mean: RewardBreakdown = RewardBreakdown(total=0.0)
    fresh_response_length_mean: float = 0.0

    @property
    def complete(self) -> bool:
        return len(self.samples) == self.batch_size

    def __setstate__(self, state: Sequence[object]) -> None:
        # A pickled frozen slots dataclass is the list of its field values in order; batches
        # pickled in a snapshot before a field existed hold fewer, and the rest take defaults
        # (the dataclass's own __setstate__ would leave them unset).
        specs = fields(self)
        absent = specs[len(state) :]
        if len(state) > len(specs) or any(spec.default is MISSING for spec in absent):
            raise ValueError(f"GrpoBatch state has {len(state)} values for {len(specs)} fields")
        values = [*state, *(spec.default for spec in absent)]
        for spec, value in zip(specs, values, strict=True):
            object.__setattr__(self, spec.name, value)


@dataclass(frozen=True, slots=True)
class MpoBatch:
    """The MPO pairs served to one learner rank for one step, at most ``batch_size``."""

    step: int
    rank: int
    batch_size: int
    pairs: tuple[PreferencePair[SamplePayload], ...] = field(default=())

    @property
    def complete(self) -> bool:
        return len(self.pairs) == self.batch_size


def pair_id_for(pair: PreferencePair[SamplePayload]) -> str:
    """Deterministic id of an MPO pair: ``"{chosen sample id}>{rejected sample id}"``."""
    return f"{pair.chosen.sample_id}>{pair.rejected.sample_id}"
