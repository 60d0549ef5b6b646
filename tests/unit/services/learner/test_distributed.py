"""The learner's collectives in one process, and the all-reduced BCO shift (eq. 4) across two
real gloo ranks."""

from __future__ import annotations

import multiprocessing
import os

import pytest
import torch
import torch.distributed as dist
from hybridrl_services.learner.distributed import (
    DistributedRewardShift,
    RankInfo,
    agree,
    gather_objects,
)
from hybridrl_services.learner.model_setup import share_of

from hybridrl.algo.mpo import RewardShift
from hybridrl.local.child_process import free_port


def test_rank_info_reads_the_launcher_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert RankInfo.from_environment() == RankInfo(1, 2, 1)
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ValueError, match="outside WORLD_SIZE"):
        RankInfo.from_environment()


def test_shares_of_a_batch_are_equal_and_cover_it() -> None:
    shares = [share_of(257, RankInfo(rank, 3, rank)) for rank in range(3)]
    assert shares == [86, 86, 85]
    assert sum(shares) == 257


def test_one_process_agrees_with_itself() -> None:
    agreement = agree(5, checkpoint_requested=True, stop_requested=False)
    assert (agreement.items, agreement.checkpoint_requested, agreement.stop_requested) == (
        5,
        True,
        False,
    )
    assert gather_objects({"a": 1}) == [{"a": 1}]


def test_without_a_process_group_the_shift_is_the_plain_shift() -> None:
    chosen, rejected = torch.tensor([1.0, 3.0]), torch.tensor([-1.0, 1.0])
    distributed, plain = DistributedRewardShift(), RewardShift()
    assert distributed.update(chosen, rejected) == plain.update(chosen, rejected) == 1.0
    assert distributed.skip() == 1.0  # nothing anywhere: the shift stays
    assert distributed.count == 1


def _rank(rank: int, port: int, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        shift = DistributedRewardShift()
        if rank == 0:
            # Rank 0: implicit rewards 1, 3 | -1, 1 (sum 4, count 4); rank 1: 6 | 2 (sum 8, 2).
            first = shift.update(torch.tensor([1.0, 3.0]), torch.tensor([-1.0, 1.0]))
            second = shift.update(torch.tensor([2.0]), torch.tensor([0.0]))
        else:
            first = shift.update(torch.tensor([6.0]), torch.tensor([2.0]))
            second = shift.skip()  # an empty minibatch on this rank
        agreement = agree(3 if rank == 0 else 0, rank == 0, False)
        asked = agreement.checkpoint_requested
        results.put((rank, first, second, shift.count, agreement.items, asked))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_ranks_share_one_shift_and_agree() -> None:
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    port = free_port()
    processes = [context.Process(target=_rank, args=(r, port, results)) for r in range(2)]
    for process in processes:
        process.start()
    outcomes = sorted(results.get(timeout=60) for _ in processes)
    for process in processes:
        process.join(timeout=30)
    # Global mean of the first minibatch: (4 + 8) / 6 = 2; of the second: (2 + 0) / 2 = 1.
    # Running mean of batch means: 2, then (2 + 1) / 2 = 1.5, on both ranks.
    assert outcomes == [(0, 2.0, 1.5, 2, 3, True), (1, 2.0, 1.5, 2, 3, True)]
