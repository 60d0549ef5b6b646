"""Settings of the learner: the warm-up, the MPO and GRPO phases, sampling and evaluation.

The synchronous trainer (``hybridrl.learner.synchronous``) and the distributed learner read
one ``LearnerConfig``. Defaults are the configuration measured to make the tiny
vision-language model learn the synthetic visual task on 2 CPU cores within minutes
(``bench/learning_curve.py``); a real run overrides most of them. The loss settings reuse
``GRPOConfig``/``MPOConfig``, the buffer and pair settings ``SSBConfig``/``MPOPairConfig``.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hybridrl.config.buffer import MPOPairConfig, SSBConfig
from hybridrl.config.losses import GRPOConfig, MPOConfig
from hybridrl.config.rewards import FormatRewardConfig, HybridRewardWeights
from hybridrl.models.vlm_config import FreezeMode
from hybridrl.tasks.visual_reasoning import TaskKind

__all__ = ["LearnerConfig", "WarmupConfig", "WarmupImages"]

WarmupImages = Literal["blank", "shuffled", "true"]

_MODEL_CONFIG = ConfigDict(
    frozen=True, extra="forbid", allow_inf_nan=False, use_attribute_docstrings=True
)


class WarmupConfig(BaseModel):
    """The short supervised warm-up that teaches the template and the answer vocabulary.

    The paper starts RL from a pretrained model; the tiny model starts from random weights, so
    it first imitates ``reference_response`` targets. With ``images="blank"`` the image it sees
    is the empty background, so it learns the format, the phrases and the prior over answers,
    but nothing that ties an answer to a picture: whatever grounding the policy shows later is
    the RL phases' own.
    """

    model_config = _MODEL_CONFIG

    steps: int = Field(default=100, ge=0)
    """Optimizer steps of next-token cross-entropy on reference responses. Default 100: the
    template is learnt (loss ~0.1 nats per token, the rest is the answer's own entropy)."""

    batch_size: int = Field(default=32, ge=1)
    """Reference responses per step. Default 32."""

    learning_rate: float = Field(default=3e-3, gt=0.0)
    """AdamW learning rate of the warm-up. Default 3e-3."""

    freeze_mode: FreezeMode = "llm+adapter"
    """Components the warm-up trains. The language model must learn the template from
    scratch, so "llm+adapter". Default "llm+adapter"."""

    images: WarmupImages = "blank"
    """What the warm-up shows in place of each prompt's image: "blank" the empty background
    (no information about the answer), "shuffled" another prompt's image (information about
    the wrong answer), "true" the prompt's own image (the warm-up then also teaches grounding,
    which leaves RL less to do). Default "blank"."""


class LearnerConfig(BaseModel):
    """Everything a learner run needs besides the model: phases, sampling, losses, evaluation."""

    model_config = _MODEL_CONFIG

    seed: int = Field(default=0, ge=0)
    """Seeds the model's initial weights, the optimizer-side randomness, the rollout sampling
    and the buffer draws. Default 0."""

    language_initializer_range: float = Field(default=0.2, gt=0.0)
    """Standard deviation of the tiny language model's initial weights (``initializer_range``
    of its transformers config; ``VisionLanguageModelConfig.tiny`` leaves the Qwen2 default
    0.02). At 0.02 the adapter cannot make the 2-layer model attend to the one image patch
    that holds the shape within a thousand supervised steps; at 0.2 it does within about a
    hundred. Ignored when the trainer is given its own model config. Default 0.2."""

    torch_threads: int = Field(default=2, ge=1)
    """Intra-op threads (``torch.set_num_threads``). Default 2. On a machine other processes
    also load, set ``OMP_WAIT_POLICY=PASSIVE`` in the environment before torch starts, or
    two spinning OpenMP threads make each step many times slower."""

    task_kinds: tuple[TaskKind, ...] = ("colour",)
    """Kinds of synthetic prompts trained and evaluated on, cycled in this order. Default
    colour: the one kind the tiny model grounds within minutes on CPU (position and counting
    barely move in 300 supervised steps of the same model)."""

    prompt_seed: int = Field(default=1000, ge=0)
    """Training prompts of step s are ``generate_prompts(prompts_per_step, seed=prompt_seed +
    s)``; the warm-up draws from ``prompt_seed - 1``. Default 1000."""

    eval_seed: int = Field(default=7, ge=0)
    """Seed of the held-out evaluation prompts (split "eval"). Default 7."""

    eval_prompts: int = Field(default=200, ge=1)
    """Held-out prompts scored by greedy decoding before and after RL. Default 200."""

    eval_every: int = Field(default=0, ge=0)
    """Also evaluate every this many RL steps (0: only before and after). Default 0."""

    warmup: WarmupConfig = Field(default_factory=WarmupConfig)
    """The supervised warm-up before RL."""

    freeze_mode: FreezeMode = "adapter"
    """Components the RL phases train; only their weights travel to rollout workers.
    Default "adapter", the paper's best setting (Table 4)."""

    mpo_steps: int = Field(default=30, ge=0)
    """Steps of the MPO phase (eqs. 2-5): one rollout and one batch of pairs each. Default
    30. On the synthetic task this phase leaves held-out accuracy where it was (60 steps
    measured: 0.21 -> 0.235); the R1V2 schedule keeps it before GRPO."""

    mpo_learning_rate: float = Field(default=3e-3, gt=0.0)
    """AdamW learning rate of the MPO phase. Default 3e-3."""

    grpo_steps: int = Field(default=400, ge=0)
    """Steps of the GRPO phase (eq. 8): one rollout and one batch each. Default 400: the
    tiny model reaches its accuracy target within about 150, and the rest is the regime the
    Selective Sample Buffer is for, where most groups agree and their advantages vanish."""

    grpo_learning_rate: float = Field(default=3e-3, gt=0.0)
    """AdamW learning rate of the GRPO phase. Default 3e-3."""

    lr_schedule: Literal["constant", "cosine"] = "cosine"
    """How each phase's learning rate moves over its steps
    (``hybridrl.learner.schedule.phase_learning_rate``): constant, or a cosine from the phase's
    rate down to ``min_lr_ratio`` of it at its last step. Default "cosine": with a constant
    3e-3, a policy that had reached 0.96 held-out accuracy was thrown back to 0.7 by the last
    ten steps of a 240-step GRPO phase."""

    min_lr_ratio: float = Field(default=0.1, ge=0.0, le=1.0)
    """The cosine schedule's last rate as a share of the first. Default 0.1."""

    minibatches_per_step: int = Field(default=4, ge=1)
    """Optimizer updates per step: the step's GRPO batch (or MPO pairs) is split into this many
    interleaved minibatches, one update each; the engine gets the weights once, after the
    last. Above 1 the later minibatches are off-policy, which the clip of eq. 8 bounds (the
    multiple GRPO iterations of DeepSeekMath). Default 4: the adapter needs a few hundred
    updates to ground answers, and generating rollouts costs more than updating on them."""

    max_grad_norm: float = Field(default=1.0, gt=0.0)
    """Gradients are clipped to this global norm before each update. Default 1.0."""

    prompts_per_step: int = Field(default=32, ge=1)
    """Prompts sampled per step; each gives one group. Default 32."""

    group_size: int = Field(default=8, ge=2)
    """Responses per prompt, the N of eq. 6. Default 8."""

    mpo_pairs_per_step: int | None = Field(default=None, ge=1)
    """Preference pairs per MPO step of the distributed learner (the synchronous trainer
    trains on every pair its step's groups give). None means half of prompts_per_step: with
    one pair per group at most, a group gives a pair only when it holds a right and a wrong
    answer, so a step's groups give fewer pairs than prompts, and a learner that asks for
    more than they give waits for the next step's. Default None."""

    grpo_batch_size: int | None = Field(default=None, ge=1)
    """Places in each GRPO batch (``compose_batch``); None means prompts_per_step x
    group_size, one step's worth of rollouts. Default None."""

    temperature: float = Field(default=0.7, gt=0.0)
    """Sampling temperature of the rollouts; the learner recomputes pi_theta at it. Default
    0.7: at 1.0 one response in thirty breaks the template, and the format reward's variance
    then drowns the answer's."""

    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    """Nucleus mass of the rollouts. Default 1.0."""

    max_new_tokens: int = Field(default=24, ge=1)
    """Longest response, eos included; also the evaluation's limit. Default 24 (a worked
    colour solution is 16 tokens)."""

    max_staleness: int = Field(default=8, ge=0)
    """GRPO samples from a policy more than this many versions old are dropped by the step
    and evicted from the buffer (keep ``ssb.max_staleness`` equal). Default 8: rollouts
    already arrive a version or two late when they overlap learning, and once advantages
    vanish a bound of 4 leaves too few buffered samples to fill a batch (measured: 78% of
    its places against 100% at 8); the clip of eq. 8 bounds what older samples can do."""

    grpo: GRPOConfig = Field(default_factory=lambda: GRPOConfig(kl_beta=0.0))
    """Loss settings of eq. 8. Default: GRPOConfig with kl_beta 0, since the runs are short
    and the clip keeps each update near the behaviour policy."""

    mpo: MPOConfig = Field(default_factory=MPOConfig)
    """Loss settings of eqs. 2-5. Default: InternVL's MPO recipe (MPOConfig defaults)."""

    mpo_pairs: MPOPairConfig = Field(default_factory=lambda: MPOPairConfig(threshold=1.0))
    """How pairs are built from a group. Default threshold 1.0 (a correct vs a wrong
    answer on the rule + format scale of 0 to 2), one pair per group."""

    ssb: SSBConfig = Field(default_factory=lambda: SSBConfig(max_staleness=8))
    """The Selective Sample Buffer; ``ssb.enabled=False`` trains on fresh samples only."""

    reward_weights: HybridRewardWeights = Field(default_factory=HybridRewardWeights)
    """Weights of eq. 7. The synthetic task has no reward model, so r_theta is 0."""

    format_reward: FormatRewardConfig = Field(default_factory=FormatRewardConfig)
    """What the format reward demands."""

    @model_validator(mode="after")
    def _check_batch(self) -> Self:
        if not self.task_kinds:
            raise ValueError("task_kinds must name at least one task kind")
        return self

    @property
    def rollouts_per_step(self) -> int:
        """Responses sampled per step: prompts_per_step x group_size."""
        return self.prompts_per_step * self.group_size

    @property
    def mpo_batch_pairs(self) -> int:
        """Pairs per distributed MPO step (``mpo_pairs_per_step`` or prompts_per_step / 2)."""
        return self.mpo_pairs_per_step or max(self.prompts_per_step // 2, 1)

    @property
    def grpo_batch_places(self) -> int:
        """Places in each GRPO batch (``grpo_batch_size`` or one step's rollouts)."""
        return self.grpo_batch_size or self.rollouts_per_step
