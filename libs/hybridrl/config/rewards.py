"""Settings of the reward scorers: rule reward, format reward, their worker pool, eq. 7 weights.

The reward service builds these once from its settings and passes them down to
``hybridrl.rewards``; nothing in the reward code reads the environment. All models are frozen
and reject unknown fields, so a typo in a YAML file fails at load time instead of being ignored.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class RuleRewardConfig(BaseModel):
    """How ``rule_reward`` (r_rule in eq. 7) extracts and compares a final answer.

    Comparison order: normalised string equality, multiple-choice letters, plain numbers within
    the tolerances, then math-verify. Before math-verify runs, expressions that would be costly
    to evaluate (too long, power towers, huge exponents, numbers with many digits, factorials of
    large numbers) are rejected and scored 0.0, because math-verify's own timeout only works in
    the main thread.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    relative_tolerance: float = Field(
        default=1e-6,
        ge=0.0,
        le=1.0,
        description="Plain numbers match when |a-b| <= rel*max(|a|,|b|).",
    )
    absolute_tolerance: float = Field(
        default=1e-9, ge=0.0, description="Plain numbers also match when |a-b| <= this (gold 0)."
    )
    parse_timeout_seconds: int = Field(
        default=2,
        ge=1,
        description="math-verify parse timeout per call, main thread only (signal.alarm: whole "
        "seconds).",
    )
    verify_timeout_seconds: int = Field(
        default=2,
        ge=1,
        description="math-verify timeout per comparison, main thread only (signal.alarm).",
    )
    search_window_chars: int = Field(
        default=4000,
        ge=64,
        description="Answer phrases and option letters are searched in this many trailing "
        "characters; \\boxed is searched in the whole text.",
    )
    max_answer_chars: int = Field(
        default=2000,
        ge=16,
        description="A \\boxed{...} argument longer than this is not an answer.",
    )
    max_expression_chars: int = Field(
        default=512, ge=16, description="Longer answers or golds are not sent to math-verify."
    )
    max_number_digits: int = Field(
        default=200, ge=16, description="A digit run longer than this is not sent to math-verify."
    )
    max_exponent: int = Field(
        default=10_000,
        ge=2,
        description="Bound on an exponent of a numeric base (2^{2023} is cheap to evaluate).",
    )
    max_symbolic_exponent: int = Field(
        default=200,
        ge=2,
        description="Bound on an exponent of a symbolic base, which sympy may expand: "
        "(x+1)^{1000} takes seconds.",
    )
    max_factorial: int = Field(
        default=1000,
        ge=2,
        description="With a factorial, binomial, sum or product, no integer may exceed this.",
    )
    max_brace_depth: int = Field(
        default=24, ge=2, description="Deeper brace/parenthesis nesting is rejected."
    )
    fall_back_to_thinking: bool = Field(
        default=True,
        description="When the text after </think> holds no answer, look inside the thinking.",
    )


class FormatRewardConfig(BaseModel):
    """What ``format_reward`` (r_format in eq. 7) demands of the R1-style template."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    require_final_answer: bool = Field(
        default=False,
        description="Also demand that the part after </think> holds an extractable final answer.",
    )


class HybridRewardWeights(BaseModel):
    """Weights of the three terms of the hybrid reward (eq. 7; the paper uses 1.0 each)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rule: float = Field(default=1.0, ge=0.0, allow_inf_nan=False, description="Weight of r_rule.")
    model: float = Field(default=1.0, ge=0.0, allow_inf_nan=False, description="Weight of r_theta.")
    format: float = Field(
        default=1.0, ge=0.0, allow_inf_nan=False, description="Weight of r_format."
    )


class ScorerPoolConfig(BaseModel):
    """Worker processes that score rule rewards with a hard wall-clock deadline per item."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    workers: int = Field(default=2, ge=1, le=256, description="Number of worker processes.")
    item_deadline_seconds: float = Field(
        default=10.0,
        gt=0.0,
        allow_inf_nan=False,
        description="A worker still busy with one item after this long is killed and replaced; "
        "the item scores 0.0 with status 'timeout'.",
    )
    start_timeout_seconds: float = Field(
        default=120.0,
        gt=0.0,
        allow_inf_nan=False,
        description="How long a new worker may take to import math-verify and report ready.",
    )
    start_method: Literal["forkserver", "spawn"] = Field(
        default="forkserver",
        description="Never 'fork': forking a threaded gRPC server is unsafe. forkserver preloads "
        "math-verify once, so a replacement worker starts in milliseconds.",
    )


class RewardsConfig(BaseModel):
    """Everything the reward service needs to compute eq. 7 apart from the reward model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rule: RuleRewardConfig = Field(default_factory=RuleRewardConfig)
    format: FormatRewardConfig = Field(default_factory=FormatRewardConfig)
    weights: HybridRewardWeights = Field(default_factory=HybridRewardWeights)
    pool: ScorerPoolConfig = Field(default_factory=ScorerPoolConfig)

    @model_validator(mode="after")
    def _deadline_covers_math_verify(self) -> RewardsConfig:
        # A deadline shorter than one math-verify call would kill workers on ordinary answers.
        shortest = min(self.rule.parse_timeout_seconds, self.rule.verify_timeout_seconds)
        if self.pool.item_deadline_seconds < shortest:
            raise ValueError(
                f"pool.item_deadline_seconds ({self.pool.item_deadline_seconds}) must be at least "
                f"the math-verify timeout ({shortest} s)"
            )
        return self
