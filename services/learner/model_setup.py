"""What a learner rank starts from: the policy, DeepSpeed's configuration, its share of a batch.

The run starts from the initial checkpoint's full weights (the warm-up's, in the local run) or,
without one, from the tiny model built from the run's seed; every rank builds the same model,
and DeepSpeed's configuration says only how to optimise it, since the learner makes its own
batches.
"""

from __future__ import annotations

from typing import Any

import torch
from hybridrl_services.learner.distributed import RankInfo
from hybridrl_services.learner.settings import LearnerSettings

from hybridrl.learner.rollouts import tiny_model_config
from hybridrl.models.policy_checkpoint import load_policy_state
from hybridrl.models.tokenizer import build_tokenizer
from hybridrl.models.vlm import VisionLanguageModel
from hybridrl.models.vlm_config import VisionLanguageModelConfig
from hybridrl.store.checkpoints import open_checkpoint

__all__ = ["deepspeed_config", "initial_policy", "share_of"]


def share_of(total: int, rank: RankInfo) -> int:
    """This rank's part of ``total`` places: equal shares, the first ranks take the rest."""
    base, extra = divmod(total, rank.world_size)
    return base + (1 if rank.rank < extra else 0)


def initial_policy(
    settings: LearnerSettings,
) -> tuple[VisionLanguageModel, int]:
    """The model the run starts from and its policy version: the initial checkpoint's full
    weights, or the tiny model built from ``run.seed``."""
    uri = settings.initial_checkpoint_uri
    if uri is None:
        config = tiny_model_config(build_tokenizer(), settings.run.language_initializer_range)
        with torch.random.fork_rng():
            torch.manual_seed(settings.run.seed)
            return VisionLanguageModel(config), 0
    store, ref = open_checkpoint(uri, settings.object_store)
    state, metadata = load_policy_state(store, ref)
    if metadata.weights != "full":
        raise ValueError(f"{uri} holds only {metadata.weights} weights; start from full weights")
    model = VisionLanguageModel(VisionLanguageModelConfig.model_validate(metadata.model_config))
    model.load_state_dict(state, strict=True)
    return model, metadata.policy_version


def deepspeed_config(settings: LearnerSettings, learning_rate: float) -> dict[str, Any]:
    """DeepSpeed's configuration: ZeRO stage, AdamW, clipping; batches are the learner's own."""
    return {
        "train_micro_batch_size_per_gpu": 1,
        "gradient_accumulation_steps": 1,
        "gradient_clipping": settings.run.max_grad_norm,
        "zero_optimization": {"stage": settings.deepspeed.zero_stage},
        "optimizer": {
            "type": "AdamW",
            "params": {
                "lr": learning_rate,
                "weight_decay": settings.deepspeed.weight_decay,
                "torch_adam": True,
            },
        },
        "steps_per_print": 2**31 - 1,
        "wall_clock_breakdown": False,
    }
