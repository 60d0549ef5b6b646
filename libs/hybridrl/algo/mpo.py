"""Mixed Preference Optimization losses (eqs. 2-5) and the BCO reward shift.

The learner's MPO stage calls these on preference pairs (a chosen and a rejected response to one
prompt) built by the SSB store. Inputs are summed sequence log-probs ``[batch]`` of the policy and
of the frozen reference pi_0. Order of one MPO step, as in TRL's ``bco_pair``:

1. ``chosen, rejected = implicit_rewards(...)`` for the batch;
2. ``delta = shift.update(chosen, rejected)`` -- the shift already includes the current batch;
3. ``mpo_loss(..., delta=delta)``.

The losses are pure; :class:`RewardShift` is the only state and is checkpointed by the learner.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812 - the name every PyTorch reader expects

__all__ = [
    "MPOLossOutput",
    "RewardShift",
    "bco_loss",
    "dpo_loss",
    "implicit_rewards",
    "mpo_loss",
    "nll_loss",
]


def _check_logps(**named: torch.Tensor) -> None:
    shape: torch.Size | None = None
    for name, tensor in named.items():
        if tensor.dim() != 1:
            raise ValueError(f"{name} must be [batch], got shape {tuple(tensor.shape)}")
        if tensor.numel() == 0:
            raise ValueError(f"{name} is empty: expected at least one pair")
        if shape is not None and tensor.shape != shape:
            raise ValueError(f"{name} has shape {tuple(tensor.shape)}, expected {tuple(shape)}")
        shape = tensor.shape
        if not tensor.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor, got {tensor.dtype}")
        if not bool(torch.isfinite(tensor.detach()).all()):
            raise ValueError(f"{name} has NaN or infinite values")


def _check_beta(beta: float) -> None:
    # beta = 0 makes every preference term a constant log 2 with no gradient.
    if not (math.isfinite(beta) and beta > 0.0):
        raise ValueError(f"beta must be a finite number > 0, got {beta}")


def implicit_rewards(
    policy_logps: torch.Tensor, ref_logps: torch.Tensor, beta: float = 0.1
) -> torch.Tensor:
    """Detached implicit reward ``beta * (log pi_theta(y|x) - log pi_0(y|x))``, ``[batch]``.

    The quantity inside eqs. 3 and 4; used for logging and to update :class:`RewardShift`.
    """
    _check_beta(beta)
    _check_logps(policy_logps=policy_logps, ref_logps=ref_logps)
    return (beta * (policy_logps - ref_logps)).detach()


def dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float = 0.1,
) -> torch.Tensor:
    """Preference loss of MPO, the DPO sigmoid loss (eq. 3), per pair ``[batch]``.

    ``-log sigmoid(beta * ((pc - rc) - (pr - rr)))`` with ``pc``/``pr`` the policy and
    ``rc``/``rr`` the reference summed log-probs of the chosen/rejected responses, all
    ``[batch]``. Equals TRL's DPO ``loss_type="sigmoid"`` with ``label_smoothing=0``.
    """
    _check_beta(beta)
    _check_logps(
        policy_chosen_logps=policy_chosen_logps,
        policy_rejected_logps=policy_rejected_logps,
        ref_chosen_logps=ref_chosen_logps,
        ref_rejected_logps=ref_rejected_logps,
    )
    chosen_logratios = policy_chosen_logps - ref_chosen_logps
    rejected_logratios = policy_rejected_logps - ref_rejected_logps
    return -F.logsigmoid(beta * (chosen_logratios - rejected_logratios))


def bco_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float = 0.1,
    *,
    delta: float,
) -> torch.Tensor:
    """Quality loss of MPO, the pairwise BCO loss (eq. 4), per pair ``[batch]``.

    ``-log sigmoid(beta * (pc - rc) - delta) - log sigmoid(-(beta * (pr - rr) - delta))``: a
    binary classifier whose logit is the implicit reward shifted by ``delta``, pushing chosen
    responses to 1 and rejected ones to 0. ``delta`` is the moving average of past implicit
    rewards kept by :class:`RewardShift`; with its running-mean mode this equals TRL's DPO
    ``loss_type="bco_pair"`` (TRL < 0.29).
    """
    _check_beta(beta)
    if not math.isfinite(delta):
        raise ValueError(f"delta must be finite, got {delta}")
    _check_logps(
        policy_chosen_logps=policy_chosen_logps,
        policy_rejected_logps=policy_rejected_logps,
        ref_chosen_logps=ref_chosen_logps,
        ref_rejected_logps=ref_rejected_logps,
    )
    chosen_logits = beta * (policy_chosen_logps - ref_chosen_logps) - delta
    rejected_logits = beta * (policy_rejected_logps - ref_rejected_logps) - delta
    return -F.logsigmoid(chosen_logits) - F.logsigmoid(-rejected_logits)


def nll_loss(policy_chosen_logps: torch.Tensor, chosen_lengths: torch.Tensor) -> torch.Tensor:
    """Generation loss of MPO, length-normalised NLL of the chosen response (eq. 5), ``[batch]``.

    ``-log pi_theta(y_c|x) / |y_c|`` per sample, with ``chosen_lengths`` the number of response
    tokens ``|y_c|`` (``[batch]``, integer or float, all > 0). Unlike TRL's ``rpo_alpha`` term,
    which averages over all chosen tokens of the batch, each sample is normalised by its own
    length, as eq. 5 writes it.
    """
    _check_logps(policy_chosen_logps=policy_chosen_logps)
    if chosen_lengths.shape != policy_chosen_logps.shape:
        raise ValueError(
            f"chosen_lengths has shape {tuple(chosen_lengths.shape)}, "
            f"expected {tuple(policy_chosen_logps.shape)}"
        )
    lengths = chosen_lengths.detach().to(policy_chosen_logps.dtype)
    if not bool((torch.isfinite(lengths) & (lengths > 0)).all()):
        raise ValueError("chosen_lengths must all be finite and > 0")
    return -policy_chosen_logps / lengths


@dataclass(frozen=True)
class MPOLossOutput:
    """Result of :func:`mpo_loss`.

    Attributes:
        loss: scalar, batch mean of ``w_preference * L_pref + w_quality * L_qual +
            w_generation * L_gen`` (eq. 2); carries the gradient.
        preference_loss, quality_loss, generation_loss: detached scalar batch means of eqs. 3-5.
        chosen_rewards, rejected_rewards: detached ``[batch]`` implicit rewards
            ``beta * log(pi_theta / pi_0)`` of the chosen and rejected responses.
    """

    loss: torch.Tensor
    preference_loss: torch.Tensor
    quality_loss: torch.Tensor
    generation_loss: torch.Tensor
    chosen_rewards: torch.Tensor
    rejected_rewards: torch.Tensor

    def as_metrics(self) -> dict[str, float]:
        """Flat float metrics for a logger (reward accuracy and margin as TRL logs them)."""
        margins = self.chosen_rewards - self.rejected_rewards
        return {
            "loss": float(self.loss.detach()),
            "preference_loss": float(self.preference_loss),
            "quality_loss": float(self.quality_loss),
            "generation_loss": float(self.generation_loss),
            "chosen_reward": float(self.chosen_rewards.mean()),
            "rejected_reward": float(self.rejected_rewards.mean()),
            "reward_margin": float(margins.mean()),
            "reward_accuracy": float((margins > 0).to(margins.dtype).mean()),
        }


def mpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    chosen_lengths: torch.Tensor,
    *,
    delta: float,
    beta: float = 0.1,
    w_preference: float = 0.8,
    w_quality: float = 0.2,
    w_generation: float = 1.0,
) -> MPOLossOutput:
    """Mixed Preference Optimization loss (eq. 2) over a batch of preference pairs.

    ``L = w_preference * L_preference + w_quality * L_quality + w_generation * L_generation``,
    each term averaged over the batch: :func:`dpo_loss` (eq. 3), :func:`bco_loss` (eq. 4, shifted
    by ``delta``) and :func:`nll_loss` (eq. 5). Defaults are InternVL's MPO recipe (sigmoid 0.8,
    bco_pair 0.2, rpo_alpha 1.0, beta 0.1). All log-prob inputs are ``[batch]`` sums over response
    tokens; ``chosen_lengths`` is ``[batch]`` ``|y_c|``.
    """
    for name, weight in (
        ("w_preference", w_preference),
        ("w_quality", w_quality),
        ("w_generation", w_generation),
    ):
        if not (math.isfinite(weight) and weight >= 0.0):
            raise ValueError(f"{name} must be a finite number >= 0, got {weight}")
    pairs = (policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps)
    preference = dpo_loss(*pairs, beta).mean()
    quality = bco_loss(*pairs, beta, delta=delta).mean()
    generation = nll_loss(policy_chosen_logps, chosen_lengths).mean()
    total = w_preference * preference + w_quality * quality + w_generation * generation
    return MPOLossOutput(
        loss=total,
        preference_loss=preference.detach(),
        quality_loss=quality.detach(),
        generation_loss=generation.detach(),
        chosen_rewards=implicit_rewards(policy_chosen_logps, ref_chosen_logps, beta),
        rejected_rewards=implicit_rewards(policy_rejected_logps, ref_rejected_logps, beta),
    )


class RewardShift:
    """The shift ``delta`` of the BCO loss (eq. 4): a moving average of past implicit rewards.

    Each :meth:`update` reduces the batch to one value, the mean of
    ``cat(chosen_rewards, rejected_rewards)``, and folds it into ``delta``:

    - ``decay=None`` (default, TRL's ``RunningMoments``): the running mean of all batch means so
      far, each weighted by its count (1 per batch; the number of ranks when the learner
      all-reduces and calls :meth:`update_from_mean`).
    - ``decay`` in (0, 1): exponential moving average ``delta <- decay * delta + (1 - decay) *
      batch_mean``, started at the first batch mean.

    TRL updates the shift with the current batch *before* computing the loss; so does the
    learner: ``delta = shift.update(...)`` then ``bco_loss(..., delta=delta)``. The value is kept
    as a Python float (TRL keeps a float32 tensor), and the state is plain JSON-serialisable
    numbers so a checkpoint restores it exactly.
    """

    def __init__(self, decay: float | None = None) -> None:
        if decay is not None and not 0.0 < decay < 1.0:
            raise ValueError(f"decay must be in (0, 1) or None, got {decay}")
        self._decay = decay
        self._mean = 0.0
        self._count = 0

    @property
    def delta(self) -> float:
        """The current shift; 0.0 before the first update."""
        return self._mean

    @property
    def count(self) -> int:
        """How many observations (batch means) the shift has absorbed."""
        return self._count

    def update(self, chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor) -> float:
        """Fold one batch of implicit rewards (``[batch]`` each, detached) in; return the delta."""
        rewards = torch.cat(
            (chosen_rewards.detach().reshape(-1), rejected_rewards.detach().reshape(-1))
        )
        if rewards.numel() == 0:
            raise ValueError("no rewards to update the shift with")
        return self.update_from_mean(float(rewards.double().mean()))

    def update_from_mean(self, batch_mean: float, count: int = 1) -> float:
        """Fold in a batch mean reward that stands for ``count`` observations; return the delta."""
        if not math.isfinite(batch_mean):
            raise ValueError(f"batch_mean must be finite, got {batch_mean}")
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        total = self._count + count
        if self._decay is None:
            self._mean += (batch_mean - self._mean) * count / total
        elif self._count == 0:
            self._mean = batch_mean
        else:
            self._mean = self._decay * self._mean + (1.0 - self._decay) * batch_mean
        self._count = total
        return self._mean

    def state_dict(self) -> dict[str, float | int | None]:
        """Plain numbers for a checkpoint; :meth:`load_state_dict` restores them exactly."""
        return {"mean": self._mean, "count": self._count, "decay": self._decay}

    def load_state_dict(self, state: Mapping[str, float | int | None]) -> None:
        """Restore from :meth:`state_dict`; the decay must match this shift's own."""
        if set(state) != {"mean", "count", "decay"}:
            raise ValueError(
                f"reward shift state needs keys mean, count, decay; got {sorted(state)}"
            )
        mean, count, decay = state["mean"], state["count"], state["decay"]
        if decay != self._decay:
            raise ValueError(f"checkpoint decay {decay} differs from configured {self._decay}")
        if not isinstance(mean, float | int) or not math.isfinite(mean):
            raise ValueError(f"reward shift mean must be a finite number, got {mean!r}")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise ValueError(f"reward shift count must be an int >= 0, got {count!r}")
        self._mean = float(mean)
        self._count = count
