"""Clients of the hybridrl services for programs outside the training loop.

``RewardClient`` scores responses with the reward service's hybrid reward (eq. 7) over gRPC.
"""

from hybridrl.client.reward import (
    RewardClient,
    RewardResult,
    RewardServiceError,
    RewardServiceUnavailable,
    ScoreInput,
    StatusName,
    TaskKindName,
)

__all__ = [
    "RewardClient",
    "RewardResult",
    "RewardServiceError",
    "RewardServiceUnavailable",
    "ScoreInput",
    "StatusName",
    "TaskKindName",
]
