"""The hybrid reward of eq. 7, r = r_rule + r_theta + r_format, for one response or a batch.

The reward service computes the three parts (``rule_reward``, the reward model's score,
``format_reward``) and combines them here; the total is what GRPO's group advantages (eq. 6)
normalise. The paper adds the parts with weight 1.0 each; the weights are configurable so an
experiment can scale or switch off a term. ``RewardParts`` is what the services publish per
response, so that the parts stay visible next to the total.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from hybridrl.config.rewards import HybridRewardWeights


@dataclass(frozen=True)
class RewardParts:
    """The three terms of eq. 7 for one response and their weighted sum."""

    rule: float
    model: float
    format: float
    total: float

    def __post_init__(self) -> None:
        for name in ("rule", "model", "format", "total"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"reward part {name!r} is not finite: {getattr(self, name)}")

    @classmethod
    def combine(
        cls,
        rule: float,
        model: float,
        format: float,
        *,
        weights: HybridRewardWeights | None = None,
    ) -> RewardParts:
        """The parts with their total computed by ``hybrid_reward`` (eq. 7)."""
        total = hybrid_reward(rule, model, format, weights=weights)
        return cls(rule=rule, model=model, format=format, total=total)


def hybrid_reward(
    rule: float, model: float, format: float, *, weights: HybridRewardWeights | None = None
) -> float:
    """Eq. 7: r(x, y) = w_rule r_rule(x, y) + w_theta r_theta(x, y) + w_format r_format(x, y).

    Weights default to 1.0 each, the paper's plain sum. Raises ValueError for a NaN or
    infinite part.
    """
    chosen = weights if weights is not None else HybridRewardWeights()
    for name, value in (("rule", rule), ("model", model), ("format", format)):
        if not math.isfinite(value):
            raise ValueError(f"{name} reward is not finite: {value}")
    return chosen.rule * rule + chosen.model * model + chosen.format * format


def hybrid_reward_tensor(
    rule: torch.Tensor,
    model: torch.Tensor,
    format: torch.Tensor,
    weights: HybridRewardWeights | None = None,
) -> torch.Tensor:
    """Eq. 7 for a batch: ``rule``, ``model``, ``format`` of shape [batch] -> reward [batch].

    The result has the promoted floating dtype of the inputs (float32 for integer or boolean
    parts). Raises ValueError for an empty batch, a shape other than [batch] shared by all
    three, different devices, or a NaN or infinite entry.
    """
    chosen = weights if weights is not None else HybridRewardWeights()
    parts = {"rule": rule, "model": model, "format": format}
    for name, part in parts.items():
        if part.dim() != 1:
            raise ValueError(f"{name} must have shape [batch], got {tuple(part.shape)}")
    if not rule.shape == model.shape == format.shape:
        shapes = {name: tuple(part.shape) for name, part in parts.items()}
        raise ValueError(f"reward parts must share one shape [batch], got {shapes}")
    if rule.numel() == 0:
        raise ValueError("reward parts are empty")
    if not rule.device == model.device == format.device:
        raise ValueError("reward parts must be on one device")
    dtype = torch.promote_types(torch.promote_types(rule.dtype, model.dtype), format.dtype)
    if not dtype.is_floating_point:
        dtype = torch.float32
    floats = {name: part.to(dtype) for name, part in parts.items()}
    for name, part in floats.items():
        if not bool(torch.isfinite(part).all()):
            raise ValueError(f"{name} reward has NaN or infinite entries")
    return (
        chosen.rule * floats["rule"]
        + chosen.model * floats["model"]
        + chosen.format * floats["format"]
    )
