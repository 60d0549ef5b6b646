"""Named registries of advantage estimators and policy losses.

The SSB store and the learner pick the math by the name in their config (``"grpo"``,
``"dr_grpo"``, ``"mpo"``) instead of branching on it, in the manner of verl's
``register_adv_est``/``register_policy_loss``. A new variant is one decorated function:

    @register_policy_loss("my_loss")
    def my_loss(...) -> MyLossOutput: ...
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, Generic, Protocol, TypeVar

import torch

from hybridrl.algo.advantages import GroupAdvantages, group_advantages
from hybridrl.algo.grpo import grpo_loss
from hybridrl.algo.mpo import mpo_loss

__all__ = [
    "AdvantageEstimator",
    "LossOutput",
    "PolicyLoss",
    "Registry",
    "advantage_estimator_names",
    "get_advantage_estimator",
    "get_policy_loss",
    "policy_loss_names",
    "register_advantage_estimator",
    "register_policy_loss",
]


class LossOutput(Protocol):
    """What every registered policy loss returns: at least a scalar ``loss`` to minimise."""

    @property
    def loss(self) -> torch.Tensor: ...


# Estimators and losses take different inputs (token log-probs for GRPO, sequence log-probs of
# pairs for MPO), so only the return type is pinned down.
AdvantageEstimator = Callable[..., GroupAdvantages]
PolicyLoss = Callable[..., LossOutput]

FunctionT = TypeVar("FunctionT", bound=Callable[..., Any])


class Registry(Generic[FunctionT]):
    """A name -> function table; registering a different function under a taken name fails."""

    def __init__(self, kind: str) -> None:
        self._kind = kind
        self._functions: dict[str, FunctionT] = {}

    def register(self, name: str) -> Callable[[FunctionT], FunctionT]:
        """Decorator that registers the function under ``name`` and returns it unchanged."""
        if not name:
            raise ValueError(f"{self._kind} name must be a non-empty string")

        def decorator(function: FunctionT) -> FunctionT:
            existing = self._functions.get(name)
            if existing is not None and existing is not function:
                raise ValueError(f"{self._kind} {name!r} is already registered to {existing!r}")
            self._functions[name] = function
            return function

        return decorator

    def get(self, name: str) -> FunctionT:
        """The function registered under ``name``; ValueError listing the known names if none."""
        try:
            return self._functions[name]
        except KeyError:
            raise ValueError(
                f"unknown {self._kind} {name!r}; registered: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._functions)

    def __contains__(self, name: object) -> bool:
        return name in self._functions


_ADVANTAGE_ESTIMATORS: Registry[AdvantageEstimator] = Registry("advantage estimator")
_POLICY_LOSSES: Registry[PolicyLoss] = Registry("policy loss")


def register_advantage_estimator(
    name: str,
) -> Callable[[AdvantageEstimator], AdvantageEstimator]:
    """Decorator registering an advantage estimator (rewards ``[num_groups, group_size]`` in)."""
    return _ADVANTAGE_ESTIMATORS.register(name)


def get_advantage_estimator(name: str) -> AdvantageEstimator:
    """The advantage estimator registered under ``name`` (ValueError if unknown)."""
    return _ADVANTAGE_ESTIMATORS.get(name)


def advantage_estimator_names() -> list[str]:
    """Names of the registered advantage estimators, sorted."""
    return _ADVANTAGE_ESTIMATORS.names()


def register_policy_loss(name: str) -> Callable[[PolicyLoss], PolicyLoss]:
    """Decorator registering a policy loss (returns an object with a scalar ``loss``)."""
    return _POLICY_LOSSES.register(name)


def get_policy_loss(name: str) -> PolicyLoss:
    """The policy loss registered under ``name`` (ValueError if unknown)."""
    return _POLICY_LOSSES.get(name)


def policy_loss_names() -> list[str]:
    """Names of the registered policy losses, sorted."""
    return _POLICY_LOSSES.names()


register_advantage_estimator("grpo")(group_advantages)
# Dr.GRPO (arXiv:2503.20783): centre by the group mean without dividing by the std.
register_advantage_estimator("dr_grpo")(partial(group_advantages, normalize_std=False))
register_policy_loss("grpo")(grpo_loss)
register_policy_loss("mpo")(mpo_loss)
