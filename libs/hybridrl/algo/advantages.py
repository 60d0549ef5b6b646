"""Group-relative advantages of GRPO (eq. 6 of the Skywork R1V2 paper).

The SSB store calls this on every assembled group of N scored responses to one prompt: the
advantages feed the GRPO loss (eq. 8) and the SSB priority index, and the effective mask tells
which groups carry no learning signal ("vanishing advantages") and are counted and dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = ["GroupAdvantages", "group_advantages"]


@dataclass(frozen=True)
class GroupAdvantages:
    """Result of :func:`group_advantages`; every tensor is detached.

    Attributes:
        advantages: ``[num_groups, group_size]``; exactly zero in ineffective groups.
        effective_mask: ``[num_groups]`` bool; True where the rewards of the group are not all
            equal (so the group has a learning signal).
        group_mean: ``[num_groups]`` mean reward of each group.
        group_std: ``[num_groups]`` unbiased (Bessel-corrected) standard deviation of each group.
    """

    advantages: torch.Tensor
    effective_mask: torch.Tensor
    group_mean: torch.Tensor
    group_std: torch.Tensor


def _as_reward_matrix(rewards: torch.Tensor | Sequence[Sequence[float]]) -> torch.Tensor:
    if isinstance(rewards, torch.Tensor):
        matrix = rewards.detach()
    else:
        rows = list(rewards)
        if not rows:
            raise ValueError("rewards is empty: expected [num_groups, group_size] rewards")
        lengths = {len(row) for row in rows}
        if len(lengths) != 1:
            raise ValueError(f"rewards are ragged: groups have sizes {sorted(lengths)}")
        matrix = torch.tensor([[float(value) for value in row] for row in rows])
    if matrix.dim() != 2:
        raise ValueError(
            f"rewards must be [num_groups, group_size], got shape {tuple(matrix.shape)}"
        )
    if matrix.shape[0] == 0:
        raise ValueError("rewards is empty: expected at least one group")
    if matrix.shape[1] < 2:
        raise ValueError(
            f"group_size must be at least 2 for a group-relative advantage, got {matrix.shape[1]}"
        )
    if not matrix.is_floating_point():
        matrix = matrix.to(torch.get_default_dtype())
    if not bool(torch.isfinite(matrix).all()):
        raise ValueError("rewards contain NaN or infinite values")
    return matrix


def group_advantages(
    rewards: torch.Tensor | Sequence[Sequence[float]],
    *,
    eps: float = 1e-6,
    std_tol: float = 1e-6,
    normalize_std: bool = True,
) -> GroupAdvantages:
    """Group-relative outcome advantage of each response (eq. 6).

    ``A[g, i] = (r[g, i] - mean_g) / (std_g + eps)`` where ``mean_g`` and ``std_g`` are taken over
    the ``group_size`` responses to one prompt. Conventions, chosen to match verl's
    ``compute_grpo_outcome_advantage``:

    - ``std_g`` is torch's unbiased standard deviation (Bessel's correction, divide by N - 1);
    - ``eps`` (default 1e-6) is added to the standard deviation, not to the variance;
    - ``normalize_std=False`` returns ``r - mean_g`` (Dr.GRPO, arXiv:2503.20783).

    One deliberate difference: a group whose rewards are all equal, or whose ``std_g`` is at most
    ``std_tol``, is ineffective and gets exactly zero advantage. For such a group the numerator
    is only rounding noise (the float mean of equal values can be one ulp off), and dividing it by
    ``std_g + eps`` ~ ``eps`` would turn that noise into a spurious signal. For every other group
    the result is verl's to floating-point precision.

    Args:
        rewards: ``[num_groups, group_size]`` scalar rewards, a tensor or a rectangular sequence
            of sequences (converted to the default float dtype). Integer tensors are converted
            to the default float dtype; float tensors keep their dtype.
        eps: added to the standard deviation before dividing; must be >= 0.
        std_tol: groups with ``std_g <= std_tol`` count as ineffective; must be >= 0.
        normalize_std: divide by ``std_g + eps`` (GRPO) or not (Dr.GRPO).

    Returns:
        :class:`GroupAdvantages` with ``advantages [num_groups, group_size]``,
        ``effective_mask [num_groups]``, ``group_mean`` and ``group_std`` ``[num_groups]``.

    Raises:
        ValueError: on empty, ragged, non-2-D, NaN or infinite rewards, ``group_size < 2``, or a
            negative ``eps``/``std_tol``.
    """
    if not eps >= 0.0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    if not std_tol >= 0.0:
        raise ValueError(f"std_tol must be >= 0, got {std_tol}")
    matrix = _as_reward_matrix(rewards)
    with torch.no_grad():
        group_mean = matrix.mean(dim=1)
        group_std = matrix.std(dim=1, unbiased=True)
        all_equal = matrix.amax(dim=1) == matrix.amin(dim=1)
        effective_mask = ~all_equal & (group_std > std_tol)
        centred = matrix - group_mean.unsqueeze(1)
        if normalize_std:
            centred = centred / (group_std.unsqueeze(1) + eps)
        advantages = torch.where(effective_mask.unsqueeze(1), centred, torch.zeros_like(centred))
    return GroupAdvantages(
        advantages=advantages,
        effective_mask=effective_mask,
        group_mean=group_mean,
        group_std=group_std,
    )
