"""Freeze modes: which components of the vision-language model train, and which weights travel.

In adapter-only mode (the default, the paper's best, Table 4) only the MLP adapter f_c trains,
so a policy update that reaches the rollout workers is the adapter's weights alone.
"""

from collections.abc import Mapping
from typing import get_args

import torch

from hybridrl.models.vlm import VisionLanguageModel
from hybridrl.models.vlm_config import COMPONENT_NAMES, FREEZE_MODE_COMPONENTS, FreezeMode


def _trainable_components(mode: str) -> frozenset[str]:
    if mode not in FREEZE_MODE_COMPONENTS:
        raise ValueError(f"freeze mode must be one of {get_args(FreezeMode)}, got {mode!r}")
    return FREEZE_MODE_COMPONENTS[mode]


def apply_freeze_mode(model: VisionLanguageModel, mode: FreezeMode = "adapter") -> None:
    """Set ``requires_grad`` on every parameter: True exactly in the mode's components."""
    trainable = _trainable_components(mode)
    for name in COMPONENT_NAMES:
        getattr(model, name).requires_grad_(name in trainable)


def trainable_state_dict(model: VisionLanguageModel, mode: FreezeMode) -> dict[str, torch.Tensor]:
    """The parameters a policy update changes in ``mode``, keyed as in ``model.state_dict()``:
    what travels to rollout workers. Tensors are detached views, not copies."""
    trainable = _trainable_components(mode)
    return {
        name: parameter.detach()
        for name, parameter in model.named_parameters()
        if name.split(".", 1)[0] in trainable
    }


def load_trainable_state_dict(
    model: VisionLanguageModel, state: Mapping[str, torch.Tensor], mode: FreezeMode
) -> None:
    """Copy a ``trainable_state_dict`` into ``model`` in place (a rollout worker's weight update).

    The keys must be exactly the mode's parameters, with matching shapes.
    """
    expected = trainable_state_dict(model, mode)
    if set(state) != set(expected):
        missing = sorted(set(expected) - set(state))[:5]
        unexpected = sorted(set(state) - set(expected))[:5]
        raise ValueError(
            f"state does not match mode {mode!r}: missing {missing}, extra {unexpected}"
        )
    with torch.no_grad():
        for name, target in expected.items():
            if state[name].shape != target.shape:
                raise ValueError(f"{name}: shape {tuple(state[name].shape)} != {target.shape}")
            target.copy_(state[name])
