"""A shortened training run of the whole platform: real broker, real S3 server, rollout, reward
and SSB services as processes, and a 2-rank DeepSpeed learner under torchrun.

It checks what the demo promises on a budget CI can afford: the rule reward (correct answers)
of the rollouts rises over the GRPO steps, and a learner killed with SIGKILL between two
checkpoints comes back, resumes from the newest complete checkpoint, publishes a newer policy
version than any before, and finishes the run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from hybridrl.config.learner import LearnerConfig
from hybridrl.local.stack import SERVICES, LocalStack, LocalStackConfig
from hybridrl.local.training_run import PromptFeeder, prepare_base_policy, service_settings
from hybridrl.proto.schema import SCHEMA_VERSION
from hybridrl.proto.v1 import learner_pb2, learner_pb2_grpc
from hybridrl.store.checkpoints import CheckpointStore
from hybridrl.store.uris import open_object_store

pytestmark = pytest.mark.slow

MPO_STEPS = 3
GRPO_STEPS = 200
CHECKPOINT_EVERY = 10
KILL_AFTER_STEP = 16


def _status(port: int) -> learner_pb2.StatusResponse | None:
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = learner_pb2_grpc.LearnerServiceStub(channel)
            response: learner_pb2.StatusResponse = stub.Status(
                learner_pb2.StatusRequest(schema_version=SCHEMA_VERSION), timeout=5
            )
            return response
    except grpc.RpcError:
        return None


def _run_until(stack: LocalStack, feeder: PromptFeeder, done: Any, timeout_s: float) -> None:
    learner = stack.services["learner"]
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, learner.log_tail(60)
        assert learner.exit_code in (None, 0), learner.log_tail(60)
        status = _status(stack.ports["learner"])
        if status is not None:
            feeder.feed(int(status.step))
        time.sleep(0.5)


def _metrics(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_a_short_run_learns_and_a_killed_learner_resumes(tmp_path: Path) -> None:
    # The demo's recipe, shortened; a constant rate, since the cosine of a short phase would
    # spend half of it at a fraction of the rate the demo learns at.
    config = LearnerConfig(
        mpo_steps=MPO_STEPS, grpo_steps=GRPO_STEPS, eval_prompts=50, lr_schedule="constant"
    )
    metrics_file = tmp_path / "metrics.jsonl"
    stack = LocalStack(tmp_path, LocalStackConfig())
    run_uri = f"s3://{stack.config.bucket}/runs/ci"
    try:
        stack.start_backends()
        base = prepare_base_policy(config, run_uri, stack.object_store)
        overrides = service_settings(config, base.uri, run_name="ci", metrics_file=metrics_file)
        overrides["learner"]["checkpoints"] = {"every_steps": CHECKPOINT_EVERY}
        for name in SERVICES:
            stack.start_service(name, overrides[name])
        stack.start_learner(2, overrides["learner"])
        feeder = PromptFeeder(stack, config)
        try:
            _run_until(
                stack,
                feeder,
                lambda: (s := _status(stack.ports["learner"])) and s.step >= KILL_AFTER_STEP,
                timeout_s=600,
            )
            stack.services["learner"].kill()
            versions_before_kill = _published_versions(stack, run_uri)
            stack.start_learner(2, overrides["learner"])
            resumed = _status(stack.ports["learner"])
            assert resumed is not None
            # The newest complete checkpoint was taken at a multiple of CHECKPOINT_EVERY.
            assert resumed.step == (KILL_AFTER_STEP // CHECKPOINT_EVERY) * CHECKPOINT_EVERY
            assert resumed.last_checkpoint_uri.endswith(f"step-{resumed.step:09d}/")
            assert resumed.policy_version > max(versions_before_kill)
            _run_until(stack, feeder, lambda: stack.services["learner"].exit_code == 0, 900)
        finally:
            feeder.close()
    finally:
        stack.stop()
    records = _metrics(metrics_file)
    grpo = [r for r in records if r["phase"] == "grpo"]
    assert max(r["step"] for r in records) == MPO_STEPS + GRPO_STEPS - 1
    assert all(r["samples"] > 0 for r in records)
    first = np.mean([r["reward_rule"] for r in grpo[:20]])
    last = np.mean([r["reward_rule"] for r in grpo[-20:]])
    assert last > first + 0.08, (first, last)


def _published_versions(stack: LocalStack, run_uri: str) -> list[int]:
    store = CheckpointStore(open_object_store(run_uri, stack.object_store), "policy")
    return [ref.step for ref in store.list()]
