"""The hybrid reward of eq. 7: a rule-based answer check, a vision-language reward model and a
format reward. The reward service scores rollouts with these; outside programs reach them over
gRPC (``RewardService``)."""

from hybridrl.rewards.format import format_reward
from hybridrl.rewards.hybrid import RewardParts, hybrid_reward, hybrid_reward_tensor
from hybridrl.rewards.reward_model import (
    RewardModel,
    RewardModelInput,
    RewardModelScorer,
    VisionLanguageRewardModel,
)
from hybridrl.rewards.rule import RuleResult, RuleStatus, rule_reward, score_rule
from hybridrl.rewards.scorer_pool import RuleScorerPool

__all__ = [
    "RewardModel",
    "RewardModelInput",
    "RewardModelScorer",
    "RewardParts",
    "RuleResult",
    "RuleScorerPool",
    "RuleStatus",
    "VisionLanguageRewardModel",
    "format_reward",
    "hybrid_reward",
    "hybrid_reward_tensor",
    "rule_reward",
    "score_rule",
]
