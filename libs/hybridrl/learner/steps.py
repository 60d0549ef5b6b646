"""One learner step of each objective: GRPO (eq. 8) and MPO (eqs. 2-5), without the update.

Where it sits: the learner collates a batch (``hybridrl.learner.collate``), calls a step here,
then runs backward and the optimizer itself -- ``loss.backward(); optimizer.step()`` in one
process, ``engine.backward(loss); engine.step()`` under DeepSpeed -- so the same step serves
the synchronous trainer and the distributed learner. A step recomputes log-probs with
``VisionLanguageModel.sequence_logprobs`` (policy with gradient, reference without) and hands
them to the pure losses of ``hybridrl.algo``; it changes no weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hybridrl.algo.grpo import grpo_loss
from hybridrl.algo.mpo import RewardShift, implicit_rewards, mpo_loss
from hybridrl.config.losses import GRPOConfig, MPOConfig
from hybridrl.learner.collate import GRPOBatch, PreferenceBatch, TokenBatch
from hybridrl.models.vlm import VisionLanguageModel

__all__ = ["StepOutput", "grpo_step", "mpo_step", "token_logprobs", "zero_loss"]


@dataclass(frozen=True, eq=False)
class StepOutput:
    """A step's scalar ``loss`` (carries the gradient) and its float ``metrics`` for a logger."""

    loss: torch.Tensor
    metrics: dict[str, float]


def token_logprobs(
    model: VisionLanguageModel, tokens: TokenBatch, temperature: float = 1.0
) -> torch.Tensor:
    """log pi(y_t | x, y_<t) of every response token of ``tokens``, ``[batch, seq]`` float32,
    0 off the response; gradients flow when they are enabled."""
    return model.sequence_logprobs(
        tokens.input_ids,
        tokens.attention_mask,
        tokens.pixel_values,
        tokens.response_mask.long(),
        temperature=temperature,
    )


def zero_loss(model: VisionLanguageModel) -> torch.Tensor:
    """A zero loss whose gradient reaches every trainable parameter (as zeros)."""
    # Zero, yet connected to every trainable parameter: under DeepSpeed every rank must run
    # backward in every step, or the gradient all-reduce of the others waits for ever.
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    if not trainable:
        raise ValueError("the model has no trainable parameter: apply a freeze mode first")
    return torch.stack([parameter.sum() for parameter in trainable]).sum() * 0.0


