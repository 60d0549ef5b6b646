"""The learning rate over a phase's steps.

Each phase (MPO, GRPO) starts at its own rate (``LearnerConfig.mpo_learning_rate``,
``grpo_learning_rate``); with the cosine schedule the rate falls to ``min_lr_ratio`` of it by
the phase's last step. Late in a GRPO run most groups agree (their advantages vanish) and the
few informative samples are replayed many times by the SSB; a smaller step then keeps a policy
that has learnt the task from being pushed off it by the last noisy batches.
"""

from __future__ import annotations

import math
from typing import Literal

__all__ = ["LearningRateSchedule", "phase_learning_rate"]

LearningRateSchedule = Literal["constant", "cosine"]


def phase_learning_rate(
    base_rate: float,
    step: int,
    steps: int,
    schedule: LearningRateSchedule,
    min_ratio: float,
) -> float:
    """The rate of step ``step`` (0-based) of a phase of ``steps`` steps.

    ``"cosine"``: ``base * (min_ratio + (1 - min_ratio) * (1 + cos(pi * step / (steps - 1))) / 2)``,
    ``base`` at the first step and ``base * min_ratio`` at the last; ``"constant"``: ``base``.

    Raises:
        ValueError: a negative rate, a step outside the phase, a ratio outside [0, 1].
    """
    if base_rate < 0 or not 0.0 <= min_ratio <= 1.0:
        raise ValueError(
            f"need base_rate >= 0 and 0 <= min_ratio <= 1, got {base_rate}, {min_ratio}"
        )
    if not 0 <= step < steps:
        raise ValueError(f"step {step} is outside a phase of {steps} steps")
    if schedule == "constant" or steps == 1:
        return base_rate
    if schedule != "cosine":
        raise ValueError(f"unknown schedule {schedule!r}")
    progress = step / (steps - 1)
    return base_rate * (min_ratio + (1.0 - min_ratio) * (1.0 + math.cos(math.pi * progress)) / 2)
