"""Rollout worker benchmark: what the worker adds around the engine, and what a policy update costs.

Two measurements on the tiny untrained policy (``VisionLanguageModelConfig.tiny``), one torch
thread, in one process (no broker: the Kafka side is measured by ``bus_bench.py``):

- worker overhead: ``RolloutWorker.rollout`` on ``--prompts`` synthetic prompt events (PNG
  images inline) with group size ``--group-size``, against the bare ``TransformersEngine.generate``
  call on the same, already laid-out requests. The difference is prompt layout, PNG decoding,
  seeding, and building the ``RolloutEvent``s (log-probs as Tensor messages).
- policy update: bytes of the checkpoint ``save_policy`` writes in adapter-only and in full mode,
  and the time of ``PolicyUpdater.offer`` (read, verify digests, parse safetensors) and
  ``apply_pending`` (copy into the engine), through a local-directory object store.

Each time is the median of ``--repeats`` runs after one warm-up. Prints a markdown section.
Run: ``python bench/rollout_service_bench.py [--prompts 16 --group-size 8 --new-tokens 32]``.
"""

import argparse
import datetime
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from hybridrl.engines.base import GenerationRequest
from hybridrl.engines.cpu import TransformersEngine
from hybridrl.models.policy_checkpoint import POLICY_WEIGHTS_FILE, save_policy
from hybridrl.models.vlm_config import FreezeMode
from hybridrl.rollout import (
    PolicyUpdater,
    PromptEncoder,
    RolloutSampling,
    RolloutWorker,
    policy_version_event,
    prompt_event_from_task,
    rollout_seed,
    tiny_policy,
)
from hybridrl.store import CheckpointStore, LocalObjectStore
from hybridrl.tasks.visual_reasoning import generate_prompts


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    run()
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def worker_overhead(prompts: int, group_size: int, new_tokens: int, repeats: int) -> list[str]:
    policy = tiny_policy(0)
    engine = TransformersEngine(policy.model, policy.tokenizer)
    encoder = PromptEncoder.for_model(policy.tokenizer, policy.config)
    sampling = RolloutSampling(max_new_tokens=new_tokens, run_seed=1)
    worker = RolloutWorker(engine, encoder, sampling, fits=lambda event, key: True)
    events = [prompt_event_from_task(p, group_size) for p in generate_prompts(prompts, seed=0)]
    requests = []
    for index, event in enumerate(events):
        inputs = encoder.encode(event.text, event.images)
        seed = rollout_seed(1, event.prompt_id, 0)
        options = sampling.options(group_size, seed)
        requests.append(
            GenerationRequest(str(index), inputs.token_ids, inputs.pixel_values, options)
        )
    engine_s = median_seconds(lambda: engine.generate(requests), repeats)
    worker_s = median_seconds(lambda: worker.rollout(events), repeats)
    responses = prompts * group_size
    return [
        "| path | median s | responses/s |",
        "| --- | ---: | ---: |",
        f"| engine.generate | {engine_s:.3f} | {responses / engine_s:.0f} |",
        f"| RolloutWorker.rollout | {worker_s:.3f} | {responses / worker_s:.0f} |",
        "",
        f"Worker overhead: {100 * (worker_s - engine_s) / engine_s:+.1f} % "
        f"({prompts} prompts x {group_size} responses, up to {new_tokens} tokens).",
    ]


def policy_updates(repeats: int, directory: Path) -> list[str]:
    rows = [
        "| mode | policy.safetensors bytes | offer (read + verify) ms | apply ms |",
        "| --- | ---: | ---: | ---: |",
    ]
    source = tiny_policy(1).model
    modes: tuple[FreezeMode, ...] = ("adapter", "full")
    for step, mode in enumerate(modes, start=1):
        checkpoints = CheckpointStore(LocalObjectStore(directory), f"bench-{mode}")
        ref = save_policy(checkpoints, step, source, mode, step)
        event = policy_version_event(checkpoints, ref, mode, step)
        size = (directory / ref.key / POLICY_WEIGHTS_FILE).stat().st_size
        offers, applies = [], []
        for _ in range(repeats + 1):
            policy = tiny_policy(0)
            updater = PolicyUpdater(TransformersEngine(policy.model, policy.tokenizer))
            started = time.perf_counter()
            assert updater.offer(event)
            offered = time.perf_counter()
            assert updater.apply_pending() == step
            offers.append(offered - started)
            applies.append(time.perf_counter() - offered)
        rows.append(
            f"| {mode} | {size:,} | {1000 * statistics.median(offers[1:]):.2f} "
            f"| {1000 * statistics.median(applies[1:]):.2f} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    arguments = parser.parse_args()
    torch.set_num_threads(1)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
    print(f"Machine: {machine}, 1 torch thread; {datetime.date.today().isoformat()}.\n")
    print("### Worker overhead around the engine\n")
    overhead = worker_overhead(
        arguments.prompts, arguments.group_size, arguments.new_tokens, arguments.repeats
    )
    print("\n".join(overhead))
    print("\n### Policy update, tiny model, local object store\n")
    with tempfile.TemporaryDirectory() as directory:
        print("\n".join(policy_updates(arguments.repeats, Path(directory))))


if __name__ == "__main__":
    main()
