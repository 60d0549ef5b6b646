"""Configuration models (frozen pydantic) for the algorithms, rewards, Kafka and object store.

One source of truth: the same models back the services' settings, the CLI and the chart values.
"""

from hybridrl.config.buffer import EvictionPolicy, MPOPairConfig, SSBConfig
from hybridrl.config.losses import GRPOConfig, MPOConfig
from hybridrl.config.rewards import (
    FormatRewardConfig,
    HybridRewardWeights,
    RewardsConfig,
    RuleRewardConfig,
    ScorerPoolConfig,
)

__all__ = [
    "EvictionPolicy",
    "FormatRewardConfig",
    "GRPOConfig",
    "HybridRewardWeights",
    "MPOConfig",
    "MPOPairConfig",
    "RewardsConfig",
    "RuleRewardConfig",
    "SSBConfig",
    "ScorerPoolConfig",
]
