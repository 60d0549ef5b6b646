"""Clipped GRPO policy loss with a KL penalty to the reference policy (eq. 8).

The learner calls :func:`grpo_loss` on each batch sampled from the SSB: token log-probs of the
current policy, the behaviour log-probs each sample carries (pi_old, from the rollout worker that
generated it), the group advantages of eq. 6 and the response padding mask.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Final, Literal

import torch

__all__ = ["Aggregation", "GRPOLossOutput", "GRPOMetrics", "grpo_loss"]

Aggregation = Literal["sequence_mean", "token_mean"]


@dataclass(frozen=True)
class GRPOMetrics:
    """Detached diagnostics of one :func:`grpo_loss` call, averaged over valid tokens.

    Attributes:
        clip_fraction: fraction of valid tokens where the min of eq. 8 took the clipped term and
            it differed from the unclipped one (verl's ``pg_clipfrac``).
        approx_kl_old: k3 estimate of KL(pi_old || pi_theta) per token, ``r - 1 - log r`` with
            ``r = pi_theta / pi_old`` (unbiased and non-negative under samples from pi_old).
        ref_kl: mean k3 estimate of KL(pi_theta || pi_ref) per token, or None without reference.
        ratio_mean, ratio_min, ratio_max: of ``r`` over valid tokens.
        policy_loss: the clipped-surrogate part of the loss (minus the eq. 8 objective).
        valid_tokens: number of tokens the mask selects.
    """

    clip_fraction: float
    approx_kl_old: float
    ref_kl: float | None
    ratio_mean: float
    ratio_min: float
    ratio_max: float
    policy_loss: float
    valid_tokens: int

    def as_dict(self) -> dict[str, float]:
        """Flat float metrics for a logger, without the missing ones."""
        return {key: float(value) for key, value in asdict(self).items() if value is not None}


@dataclass(frozen=True)
class GRPOLossOutput:
    """Result of :func:`grpo_loss`: the scalar ``loss`` to minimise and its ``metrics``."""

    loss: torch.Tensor
    metrics: GRPOMetrics


def _sequence_mean(per_token: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # Eq. 8 exactly: 1/|y_i| inside, 1/G outside; sequences without valid tokens take no part.
    token_counts = mask.sum(dim=1)
    masked = torch.where(mask, per_token, torch.zeros_like(per_token))
    per_sequence = masked.sum(dim=1) / token_counts.clamp(min=1).to(per_token.dtype)
    return per_sequence[token_counts > 0].mean()


def _token_mean(per_token: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # DAPO's token-level mean: long responses weigh in proportion to their length.
    masked = torch.where(mask, per_token, torch.zeros_like(per_token))
    return masked.sum() / mask.sum().to(per_token.dtype)


_AGGREGATIONS: Final[Mapping[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]] = {
    "sequence_mean": _sequence_mean,
    "token_mean": _token_mean,
}


def _check_token_tensor(name: str, tensor: torch.Tensor, shape: torch.Size) -> None:
    if tensor.shape != shape:
        raise ValueError(
            f"{name} has shape {tuple(tensor.shape)}, expected {tuple(shape)} like logprobs"
        )
    if not tensor.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {tensor.dtype}")


def _as_bool_mask(mask: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    if mask.shape != shape:
        raise ValueError(f"mask has shape {tuple(mask.shape)}, expected {tuple(shape)}")
    if mask.dtype == torch.bool:
        return mask
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError("mask must hold only 0 and 1 (or be a bool tensor)")
    return mask != 0


def _check_finite(name: str, tensor: torch.Tensor, mask: torch.Tensor) -> None:
    # Padding positions may hold anything; only valid tokens must be finite.
    if not bool(torch.isfinite(tensor.detach()[mask]).all()):
        raise ValueError(f"{name} has NaN or infinite values on valid tokens")


def _token_advantages(advantages: torch.Tensor, logprobs: torch.Tensor) -> torch.Tensor:
    batch, seq = logprobs.shape
    if advantages.shape == (batch,):
        return advantages.unsqueeze(1).expand(batch, seq)
    if advantages.shape == (batch, seq):
        return advantages
    raise ValueError(
        f"advantages must be [batch]=({batch},) or [batch, seq]=({batch}, {seq}), "
        f"got {tuple(advantages.shape)}"
    )


def _validate_parameters(
    clip_eps: float, clip_eps_high: float, kl_beta: float, aggregation: str
) -> None:
    if not 0.0 < clip_eps < 1.0:
        raise ValueError(f"clip_eps must be in (0, 1), got {clip_eps}")
    if not clip_eps_high > 0.0:
        raise ValueError(f"clip_eps_high must be > 0, got {clip_eps_high}")
    if not kl_beta >= 0.0:
        raise ValueError(f"kl_beta must be >= 0, got {kl_beta}")
    if aggregation not in _AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {sorted(_AGGREGATIONS)}, got {aggregation!r}")


def grpo_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip_eps: float = 0.2,
    clip_eps_high: float | None = None,
    ref_logprobs: torch.Tensor | None = None,
    kl_beta: float = 0.0,
    aggregation: Aggregation = "sequence_mean",
) -> GRPOLossOutput:
    """Minus the clipped GRPO objective of eq. 8, plus ``kl_beta`` times a KL to the reference.

    Per valid token, with ``r = exp(logprobs - old_logprobs)`` (formed from the log-ratio for
    numerical stability) and ``A`` the advantage::

        objective = min(r * A, clip(r, 1 - clip_eps, 1 + clip_eps_high) * A)
        kl        = exp(ref - logprobs) - (ref - logprobs) - 1      # k3, DeepSeekMath / TRL
        loss_t    = -objective + kl_beta * kl

    ``aggregation="sequence_mean"`` averages ``loss_t`` over the ``|y_i|`` valid tokens of each
    response and then over responses (eq. 8 exactly); ``"token_mean"`` divides the sum over all
    valid tokens by their number (DAPO). Responses with no valid token are left out instead of
    producing NaN. The ratio is not clamped, so a token with a negative advantage and a large
    ratio is penalised without bound, as in eq. 8.

    Args:
        logprobs: ``[batch, seq]`` log pi_theta of the sampled tokens (carries the gradient).
        old_logprobs: ``[batch, seq]`` behaviour log-probs, log pi_old.
        advantages: ``[batch]`` (one per response, broadcast over tokens) or ``[batch, seq]``.
        mask: ``[batch, seq]`` bool or 0/1; True on response tokens, False on padding.
        clip_eps: lower clip range, ratio >= 1 - clip_eps; in (0, 1).
        clip_eps_high: upper clip range, ratio <= 1 + clip_eps_high (DAPO's clip-higher);
            defaults to ``clip_eps``.
        ref_logprobs: ``[batch, seq]`` log pi_ref; required when ``kl_beta > 0``. Without
            ``kl_beta`` it only feeds the ``ref_kl`` metric.
        kl_beta: weight of the KL penalty; >= 0.
        aggregation: ``"sequence_mean"`` or ``"token_mean"``.

    Returns:
        :class:`GRPOLossOutput` with the scalar ``loss`` and detached :class:`GRPOMetrics`.

    Raises:
        ValueError: on mismatched shapes, non-finite values on valid tokens, an empty batch or
            a batch without any valid token, and out-of-range parameters.
    """
    upper_eps = clip_eps if clip_eps_high is None else clip_eps_high
    _validate_parameters(clip_eps, upper_eps, kl_beta, aggregation)
    if logprobs.dim() != 2:
        raise ValueError(f"logprobs must be [batch, seq], got shape {tuple(logprobs.shape)}")
    if logprobs.numel() == 0:
        raise ValueError("logprobs is empty: expected a non-empty [batch, seq] tensor")
    shape = logprobs.shape
    _check_token_tensor("logprobs", logprobs, shape)
    _check_token_tensor("old_logprobs", old_logprobs, shape)
    if ref_logprobs is not None:
        _check_token_tensor("ref_logprobs", ref_logprobs, shape)
    elif kl_beta > 0.0:
        raise ValueError("kl_beta > 0 needs ref_logprobs")
    valid = _as_bool_mask(mask, shape)
    valid_tokens = int(valid.sum())
    if valid_tokens == 0:
        raise ValueError("mask selects no token: the whole batch is padding")
    token_advantages = _token_advantages(advantages, logprobs)
    for name, tensor in (
        ("logprobs", logprobs),
        ("old_logprobs", old_logprobs),
        ("advantages", token_advantages),
    ):
        _check_finite(name, tensor, valid)

    # Zeroing padding before exp keeps garbage there from reaching the loss or its gradient.
    zeros = torch.zeros_like(logprobs)
    token_advantages = torch.where(valid, token_advantages, zeros)
    log_ratio = torch.where(valid, logprobs - old_logprobs, zeros)
    ratio = torch.exp(log_ratio)
    clipped_ratio = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + upper_eps)
    unclipped_objective = ratio * token_advantages
    clipped_objective = clipped_ratio * token_advantages
    objective = torch.minimum(unclipped_objective, clipped_objective)
    aggregate = _AGGREGATIONS[aggregation]
    policy_loss = aggregate(-objective, valid)

    loss = policy_loss
    ref_kl: torch.Tensor | None = None
    if ref_logprobs is not None:
        _check_finite("ref_logprobs", ref_logprobs, valid)
        ref_log_ratio = torch.where(valid, ref_logprobs - logprobs, zeros)
        ref_kl = torch.exp(ref_log_ratio) - ref_log_ratio - 1.0
        if kl_beta > 0.0:
            # Both aggregations are linear, so this equals aggregating the per-token sum.
            loss = policy_loss + kl_beta * aggregate(ref_kl, valid)

    with torch.no_grad():
        ratio_valid = ratio.detach()[valid]
        log_ratio_valid = log_ratio.detach()[valid]
        clipped = (clipped_objective.detach() < unclipped_objective.detach())[valid]
        metrics = GRPOMetrics(
            clip_fraction=float(clipped.to(ratio.dtype).mean()),
            approx_kl_old=float((ratio_valid - 1.0 - log_ratio_valid).mean()),
            ref_kl=None if ref_kl is None else float(ref_kl.detach()[valid].mean()),
            ratio_mean=float(ratio_valid.mean()),
            ratio_min=float(ratio_valid.min()),
            ratio_max=float(ratio_valid.max()),
            policy_loss=float(policy_loss.detach()),
            valid_tokens=valid_tokens,
        )
    return GRPOLossOutput(loss=loss, metrics=metrics)
