"""Resumable checkpoints of two real DeepSpeed ranks (gloo, CPU): every rank uploads its own
files, rank 0 commits; a new pair of engines resumes weights, optimizer state and learner
state exactly; the checkpoint doubles as a policy checkpoint; a half-written one is ignored."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path
from typing import Any

import pytest

from hybridrl.local.child_process import free_port

pytestmark = pytest.mark.slow


def _engine(seed: int) -> tuple[Any, Any]:
    import deepspeed  # type: ignore[import-untyped]
    import torch

    from hybridrl.learner.rollouts import tiny_model_config
    from hybridrl.models.freezing import apply_freeze_mode
    from hybridrl.models.tokenizer import build_tokenizer
    from hybridrl.models.vlm import VisionLanguageModel

    torch.manual_seed(seed)
    model = VisionLanguageModel(tiny_model_config(build_tokenizer(), 0.2))
    apply_freeze_mode(model, "adapter")
    engine, *_ = deepspeed.initialize(
        model=model,
        model_parameters=[p for p in model.parameters() if p.requires_grad],
        config={
            "train_micro_batch_size_per_gpu": 1,
            "zero_optimization": {"stage": 2},
            "optimizer": {"type": "AdamW", "params": {"lr": 1e-2, "torch_adam": True}},
            "steps_per_print": 2**31 - 1,
        },
    )
    return engine, model


def _rank(rank: int, port: int, root: str, results: Any) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE="2",
        LOCAL_RANK=str(rank),
        DS_ACCELERATOR="cpu",
        OMP_NUM_THREADS="1",
    )
    import deepspeed
    import torch
    import torch.distributed as dist
    from hybridrl_services.learner.checkpointing import LearnerCheckpoints, LearnerState
    from hybridrl_services.learner.distributed import RankInfo

    from hybridrl.models.policy_checkpoint import load_policy_state

    torch.set_num_threads(1)
    deepspeed.init_distributed(dist_backend="gloo")
    try:
        info = RankInfo(rank, 2, rank)
        checkpoints = LearnerCheckpoints(
            f"{root}/run", None, info, Path(root) / "scratch", keep_last=2, keep_policies=5
        )
        engine, model = _engine(seed=0)
        for _ in range(2):  # two AdamW steps, so that the optimizer has state to restore
            loss = sum(p.square().sum() for p in model.parameters() if p.requires_grad)
            engine.backward(loss)
            engine.step()
        state = LearnerState(7, 9, {"mean": 0.25, "count": 3, "decay": None}, [["t", 0, 42]])
        ref = checkpoints.save(engine, model, "adapter", state)
        # A later save that dies before its manifest: rank 0 uploads a file, nobody commits.
        if rank == 0:
            checkpoints.learner_store.write_shard(8, "policy.safetensors", b"half")
        dist.barrier()
        saved = {k: v.clone() for k, v in model.state_dict().items()}
        saved_optimizer = engine.optimizer.state_dict()
        fresh_engine, fresh_model = _engine(seed=1)
        resumed = checkpoints.resume(fresh_engine)
        assert resumed is not None
        same_weights = all(torch.equal(saved[k], v) for k, v in fresh_model.state_dict().items())
        restored = fresh_engine.optimizer.state_dict()
        same_steps = str(restored["base_optimizer_state"]) == str(
            saved_optimizer["base_optimizer_state"]
        )
        policy = None
        if rank == 0:
            assert ref is not None
            weights, metadata = load_policy_state(checkpoints.learner_store, ref)
            policy = (sorted(weights)[:1], metadata.policy_version, metadata.weights)
        results.put((rank, resumed.state, resumed.ref.step, same_weights, same_steps, policy))
    finally:
        dist.destroy_process_group()


def test_two_ranks_checkpoint_and_resume_exactly(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    port = free_port()
    processes = [
        context.Process(target=_rank, args=(rank, port, str(tmp_path), results))
        for rank in range(2)
    ]
    for process in processes:
        process.start()
    outcomes = sorted((results.get(timeout=240) for _ in processes), key=lambda item: item[0])
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    for rank, state, step, same_weights, same_optimizer, _ in outcomes:
        assert step == 7, rank  # the half-written step 8 is invisible
        assert (state.step, state.policy_version) == (7, 9)
        assert state.reward_shift == {"mean": 0.25, "count": 3, "decay": None}
        assert state.ssb_offsets == [["t", 0, 42]]
        assert same_weights
        assert same_optimizer
    _, _, _, _, _, policy = outcomes[0]
    assert policy == (["adapter.input_projection.bias"], 9, "adapter")
    files = sorted(
        path.relative_to(tmp_path / "run" / "learner" / "step-000000007").as_posix()
        for path in (tmp_path / "run" / "learner" / "step-000000007").rglob("*")
        if path.is_file()
    )
    assert files == [
        "deepspeed/step-000000007/mp_rank_00_model_states.pt",
        "deepspeed/step-000000007/zero_pp_rank_0_mp_rank_00_optim_states.pt",
        "deepspeed/step-000000007/zero_pp_rank_1_mp_rank_00_optim_states.pt",
        "manifest.json",
        "policy.safetensors",
    ]
