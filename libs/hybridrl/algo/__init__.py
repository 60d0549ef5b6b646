"""The R1V2 math as pure functions over tensors: one equation of the paper per function.

Advantages (eq. 6), the GRPO loss (eq. 8), the MPO losses (eqs. 2-5), the Selective Sample
Buffer (section 3.3.2) and the MPO pair builder. Nothing here imports a transport (gRPC, Kafka,
S3); the services call these functions.
"""

from hybridrl.algo.advantages import GroupAdvantages, group_advantages
from hybridrl.algo.batch_composer import ComposedBatch, compose_batch
from hybridrl.algo.buffer import SelectiveSampleBuffer
from hybridrl.algo.grpo import GRPOLossOutput, GRPOMetrics, grpo_loss
from hybridrl.algo.mpo import (
    MPOLossOutput,
    RewardShift,
    bco_loss,
    dpo_loss,
    implicit_rewards,
    mpo_loss,
    nll_loss,
)
from hybridrl.algo.pairs import PreferencePair, build_mpo_pairs
from hybridrl.algo.prompt_filter import PromptFilterResult, filter_prompts
from hybridrl.algo.samples import ScoredResponse, group_id_for, sample_id_for
from hybridrl.algo.sum_tree import SumTree

__all__ = [
    "ComposedBatch",
    "GRPOLossOutput",
    "GRPOMetrics",
    "GroupAdvantages",
    "MPOLossOutput",
    "PreferencePair",
    "PromptFilterResult",
    "RewardShift",
    "ScoredResponse",
    "SelectiveSampleBuffer",
    "SumTree",
    "bco_loss",
    "build_mpo_pairs",
    "compose_batch",
    "dpo_loss",
    "filter_prompts",
    "group_advantages",
    "group_id_for",
    "grpo_loss",
    "implicit_rewards",
    "mpo_loss",
    "nll_loss",
    "sample_id_for",
]
