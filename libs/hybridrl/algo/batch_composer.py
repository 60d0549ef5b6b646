"""Learner batches from fresh effective samples topped up from the Selective Sample Buffer.

Where it sits: the ssb service answers the learner's ``Sample`` call with ``compose_batch``. As
the policy improves, more groups come back all-correct or all-wrong and their advantages vanish
(the paper saw effective samples fall from about 60% to under 40%, section 3.3.2); the buffer
fills the gap with cached samples of non-zero advantage so that every GRPO step (eq. 8) keeps a
full batch of gradient signal.

How a batch of ``batch_size`` is made:
1. ``reserved = floor(buffered_fraction * batch_size)`` places are meant for buffered samples;
2. fresh effective samples (|A| > tolerance), in the order given, take up to
   ``batch_size - reserved`` places;
3. the buffer fills every remaining place (the reserve plus any shortfall of fresh samples), but
   never more than ``len(buffer)`` draws, so a nearly empty buffer is not replayed dozens of
   times into one batch; draws are |A|-weighted with replacement;
4. if the buffer could not fill its share, surplus fresh effective samples take those places.

So with no fresh effective samples the whole batch comes from the buffer, and with plenty of
fresh ones the buffered share is exactly ``floor(buffered_fraction * batch_size)``. The batch
may be shorter than ``batch_size`` only when fresh and buffered samples together run out.

Fresh samples come first, buffered ones after. Compose before adding the fresh samples to the
buffer, or a fresh sample may be drawn a second time as a buffered one.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic

import numpy as np
from numpy.typing import ArrayLike, NDArray

from hybridrl.algo.buffer import SelectiveSampleBuffer
from hybridrl.algo.samples import PayloadT, ScoredResponse


@dataclass(frozen=True, slots=True)
class ComposedBatch(Generic[PayloadT]):
    """A learner batch and where its samples came from.

    Attributes:
        samples: ``[n]`` records, fresh first.
        advantages: ``[n]`` advantages aligned with ``samples``.
        from_buffer: ``[n]`` True where the sample was drawn from the buffer.
        fresh_total: Fresh samples offered, effective or not.
        fresh_effective: Fresh samples with |A| > tolerance.
    """

    samples: tuple[ScoredResponse[PayloadT], ...]
    advantages: NDArray[np.float64]
    from_buffer: NDArray[np.bool_]
    fresh_total: int
    fresh_effective: int

    @property
    def buffered_count(self) -> int:
        """Samples drawn from the buffer."""
        return int(np.count_nonzero(self.from_buffer))

    @property
    def fresh_count(self) -> int:
        """Fresh samples used."""
        return len(self.samples) - self.buffered_count

    @property
    def effective_ratio(self) -> float | None:
        """Share of fresh samples with non-zero advantage (the paper's 60% -> 40% metric);
        None when no fresh samples were offered."""
        return self.fresh_effective / self.fresh_total if self.fresh_total else None


def compose_batch(
    fresh: Sequence[ScoredResponse[PayloadT]],
    fresh_advantages: ArrayLike,
    buffer: SelectiveSampleBuffer[PayloadT] | None,
    batch_size: int,
    buffered_fraction: float,
    rng: np.random.Generator,
    advantage_tolerance: float | None = None,
) -> ComposedBatch[PayloadT]:
    """Mix fresh effective samples with buffered ones (see the module docstring for the rule).

    Args:
        fresh: ``[n]`` fresh samples of this step.
        fresh_advantages: ``[n]`` their advantages (eq. 6).
        buffer: The SSB, or None when it is disabled. Not modified.
        batch_size: Places in the batch, > 0.
        buffered_fraction: Share of places reserved for buffered samples, in [0, 1].
        rng: Source of the buffer draws; the result depends on nothing else.
        advantage_tolerance: |A| above which a fresh sample is effective; defaults to the
            buffer's setting (0.0 without a buffer).
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be > 0, got {batch_size}")
    if not 0.0 <= buffered_fraction <= 1.0:
        raise ValueError(f"buffered_fraction must be in [0, 1], got {buffered_fraction}")
    tolerance = advantage_tolerance
    if tolerance is None:
        tolerance = buffer.config.advantage_tolerance if buffer is not None else 0.0
    if not tolerance >= 0.0:
        raise ValueError(f"advantage_tolerance must be >= 0, got {tolerance}")
    advantages = np.asarray(fresh_advantages, dtype=np.float64)
    if advantages.ndim != 1 or len(advantages) != len(fresh):
        raise ValueError(
            f"expected {len(fresh)} fresh advantages in a 1-D array, got shape {advantages.shape}"
        )
    if not np.isfinite(advantages).all():
        raise ValueError("fresh advantages must be finite (got NaN or inf)")

    effective = np.flatnonzero(np.abs(advantages) > tolerance)
    # The 1e-9 keeps e.g. 0.29 * 100 = 28.999999999999996 from rounding down to 28.
    reserved = math.floor(buffered_fraction * batch_size + 1e-9)
    fresh_wanted = min(len(effective), batch_size - reserved)
    available = len(buffer) if buffer is not None else 0
    buffered = min(batch_size - fresh_wanted, available)
    fresh_used = effective[: min(len(effective), batch_size - buffered)]

    samples = [fresh[i] for i in fresh_used.tolist()]
    batch_advantages = [advantages[fresh_used]]
    if buffer is not None and buffered > 0:
        draw = buffer.sample(buffered, rng)
        samples.extend(draw.records)
        batch_advantages.append(draw.advantages)
    from_buffer = np.zeros(len(samples), dtype=np.bool_)
    from_buffer[len(fresh_used) :] = True
    return ComposedBatch(
        samples=tuple(samples),
        advantages=np.concatenate(batch_advantages),
        from_buffer=from_buffer,
        fresh_total=len(fresh),
        fresh_effective=len(effective),
    )
