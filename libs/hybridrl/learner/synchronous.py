"""The whole R1V2 loop in one process: warm-up, MPO phase, GRPO phase with the SSB, evaluation.

Where it sits: the platform runs rollout, reward, SSB and learner as separate services joined
by Kafka and gRPC; this trainer runs the same core functions in one loop, with no transport, so
that a configuration can be shown to learn before the distributed plumbing is involved. Each
step:

1. sample ``prompts_per_step`` prompts and ``group_size`` responses each from the rollout
   engine (a separate copy of the policy, as a rollout worker holds one);
2. score each response: r_rule + r_format (eq. 7; the synthetic task has no reward model);
3. MPO phase: pairs from each group whose reward margin clears the threshold, ``mpo_step``;
   GRPO phase: group advantages (eq. 6), ``compose_batch`` with the Selective Sample Buffer,
   ``grpo_step`` with the behaviour log-probs as pi_old;
4. the batch is split into ``minibatches_per_step`` minibatches, each one backward, clip and
   AdamW update; then the trainable weights go to the engine as policy version + 1.

The model is ``VisionLanguageModelConfig.tiny`` with a larger language-model initialisation
(``LearnerConfig.language_initializer_range``) unless a model config is given.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Literal

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from hybridrl.algo.advantages import group_advantages
from hybridrl.algo.batch_composer import compose_batch
from hybridrl.algo.buffer import SelectiveSampleBuffer
from hybridrl.algo.mpo import RewardShift
from hybridrl.algo.pairs import build_mpo_pairs
from hybridrl.config.learner import LearnerConfig
from hybridrl.engines.base import SamplingOptions
from hybridrl.engines.cpu import TransformersEngine
from hybridrl.learner.collate import collate_grpo, collate_pairs
from hybridrl.learner.evaluation import EvalResult, evaluate
from hybridrl.learner.rollouts import Group, RolloutPayload, sample_groups, tiny_model_config
from hybridrl.learner.schedule import phase_learning_rate
from hybridrl.learner.steps import StepOutput, grpo_step, mpo_step
from hybridrl.learner.warmup import WarmupResult, supervised_warmup
from hybridrl.models.freezing import apply_freeze_mode, trainable_state_dict
from hybridrl.models.tokenizer import build_tokenizer
from hybridrl.models.vlm import VisionLanguageModel
from hybridrl.models.vlm_config import VisionLanguageModelConfig
from hybridrl.tasks.visual_reasoning import generate_prompts

__all__ = ["StepRecord", "SynchronousTrainer", "TrainingReport"]

Phase = Literal["mpo", "grpo"]


@dataclass(frozen=True)
class StepRecord:
    """What one RL step did.

    Attributes:
        phase, step: "mpo" or "grpo" and the step's index within its phase.
        policy_version: the version after the step (unchanged when nothing was trained).
        reward, rule_reward, format_reward: means over the step's fresh rollouts (eq. 7).
        fresh_effective_ratio: share of fresh rollouts with non-zero advantage (section 3.3.2).
        batch_effective_ratio: GRPO: samples with a learning signal trained on / batch
            places, which the SSB keeps near 1 when fresh groups stop disagreeing; MPO: share
            of groups that gave a preference pair.
        buffer_size: samples in the SSB after the step (0 without it).
        response_length: mean tokens per fresh rollout.
        seconds: wall-clock of the step, evaluation excluded.
        metrics: the step function's metrics (clip fraction, KL, losses, ...); empty when the
            step had nothing to train on.
        eval_accuracy: held-out accuracy after the step, when it was evaluated.
    """

    phase: Phase
    step: int
    policy_version: int
    reward: float
    rule_reward: float
    format_reward: float
    fresh_effective_ratio: float
    batch_effective_ratio: float
    buffer_size: int
    response_length: float
    seconds: float
    metrics: dict[str, float] = field(default_factory=dict)
    eval_accuracy: float | None = None


@dataclass(frozen=True)
class TrainingReport:
    """A whole run: the warm-up, held-out scores before and after RL, and every RL step.

    ``rl_seconds`` is the wall-clock of the MPO and GRPO phases without the evaluations in
    them; ``eval_seconds`` is the time of those evaluations and the final one.
    """

    warmup: WarmupResult
    before: EvalResult
    after: EvalResult
    steps: list[StepRecord]
    warmup_seconds: float
    rl_seconds: float
    eval_seconds: float


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else 0.0


class SynchronousTrainer:
    """One process, one loop: see the module docstring. Build, then ``run()``."""

    def __init__(
        self,
        config: LearnerConfig,
        *,
        tokenizer: PreTrainedTokenizerBase | None = None,
        model_config: VisionLanguageModelConfig | None = None,
        on_step: Callable[[StepRecord], None] | None = None,
    ) -> None:
        """Build the policy (the tiny model unless ``model_config`` says otherwise), its
        rollout engine copy and the held-out prompts. ``on_step`` sees every step record."""
        torch.set_num_threads(config.torch_threads)
        self.config = config
        self.tokenizer = tokenizer if tokenizer is not None else build_tokenizer()
        self.model_config = model_config or tiny_model_config(
            self.tokenizer, config.language_initializer_range
        )
        with torch.random.fork_rng():
            torch.manual_seed(config.seed)
            self.policy = VisionLanguageModel(self.model_config).eval()
        self.engine = TransformersEngine(
            copy.deepcopy(self.policy),
            self.tokenizer,
            max_batch_size=max(config.rollouts_per_step, 64),
            weight_update_mode=config.freeze_mode,
            seed=config.seed,
        )
        self.eval_prompts = generate_prompts(
            config.eval_prompts, seed=config.eval_seed, kinds=config.task_kinds, split="eval"
        )
        self.policy_version = 0
        self.buffer: SelectiveSampleBuffer[RolloutPayload] | None = (
            SelectiveSampleBuffer(config.ssb) if config.ssb.enabled else None
        )
        self._pad_id = int(self.tokenizer.pad_token_id or 0)
        self._on_step = on_step
        self._eval_seconds = 0.0

    def run(self) -> TrainingReport:
        """Warm up, evaluate, run the MPO then the GRPO phase, evaluate again."""
        started = time.perf_counter()
        warmup = self.warm_up()
        warmup_seconds = time.perf_counter() - started
        before = self.evaluate()
        self._eval_seconds = 0.0
        started = time.perf_counter()
        steps = self.train_mpo(self.config.mpo_steps) + self.train_grpo(self.config.grpo_steps)
        rl_seconds = time.perf_counter() - started - self._eval_seconds
        after = self.evaluate()
        return TrainingReport(
            warmup, before, after, steps, warmup_seconds, rl_seconds, self._eval_seconds
        )

    def warm_up(self) -> WarmupResult:
        """The supervised warm-up (``hybridrl.learner.warmup``); the engine gets all weights."""
        config = self.config
        prompts = generate_prompts(
            config.warmup.steps * config.warmup.batch_size,
            seed=max(config.prompt_seed - 1, 0),
            kinds=config.task_kinds,
            split="warmup",
        )
        result = supervised_warmup(
            self.policy, self.tokenizer, prompts, config.warmup, seed=config.seed
        )
        self.engine.load_weights(self.policy.state_dict(), self.policy_version)
        return result

    def evaluate(self) -> EvalResult:
        """Greedy held-out accuracy of the engine's current policy."""
        started = time.perf_counter()
        result = evaluate(
            self.engine,
            self.eval_prompts,
            self.tokenizer,
            self.model_config.num_image_tokens,
            max_new_tokens=self.config.max_new_tokens,
            format_config=self.config.format_reward,
        )
        self._eval_seconds += time.perf_counter() - started
        return result

    def train_mpo(self, steps: int) -> list[StepRecord]:
        """``steps`` MPO steps on pairs from the policy's own scored groups (eqs. 2-5)."""
        if steps == 0:
            return []
        reference = self._frozen_copy()
        shift = RewardShift(self.config.mpo.shift_decay)
        optimizer = self._optimizer(self.config.mpo_learning_rate)
        records = []
        for step in range(steps):
            started = time.perf_counter()
            self._schedule(optimizer, self.config.mpo_learning_rate, step, steps)
            groups = self._rollout("mpo", step)
            pairs = [
                pair
                for group in groups
                for pair in build_mpo_pairs(
                    group,
                    self.config.mpo_pairs.threshold,
                    self.config.mpo_pairs.max_pairs_per_group,
                )
            ]
            metrics = self._update(
                optimizer,
                [
                    partial(
                        mpo_step,
                        self.policy,
                        reference,
                        collate_pairs([pairs[i] for i in rows], self._pad_id),
                        self.config.mpo,
                        shift,
                    )
                    for rows in self._minibatches(len(pairs))
                ],
            )
            effective = group_advantages([[s.reward for s in g] for g in groups]).effective_mask
            ratio = float(effective.float().mean())
            records.append(
                self._record("mpo", step, groups, started, metrics, ratio, len(pairs) / len(groups))
            )
        return records

    def train_grpo(self, steps: int) -> list[StepRecord]:
        """``steps`` GRPO steps (eq. 8) on fresh samples and, if enabled, the SSB."""
        if steps == 0:
            return []
        config = self.config
        reference = self._frozen_copy() if config.grpo.kl_beta > 0.0 else None
        optimizer = self._optimizer(config.grpo_learning_rate)
        rng = np.random.default_rng([config.seed, 1])
        tolerance = config.ssb.advantage_tolerance
        records = []
        for step in range(steps):
            started = time.perf_counter()
            self._schedule(optimizer, config.grpo_learning_rate, step, steps)
            groups = self._rollout("grpo", step)
            advantages = group_advantages(
                [[sample.reward for sample in group] for group in groups],
                eps=config.grpo.advantage_eps,
                std_tol=config.grpo.advantage_std_tol,
                normalize_std=config.grpo.advantage_estimator == "grpo",
            ).advantages
            fresh = [sample for group in groups for sample in group]
            fresh_advantages = advantages.reshape(-1).double().numpy()
            if self.buffer is not None:
                self.buffer.evict_stale(self.policy_version, config.max_staleness)
            composed = compose_batch(
                fresh,
                fresh_advantages,
                self.buffer,
                config.grpo_batch_places,
                config.ssb.buffered_fraction,
                rng,
                advantage_tolerance=tolerance,
            )
            if self.buffer is not None:
                self.buffer.add(fresh, fresh_advantages)
            metrics = self._update(
                optimizer,
                [
                    partial(
                        grpo_step,
                        self.policy,
                        reference,
                        collate_grpo(
                            [composed.samples[i] for i in rows],
                            composed.advantages[rows],
                            self._pad_id,
                        ),
                        config.grpo,
                        current_policy_version=self.policy_version,
                        max_staleness=config.max_staleness,
                        temperature=config.temperature,
                    )
                    for rows in self._minibatches(len(composed.samples))
                ],
            )
            fill = len(composed.samples) / config.grpo_batch_places
            fresh_ratio = composed.effective_ratio or 0.0
            records.append(self._record("grpo", step, groups, started, metrics, fresh_ratio, fill))
        return records

    def _rollout(self, phase: Phase, step: int) -> list[Group]:
        config = self.config
        phase_offset = 0 if phase == "mpo" else config.mpo_steps
        prompts = generate_prompts(
            config.prompts_per_step,
            seed=config.prompt_seed + phase_offset + step,
            kinds=config.task_kinds,
        )
        return sample_groups(
            self.engine,
            self.tokenizer,
            prompts,
            num_image_tokens=self.model_config.num_image_tokens,
            sampling=SamplingOptions(
                n=config.group_size,
                temperature=config.temperature,
                top_p=config.top_p,
                max_new_tokens=config.max_new_tokens,
            ),
            seed=(config.seed, self.policy_version, step),
            weights=config.reward_weights,
            format_config=config.format_reward,
        )

    def _frozen_copy(self) -> VisionLanguageModel:
        reference = copy.deepcopy(self.policy).eval()
        reference.requires_grad_(False)
        return reference

    def _optimizer(self, learning_rate: float) -> torch.optim.Optimizer:
        apply_freeze_mode(self.policy, self.config.freeze_mode)
        parameters = [p for p in self.policy.parameters() if p.requires_grad]
        return torch.optim.AdamW(parameters, lr=learning_rate)

    def _schedule(
        self, optimizer: torch.optim.Optimizer, base_rate: float, step: int, steps: int
    ) -> None:
        config = self.config
        rate = phase_learning_rate(base_rate, step, steps, config.lr_schedule, config.min_lr_ratio)
        for group in optimizer.param_groups:
            group["lr"] = rate

    def _minibatches(self, size: int) -> list[list[int]]:
        # Interleaved, so that fresh and buffered samples (or groups) mix in every minibatch.
        count = min(self.config.minibatches_per_step, size)
        return [list(range(start, size, count)) for start in range(count)]

    def _update(
        self, optimizer: torch.optim.Optimizer, steps: Sequence[Callable[[], StepOutput]]
    ) -> dict[str, float]:
        """One optimizer update per minibatch step, then one policy version for the engine;
        the minibatches' mean metrics. No steps (nothing to learn from): no update."""
        if not steps:
            return {}
        parameters = [p for group in optimizer.param_groups for p in group["params"]]
        collected: list[dict[str, float]] = []
        for step in steps:
            output = step()
            optimizer.zero_grad(set_to_none=True)
            output.loss.backward()  # type: ignore[no-untyped-call]
            norm = torch.nn.utils.clip_grad_norm_(parameters, self.config.max_grad_norm)
            optimizer.step()
            collected.append({**output.metrics, "grad_norm": float(norm)})
        self.policy_version += 1
        state = trainable_state_dict(self.policy, self.config.freeze_mode)
        self.engine.load_weights(state, self.policy_version)
        keys = set.intersection(*(set(metrics) for metrics in collected))
        return {key: _mean([metrics[key] for metrics in collected]) for key in sorted(keys)}

    def _record(
        self,
        phase: Phase,
        step: int,
        groups: Sequence[Group],
        started: float,
        metrics: dict[str, float],
        fresh_ratio: float,
        batch_ratio: float,
    ) -> StepRecord:
        samples = [sample for group in groups for sample in group]
        seconds = time.perf_counter() - started
        eval_accuracy = None
        every = self.config.eval_every
        if every and (step + 1) % every == 0:
            eval_accuracy = self.evaluate().accuracy
        record = StepRecord(
            phase=phase,
            step=step,
            policy_version=self.policy_version,
            reward=_mean([s.reward for s in samples]),
            rule_reward=_mean([s.payload.reward.rule for s in samples]),
            format_reward=_mean([s.payload.reward.format for s in samples]),
            fresh_effective_ratio=fresh_ratio,
            batch_effective_ratio=batch_ratio,
            buffer_size=len(self.buffer) if self.buffer is not None else 0,
            response_length=_mean([len(s.payload.response_token_ids) for s in samples]),
            seconds=seconds,
            metrics=metrics,
            eval_accuracy=eval_accuracy,
        )
        if self._on_step is not None:
            self._on_step(record)
        return record
