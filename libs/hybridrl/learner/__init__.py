"""The learner's core: collation, the MPO and GRPO steps, the warm-up, evaluation, and a
synchronous in-process trainer that runs the whole loop without any transport."""

from hybridrl.learner.collate import (
    GRPOBatch,
    PreferenceBatch,
    ResponseTokens,
    TokenBatch,
    collate_grpo,
    collate_pairs,
    collate_responses,
)
from hybridrl.learner.evaluation import EvalResult, evaluate, task_request
from hybridrl.learner.rollouts import RolloutPayload, sample_groups, score_group
from hybridrl.learner.steps import StepOutput, grpo_step, mpo_step, token_logprobs, zero_loss
from hybridrl.learner.synchronous import StepRecord, SynchronousTrainer, TrainingReport
from hybridrl.learner.warmup import (
    ReferenceExample,
    WarmupResult,
    reference_examples,
    supervised_warmup,
)

__all__ = [
    "EvalResult",
    "GRPOBatch",
    "PreferenceBatch",
    "ReferenceExample",
    "ResponseTokens",
    "RolloutPayload",
    "StepOutput",
    "StepRecord",
    "SynchronousTrainer",
    "TokenBatch",
    "TrainingReport",
    "WarmupResult",
    "collate_grpo",
    "collate_pairs",
    "collate_responses",
    "evaluate",
    "grpo_step",
    "mpo_step",
    "reference_examples",
    "sample_groups",
    "score_group",
    "supervised_warmup",
    "task_request",
    "token_logprobs",
    "zero_loss",
]