def grpo_step(
    model: VisionLanguageModel,
    reference_model: VisionLanguageModel | None,
    batch: GRPOBatch,
    config: GRPOConfig,
    *,
    current_policy_version: int,
    max_staleness: int,
    temperature: float = 1.0,
) -> StepOutput:
    """The GRPO loss (eq. 8) of ``batch`` for the policy ``model``.

    Samples sampled by a policy more than ``max_staleness`` versions before
    ``current_policy_version`` are dropped: their behaviour log-probs are too far from pi_theta
    for the clipped ratio to mean much. The remaining samples' behaviour log-probs are pi_old,
    ``temperature`` is the sampling temperature they were taken at (so an on-policy ratio is
    exactly 1), and with ``config.kl_beta > 0`` the reference model's log-probs feed the KL
    penalty. When every sample is stale the loss is a zero that still reaches every trainable
    parameter.

    Metrics: ``grpo_loss``'s (clip fraction, KL to pi_old and to the reference, ratio range,
    policy loss), plus ``samples``, ``stale_dropped``, ``response_length`` and ``loss``.

    Raises:
        ValueError: a sample newer than ``current_policy_version``, a negative staleness, or
            ``kl_beta > 0`` without a reference model.
    """
    if max_staleness < 0:
        raise ValueError(f"max_staleness must be >= 0, got {max_staleness}")
    if config.kl_beta > 0.0 and reference_model is None:
        raise ValueError("kl_beta > 0 needs a reference model")
    versions = batch.policy_versions
    if bool((versions > current_policy_version).any()):
        raise ValueError(
            f"batch holds samples of policy {int(versions.max())}, newer than the current "
            f"{current_policy_version}"
        )
    fresh = versions >= current_policy_version - max_staleness
    stale = int((~fresh).sum())
    if not bool(fresh.any()):
        zero = zero_loss(model)
        return StepOutput(zero, {"loss": 0.0, "samples": 0.0, "stale_dropped": float(stale)})
    tokens = batch.tokens
    advantages = batch.advantages
    if stale:
        rows = torch.nonzero(fresh).squeeze(1)
        tokens, advantages = tokens.select(rows), advantages[rows]
    logprobs = token_logprobs(model, tokens, temperature)
    ref_logprobs = None
    if reference_model is not None and config.kl_beta > 0.0:
        with torch.no_grad():
            ref_logprobs = token_logprobs(reference_model, tokens, temperature)
    output = grpo_loss(
        logprobs,
        tokens.behaviour_logprobs,
        advantages,
        tokens.response_mask,
        clip_eps=config.clip_eps,
        clip_eps_high=config.clip_eps_high,
        ref_logprobs=ref_logprobs,
        kl_beta=config.kl_beta,
        aggregation=config.aggregation,
    )
    metrics = output.metrics.as_dict()
    metrics.update(
        loss=float(output.loss.detach()),
        samples=float(tokens.size),
        stale_dropped=float(stale),
        response_length=float(tokens.response_lengths.float().mean()),
    )
    return StepOutput(output.loss, metrics)


def mpo_step(
    model: VisionLanguageModel,
    reference_model: VisionLanguageModel,
    batch: PreferenceBatch,
    config: MPOConfig,
    reward_shift: RewardShift,
    *,
    temperature: float = 1.0,
) -> StepOutput:
    """The MPO loss (eq. 2) of a batch of preference pairs for the policy ``model``.

    Summed response log-probs of the chosen and rejected responses under the policy and under
    the frozen reference pi_0 (the policy MPO started from), in one forward pass each; the
    implicit rewards ``beta * log(pi_theta / pi_0)`` update ``reward_shift`` *before* the loss,
    whose BCO term (eq. 4) uses the updated delta (TRL's order). ``reward_shift`` is the only
    state a step changes; a distributed learner that all-reduces the batch mean calls
    ``RewardShift.update_from_mean`` itself and passes a shift it owns.

    Metrics: ``MPOLossOutput.as_metrics`` (loss, its three terms, implicit rewards, margin,
    reward accuracy), plus ``delta``, ``pairs`` and ``chosen_length``/``rejected_length``.
    """
    tokens = batch.tokens
    pairs = batch.pairs
    sums = token_logprobs(model, tokens, temperature).sum(dim=1)
    with torch.no_grad():
        ref_sums = token_logprobs(reference_model, tokens, temperature).sum(dim=1)
    policy_chosen, policy_rejected = sums[:pairs], sums[pairs:]
    ref_chosen, ref_rejected = ref_sums[:pairs], ref_sums[pairs:]
    delta = reward_shift.update(
        implicit_rewards(policy_chosen, ref_chosen, config.beta),
        implicit_rewards(policy_rejected, ref_rejected, config.beta),
    )
    lengths = tokens.response_lengths
    output = mpo_loss(
        policy_chosen,
        policy_rejected,
        ref_chosen,
        ref_rejected,
        lengths[:pairs],
        delta=delta,
        beta=config.beta,
        w_preference=config.w_preference,
        w_quality=config.w_quality,
        w_generation=config.w_generation,
    )
    metrics = output.as_metrics()
    metrics.update(
        delta=delta,
        pairs=float(pairs),
        chosen_length=float(lengths[:pairs].float().mean()),
        rejected_length=float(lengths[pairs:].float().mean()),
    )
    return StepOutput(output.loss, metrics)
