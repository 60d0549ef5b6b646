"""Settings of the two training objectives: GRPO (eqs. 6 and 8) and MPO (eqs. 2-5).

Part of the learner's configuration (and of the SSB store's, which computes the advantages).
Field names match the keyword arguments of :mod:`hybridrl.algo` (``grpo_loss``,
``group_advantages``, ``mpo_loss``, ``RewardShift``), so a learner passes them through unchanged.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["GRPOConfig", "MPOConfig"]

_LOSS_MODEL_CONFIG = ConfigDict(
    frozen=True, extra="forbid", allow_inf_nan=False, use_attribute_docstrings=True
)


class GRPOConfig(BaseModel):
    """Group Relative Policy Optimization, the reinforcement fine-tuning stage (paper § 3.3.1)."""

    model_config = _LOSS_MODEL_CONFIG

    clip_eps: float = Field(default=0.2, gt=0.0, lt=1.0)
    """Clip range epsilon of eq. 8: the ratio pi_theta / pi_old is clipped to
    [1 - clip_eps, 1 + clip_eps_high]. Default 0.2 (PPO, arXiv:1707.06347; DeepSeekMath GRPO)."""

    clip_eps_high: float | None = Field(default=None, gt=0.0)
    """Upper clip range ("clip-higher", DAPO arXiv:2503.14476, which uses 0.28). None uses
    clip_eps, the symmetric clip of eq. 8. Default None."""

    kl_beta: float = Field(default=0.04, ge=0.0)
    """Weight of the per-token k3 KL penalty to the reference policy that the paper adds to the
    clipped surrogate (§ 3.3.1; DeepSeekMath arXiv:2402.03300 uses 0.04). 0 disables it and
    skips the reference forward pass. Default 0.04."""

    aggregation: Literal["sequence_mean", "token_mean"] = "sequence_mean"
    """How per-token losses become one number: "sequence_mean" averages each response over its
    |y_i| tokens, then over responses (eq. 8); "token_mean" averages over all tokens of the
    batch (DAPO arXiv:2503.14476). Default "sequence_mean"."""

    advantage_estimator: Literal["grpo", "dr_grpo"] = "grpo"
    """Group advantage of eq. 6: "grpo" divides the centred reward by the group std; "dr_grpo"
    only centres it (Dr.GRPO arXiv:2503.20783). Default "grpo"."""

    advantage_eps: float = Field(default=1e-6, ge=0.0)
    """Added to the group std in the denominator of eq. 6 (verl's epsilon). Default 1e-6."""

    advantage_std_tol: float = Field(default=1e-6, ge=0.0)
    """Groups whose reward std is at most this count as all-equal: zero advantage, dropped by
    the Selective Sample Buffer as "vanishing advantages" (§ 3.3.2). Default 1e-6."""

    @model_validator(mode="after")
    def _check_clip_range(self) -> Self:
        if self.clip_eps_high is not None and self.clip_eps_high < self.clip_eps:
            # Clip-higher only ever widens the upper range; a narrower one is almost surely a typo.
            raise ValueError(
                f"clip_eps_high ({self.clip_eps_high}) must be >= clip_eps ({self.clip_eps})"
            )
        return self


class MPOConfig(BaseModel):
    """Mixed Preference Optimization, the preference stage before GRPO (paper § 3.2).

    Defaults follow InternVL's MPO recipe (arXiv:2411.10442): sigmoid weight 0.8, bco_pair
    weight 0.2, rpo_alpha 1.0, beta 0.1.
    """

    model_config = _LOSS_MODEL_CONFIG

    beta: float = Field(default=0.1, gt=0.0)
    """KL penalty coefficient beta of eqs. 3 and 4, scaling the log-ratio to pi_0 into an
    implicit reward (DPO arXiv:2305.18290). Default 0.1."""

    w_preference: float = Field(default=0.8, ge=0.0)
    """w_1 of eq. 2, weight of the DPO preference loss (eq. 3). Default 0.8."""

    w_quality: float = Field(default=0.2, ge=0.0)
    """w_2 of eq. 2, weight of the BCO quality loss (eq. 4, BCO arXiv:2404.04656). Default 0.2."""

    w_generation: float = Field(default=1.0, ge=0.0)
    """w_3 of eq. 2, weight of the length-normalised NLL generation loss (eq. 5). Default 1.0."""

    shift_decay: float | None = Field(default=None, gt=0.0, lt=1.0)
    """How delta of eq. 4 averages past implicit rewards: None keeps the running mean of all
    batch means (TRL's bco_pair); a value in (0, 1) uses an exponential moving average with
    that decay. Default None."""

    @model_validator(mode="after")
    def _check_some_weight(self) -> Self:
        if self.w_preference + self.w_quality + self.w_generation <= 0.0:
            raise ValueError("at least one of w_preference, w_quality, w_generation must be > 0")
        return self
