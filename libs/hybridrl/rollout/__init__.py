"""Rollout workers: prompts in, groups of N sampled responses out, weights hot-reloaded.

The core of the rollout service, free of gRPC and Kafka: ``RolloutWorker`` turns prompt
events into rollout events (eq. 6's groups, with the behaviour log-probs of eq. 8),
``PolicyUpdater`` swaps announced checkpoints into the engine between batches,
``OnDemandGenerator`` serves ``Generate`` calls on the same ``SharedEngine``, and
``prompt_event_from_task`` publishes the synthetic task's prompts.
"""

from hybridrl.rollout.on_demand import OnDemandGenerator
from hybridrl.rollout.policy_source import (
    LoadedPolicy,
    local_model_directory,
    policy_config_from_directory,
    policy_from_directory,
    tiny_policy,
)
from hybridrl.rollout.policy_updates import (
    TRAIN_MODE_OF,
    PolicyUpdateCounters,
    PolicyUpdater,
    policy_version_event,
)
from hybridrl.rollout.prompt_inputs import ObjectReader, PromptEncoder, PromptInputs
from hybridrl.rollout.prompts import TASK_KIND_OF, prompt_event_from_task
from hybridrl.rollout.shared_engine import SharedEngine
from hybridrl.rollout.worker import PromptOutcome, RolloutSampling, RolloutWorker, rollout_seed

__all__ = [
    "TASK_KIND_OF",
    "TRAIN_MODE_OF",
    "LoadedPolicy",
    "ObjectReader",
    "OnDemandGenerator",
    "PolicyUpdateCounters",
    "PolicyUpdater",
    "PromptEncoder",
    "PromptInputs",
    "PromptOutcome",
    "RolloutSampling",
    "RolloutWorker",
    "SharedEngine",
    "local_model_directory",
    "policy_config_from_directory",
    "policy_from_directory",
    "policy_version_event",
    "prompt_event_from_task",
    "rollout_seed",
    "tiny_policy",
]
