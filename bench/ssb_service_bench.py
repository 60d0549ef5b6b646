"""SSB store service benchmark: ingest throughput, Sample latency, snapshot cost.

Three measurements in one process (no broker: the Kafka side is measured by ``bus_bench.py``):

- ingest: serialized ``ScoredEvent`` bytes -> ``decode`` -> ``scored_sample_from_event`` ->
  ``ReplayShard.apply`` (assembly, eq. 6 advantages, MPO pairs), records per second, for
  responses of ``--response-tokens`` tokens in groups of ``--group-size``;
- Sample: a ``BufferService.Sample`` call for a GRPO batch of ``--batch-size`` over gRPC on
  loopback, served from fresh samples and topped up from a full buffer (median latency);
- snapshot: bytes and seconds of ``ShardSnapshots.save`` and ``restore_latest`` to a local
  directory with the buffer holding ``--buffered`` samples.

Prints a markdown section. Run: ``python bench/ssb_service_bench.py [--events 20000]``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np
from hybridrl_services.common.grpc_server import ServiceServer
from hybridrl_services.ssb.scored_events import scored_sample_from_event
from hybridrl_services.ssb.servicer import SERVICE_NAME, BufferServicer

from hybridrl.algo.samples import group_id_for, sample_id_for
from hybridrl.bus.codec import decode
from hybridrl.config.buffer import SSBConfig
from hybridrl.config.service_settings import GrpcServerSettings
from hybridrl.proto.schema import SCHEMA_VERSION
from hybridrl.proto.tensor_codec import tensor_from_array
from hybridrl.proto.v1 import buffer_pb2, buffer_pb2_grpc, common_pb2, events_pb2
from hybridrl.replay import ReplayShard, ShardSettings, ShardSnapshots
from hybridrl.store import LocalObjectStore


def scored_events(count: int, group_size: int, tokens: int, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    events = []
    for number in range(count):
        group, index = divmod(number, group_size)
        prompt = f"prompt-{group}"
        rollout = events_pb2.RolloutEvent(
            schema_version=SCHEMA_VERSION,
            sample_id=sample_id_for(prompt, 0, index),
            group_id=group_id_for(prompt, 0),
            prompt_id=prompt,
            sample_index=index,
            group_size=group_size,
            prompt_token_ids=rng.integers(0, 32_000, 128).tolist(),
            response_token_ids=rng.integers(0, 32_000, tokens).tolist(),
            behaviour_logprobs=tensor_from_array(-rng.random(tokens, dtype=np.float32)),
        )
        reward = float(rng.integers(0, 2))
        events.append(
            events_pb2.ScoredEvent(
                schema_version=SCHEMA_VERSION,
                rollout=rollout,
                reward=common_pb2.RewardParts(rule=reward, total=reward),
            ).SerializeToString()
        )
    return events


def ingest(shard: ReplayShard, events: list[bytes]) -> float:
    started = time.perf_counter()
    for offset, value in enumerate(events):
        sample = scored_sample_from_event(decode(value, events_pb2.ScoredEvent), None)
        shard.apply(sample, "scored", 0, offset, 1.0)
    return time.perf_counter() - started


def sample_latency(shard: ReplayShard, batch_size: int, repeats: int) -> float:
    servicer = BufferServicer(shard, None, max_batch_size=4096, max_wait_s=0.0)
    server = ServiceServer(
        GrpcServerSettings(host="127.0.0.1", port=0, max_workers=2),
        [SERVICE_NAME],
        lambda s: buffer_pb2_grpc.add_BufferServiceServicer_to_server(servicer, s),
    )
    port = server.start()
    timings = []
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = buffer_pb2_grpc.BufferServiceStub(channel)
        for step in range(repeats + 1):
            request = buffer_pb2.SampleRequest(
                schema_version=SCHEMA_VERSION,
                kind=buffer_pb2.BATCH_KIND_GRPO,
                batch_size=batch_size,
                max_staleness=4,
                learner_world_size=1,
                learner_step=step,
            )
            started = time.perf_counter()
            stub.Sample(request, timeout=30)
            timings.append(time.perf_counter() - started)
    server.stop(0)
    return statistics.median(timings[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--response-tokens", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--buffered", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=20)
    arguments = parser.parse_args()

    settings = ShardSettings(buffer=SSBConfig(capacity=arguments.buffered))
    events = scored_events(arguments.events, arguments.group_size, arguments.response_tokens, 0)
    shard = ReplayShard(settings)
    ingest_s = ingest(shard, events)
    latency_s = sample_latency(shard, arguments.batch_size, arguments.repeats)
    # Fill the buffer: serve everything once, then one more step releases it into the buffer.
    step = arguments.repeats + 1
    while shard.stats().fresh_queued:
        shard.next_grpo_batch(4096, 0, 4, 0, 1, step)
        step += 1
    shard.next_grpo_batch(1, 0, 4, 0, 1, step)
    buffered = shard.stats().buffer
    with tempfile.TemporaryDirectory() as directory:
        snapshots = ShardSnapshots.for_shard(LocalObjectStore(Path(directory)), "bench")
        started = time.perf_counter()
        snapshots.save(shard.snapshot())
        save_s = time.perf_counter() - started
        size = sum(p.stat().st_size for p in Path(directory).rglob("state.pkl"))
        started = time.perf_counter()
        snapshots.restore_latest(settings)
        restore_s = time.perf_counter() - started

    print("### SSB store service\n")
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {datetime.date.today().isoformat()}\n"
    )
    print("| measurement | value |\n| --- | --- |")
    print(
        f"| ingest ({arguments.events} events, {arguments.response_tokens} tokens, "
        f"groups of {arguments.group_size}) | {arguments.events / ingest_s:,.0f} events/s |"
    )
    print(f"| Sample, GRPO batch of {arguments.batch_size}, median | {latency_s * 1e3:.1f} ms |")
    print(
        f"| snapshot with {buffered.size if buffered else 0} buffered samples | "
        f"{size / 2**20:.1f} MiB, save {save_s:.2f} s, restore {restore_s:.2f} s |"
    )


if __name__ == "__main__":
    main()
