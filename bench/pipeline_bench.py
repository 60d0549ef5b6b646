"""Throughput of each stage, and the platform's overhead over the model's own compute.

Starts a Kafka-protocol broker and an S3 server, then the rollout, reward and SSB services as
separate processes (``hybridrl serve``), publishes ``--prompts`` synthetic task prompts with
group size ``--group-size`` and waits until the SSB has assembled every group. It reports:

- per stage (rollouts, scored): events, events/s and MB/s, from the Kafka record timestamps of
  the first and last event the stage produced;
- end to end: seconds from the first prompt published to the last group assembled;
- the model's own compute: the same prompts through ``TransformersEngine.generate`` in this
  process, with the same batch size, sampling and thread count as the rollout worker;
- overhead = (end to end - model compute) / model compute: what Kafka, gRPC, serialisation,
  scoring and group assembly add to a rollout's cost (target: under 10%). Scoring overlaps
  generation, so only the last batch's scoring adds to the end-to-end time.

Run: ``python bench/pipeline_bench.py [--prompts 48] [--group-size 8] [--max-new-tokens 32]``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import grpc
import torch
import yaml

from hybridrl.bus.producer import EventProducer
from hybridrl.bus.reader import read_all
from hybridrl.bus.topics import Topics, create_topics, default_topic_specs
from hybridrl.config.kafka import KafkaSettings
from hybridrl.engines.base import GenerationRequest
from hybridrl.engines.cpu import TransformersEngine
from hybridrl.local import ChildProcess, LocalKafkaBroker, free_port, grpc_serving
from hybridrl.proto.schema import SCHEMA_VERSION
from hybridrl.proto.v1 import buffer_pb2, buffer_pb2_grpc
from hybridrl.rollout import PromptEncoder, RolloutSampling, rollout_seed
from hybridrl.rollout.policy_source import tiny_policy
from hybridrl.rollout.prompts import prompt_event_from_task
from hybridrl.tasks.visual_reasoning import VisualPrompt, generate_prompts

BATCH_PROMPTS = 4
RUN_SEED = 1
WARM_UP = 4


def start_services(
    kafka: KafkaSettings, topics: Topics, directory: Path, max_new_tokens: int
) -> tuple[list[ChildProcess], int]:
    ports = {name: free_port() for name in ("rollout", "reward", "ssb")}
    own: dict[str, dict[str, object]] = {
        "rollout": {
            "sampling": {"max_new_tokens": max_new_tokens, "run_seed": RUN_SEED},
            "engine": {"torch_threads": 1},
            "max_batch_prompts": BATCH_PROMPTS,
            "watch_policy": False,
        },
        "reward": {"rewards": {"pool": {"workers": 1}}},
        "ssb": {"shard": "bench", "max_sample_wait_seconds": 1.0},
    }
    processes = []
    for name, port in ports.items():
        values = {
            "kafka": kafka.model_dump(mode="json", exclude_none=True),
            "topic_prefix": topics.prefix,
            "group_id": f"{topics.prefix}{name}",
            "poll_timeout_seconds": 0.1,
            "grpc": {"host": "127.0.0.1", "port": port, "grace_seconds": 2.0},
            **own[name],
        }
        config = directory / f"{name}.yaml"
        config.write_text(yaml.safe_dump(values))
        process = ChildProcess(
            name,
            [sys.executable, "-m", "hybridrl", "serve", name, "--config", str(config)],
            ready=lambda port=port: grpc_serving(port),
            log_path=directory / f"{name}.log",
            start_timeout=120.0,
        )
        process.start()
        processes.append(process)
    return processes, ports["ssb"]


def publish(
    producer: EventProducer, topics: Topics, prompts: list[VisualPrompt], group_size: int
) -> None:
    for prompt in prompts:
        event = prompt_event_from_task(prompt, group_size)
        producer.send(topics.prompts, event.prompt_id, event)
    producer.flush(30)


def wait_for_groups(port: int, count: int, timeout_s: float = 600.0) -> None:
    deadline = time.perf_counter() + timeout_s
    while groups_seen(port) < count:
        if time.perf_counter() > deadline:
            raise SystemExit(f"the pipeline did not assemble {count} groups in {timeout_s} s")
        time.sleep(0.02)


def groups_seen(port: int) -> int:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stats = buffer_pb2_grpc.BufferServiceStub(channel).Stats(
            buffer_pb2.StatsRequest(schema_version=SCHEMA_VERSION), timeout=5
        )
    return int(stats.groups_seen)


def stage_row(kafka: KafkaSettings, topic: str, name: str) -> str:
    # The warm-up's events come first in each partition; the stage rate is over the timed ones.
    records = [r for r in read_all(kafka, topic, timeout_s=30) if b"warm-" not in (r.key or b"")]
    stamps = [record.timestamp_ms for record in records]
    seconds = max((max(stamps) - min(stamps)) / 1000, 1e-3)
    megabytes = sum(len(record.value or b"") for record in records) / 1e6
    return (
        f"| {name} | {len(records)} | {len(records) / seconds:,.0f} | {megabytes / seconds:.2f} "
        f"| {megabytes * 1e6 / max(len(records), 1):,.0f} |"
    )


def model_compute_seconds(prompts: int, group_size: int, max_new_tokens: int, seed: int) -> float:
    torch.set_num_threads(1)
    policy = tiny_policy(0)
    engine = TransformersEngine(policy.model, policy.tokenizer)
    encoder = PromptEncoder.for_model(policy.tokenizer, policy.config)
    sampling = RolloutSampling(max_new_tokens=max_new_tokens, run_seed=RUN_SEED)
    events = [prompt_event_from_task(p, group_size) for p in generate_prompts(prompts, seed=seed)]
    requests = []
    for event in events:
        inputs = encoder.encode(event.text, event.images)
        options = sampling.options(group_size, rollout_seed(RUN_SEED, event.prompt_id, 0))
        requests.append(
            GenerationRequest(event.prompt_id, inputs.token_ids, inputs.pixel_values, options)
        )
    started = time.perf_counter()
    for first in range(0, len(requests), BATCH_PROMPTS):
        engine.generate(requests[first : first + BATCH_PROMPTS])
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=48)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch, LocalKafkaBroker(Path(scratch)) as broker:
        directory = Path(scratch)
        kafka = KafkaSettings(
            bootstrap_servers=broker.bootstrap_servers,
            client_id="pipeline-bench",
            session_timeout_ms=6_000,
            heartbeat_interval_ms=500,
            linger_ms=1,
        )
        topics = Topics("bench.")
        create_topics(kafka, default_topic_specs(topics, partitions=2))
        processes, ssb_port = start_services(kafka, topics, directory, args.max_new_tokens)
        try:
            producer = EventProducer(kafka)
            # Warm-up: consumer groups join and every process loads its code before timing.
            publish(
                producer,
                topics,
                generate_prompts(WARM_UP, seed=args.seed + 1, split="warm"),
                args.group_size,
            )
            wait_for_groups(ssb_port, WARM_UP)
            started = time.perf_counter()
            publish(
                producer, topics, generate_prompts(args.prompts, seed=args.seed), args.group_size
            )
            wait_for_groups(ssb_port, WARM_UP + args.prompts)
            end_to_end = time.perf_counter() - started
            producer.close(5)
            rows = [
                stage_row(kafka, topics.rollouts, "rollout -> hybridrl.rollouts"),
                stage_row(kafka, topics.scored, "reward -> hybridrl.scored"),
            ]
        finally:
            for process in reversed(processes):
                process.stop(grace=10.0)
    compute = model_compute_seconds(args.prompts, args.group_size, args.max_new_tokens, args.seed)

    samples = args.prompts * args.group_size
    print(f"# Pipeline benchmark, {datetime.date.today().isoformat()}")
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs; Python "
        f"{platform.python_version()}, torch {torch.__version__}"
    )
    print(
        f"{args.prompts} prompts x {args.group_size} responses, up to {args.max_new_tokens} new "
        f"tokens, tiny model, CPU engine on 1 thread, {BATCH_PROMPTS} prompts per batch\n"
    )
    print("| stage | events | events/s | MB/s | bytes/event |")
    print("| --- | ---: | ---: | ---: | ---: |")
    print("\n".join(rows))
    print()
    print("| path | seconds | samples/s |")
    print("| --- | ---: | ---: |")
    print(f"| model compute alone (engine.generate) | {compute:.2f} | {samples / compute:,.0f} |")
    print(
        f"| end to end (prompts topic to SSB groups) | {end_to_end:.2f} "
        f"| {samples / end_to_end:,.0f} |"
    )
    print(
        f"\nPlatform overhead over the model's compute: "
        f"{100 * (end_to_end - compute) / compute:+.1f} % (target: under 10 %)."
    )


if __name__ == "__main__":
    main()
