"""The learner's process group: who this rank is, and the few collectives a step needs.

torchrun, the DeepSpeed launcher and the Kubeflow training operator all describe the job in
the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``);
``deepspeed.init_distributed`` reads them. A learner run without a launcher is one rank.

Every rank must enter the same collectives in the same order, or the job hangs. So each step
begins with ``agree``: every rank adds what it fetched and the requests it received (a
checkpoint asked for on rank 0's gRPC server, a stop signal on any rank), and all act on the
sums. ``DistributedRewardShift`` all-reduces the BCO shift of eq. 4 so that every rank keeps the
same delta, also a rank whose minibatch is empty.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist

from hybridrl.algo.mpo import RewardShift

__all__ = [
    "Agreement",
    "DistributedRewardShift",
    "RankInfo",
    "agree",
    "barrier",
    "gather_objects",
]

T = TypeVar("T")


@dataclass(frozen=True)
class RankInfo:
    """This process's place in the job."""

    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_environment(cls) -> RankInfo:
        """What the launcher set; one rank when nothing is set."""
        rank = int(os.environ.get("RANK", "0"))
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if not 0 <= rank < world_size:
            raise ValueError(f"RANK {rank} is outside WORLD_SIZE {world_size}")
        return cls(rank, world_size, int(os.environ.get("LOCAL_RANK", str(rank))))


def _initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


@dataclass(frozen=True)
class Agreement:
    """The sums every rank acts on at the start of a step."""

    items: int
    checkpoint_requested: bool
    stop_requested: bool


def agree(items: int, checkpoint_requested: bool, stop_requested: bool) -> Agreement:
    """All-reduce this rank's items fetched and its requests; every rank gets the same sums."""
    values = torch.tensor(
        [items, int(checkpoint_requested), int(stop_requested)], dtype=torch.float64
    )
    if _initialized():
        dist.all_reduce(values)
    total, checkpoint, stop = (int(value) for value in values.tolist())
    return Agreement(total, checkpoint > 0, stop > 0)


def gather_objects(value: T) -> list[T]:
    """Every rank's ``value``, in rank order, on every rank (small picklable objects only)."""
    if not _initialized():
        return [value]
    gathered: list[T | None] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return [item for item in gathered if item is not None]


def barrier() -> None:
    if _initialized():
        dist.barrier()


class DistributedRewardShift(RewardShift):
    """The BCO shift (eq. 4) from the mean implicit reward over every rank's pairs.

    ``update`` all-reduces the sum and count of this rank's implicit rewards and folds the
    global batch mean in once (count 1, as one process would for the whole batch). A rank
    without pairs in a minibatch calls ``skip`` instead, which takes part in the same
    all-reduce with nothing.
    """

    def update(self, chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor) -> float:
        rewards = torch.cat(
            (chosen_rewards.detach().reshape(-1), rejected_rewards.detach().reshape(-1))
        ).double()
        return self._reduce(float(rewards.sum()), rewards.numel())

    def skip(self) -> float:
        """This rank's minibatch is empty: join the all-reduce, fold in the others' mean."""
        return self._reduce(0.0, 0)

    def _reduce(self, total: float, count: int) -> float:
        values = torch.tensor([total, float(count)], dtype=torch.float64)
        if _initialized():
            dist.all_reduce(values)
        summed, counted = values.tolist()
        if counted == 0:
            return self.delta
        return self.update_from_mean(summed / counted)
