"""Reward service benchmark: HybridScorer throughput and gRPC Score/ScoreBatch latency.

Measured in one process (no broker: the Kafka side is measured by ``bus_bench.py``):

- scorer: ``HybridScorer.score`` on batches of ``--batch-size`` items (a mix of right, wrong,
  unanswered and symbolic answers) through a ``RuleScorerPool`` of ``--workers`` processes,
  without a reward model and with the tiny one, in items per second. The mix repeats, so each
  worker's parse cache is warm: this measures the service's overhead around the checks more
  than math-verify itself (``rule_reward_bench.py`` does that);
- gRPC: ``RewardService.Score`` (one item) and ``ScoreBatch`` (``--batch-size`` items) on
  loopback without a reward model, median and 95th-percentile latency.

Prints a markdown section. Run: ``python bench/reward_service_bench.py [--batches 20]``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time
from collections.abc import Callable

import grpc
import torch
from hybridrl_services.common.grpc_server import ServiceServer
from hybridrl_services.reward.messages import PromptImages
from hybridrl_services.reward.reward_model_source import tiny_reward_model
from hybridrl_services.reward.servicer import SERVICE_NAME, RewardServicer

from hybridrl.config.rewards import RewardsConfig, ScorerPoolConfig
from hybridrl.config.service_settings import GrpcServerSettings
from hybridrl.proto.schema import SCHEMA_VERSION
from hybridrl.proto.v1 import common_pb2, reward_pb2, reward_pb2_grpc
from hybridrl.rewards.reward_model import RewardModel
from hybridrl.rewards.scoring import HybridScorer, ScoringItem

MIX = [
    ("<think>2 plus 3 is 5</think> The answer is \\boxed{5}", "5"),
    ("<think>a guess</think> \\boxed{6}", "5"),
    ("<think>hmm</think> I am not sure.", "5"),
    ("<think>expand</think> \\boxed{(x+1)^2}", "x^2+2x+1"),
    ("<think>simplify</think> \\boxed{2\\sqrt{2}}", "\\sqrt{8}"),
    ("<think>count</think> 答案是 C", "C"),
]


def items(count: int) -> list[ScoringItem]:
    return [
        ScoringItem(MIX[number % len(MIX)][0], MIX[number % len(MIX)][1], f"Question {number}?")
        for number in range(count)
    ]


def scorer_throughput(
    config: RewardsConfig, model: RewardModel | None, batch_size: int, batches: int
) -> float:
    with HybridScorer.with_pool(config, reward_model=model) as scorer:
        scorer.score(items(batch_size))  # warm-up: sympy caches, first forward pass
        started = time.perf_counter()
        for _ in range(batches):
            scorer.score(items(batch_size))
        return batch_size * batches / (time.perf_counter() - started)


def grpc_latencies(
    config: RewardsConfig, batch_size: int, repeats: int
) -> tuple[list[float], list[float]]:
    with HybridScorer.with_pool(config) as scorer:
        servicer = RewardServicer(
            scorer,
            PromptImages(lambda uri: b"", decode=False),
            max_batch_items=max(batch_size, 1),
            max_text_chars=10_000,
        )
        server = ServiceServer(
            GrpcServerSettings(host="127.0.0.1", port=0),
            [SERVICE_NAME],
            lambda grpc_server: reward_pb2_grpc.add_RewardServiceServicer_to_server(
                servicer, grpc_server
            ),
        )
        port = server.start()
        messages = [
            reward_pb2.ScoringItem(
                prompt_text=item.prompt,
                response_text=item.response,
                reference_answer=item.gold,
                task_kind=common_pb2.TASK_KIND_MATH,
            )
            for item in items(batch_size)
        ]
        single = reward_pb2.ScoreRequest(schema_version=SCHEMA_VERSION, item=messages[0])
        batch = reward_pb2.ScoreBatchRequest(schema_version=SCHEMA_VERSION, items=messages)
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = reward_pb2_grpc.RewardServiceStub(channel)
                stub.ScoreBatch(batch, timeout=60)
                return (
                    [timed(lambda: stub.Score(single, timeout=60)) for _ in range(repeats)],
                    [timed(lambda: stub.ScoreBatch(batch, timeout=60)) for _ in range(repeats)],
                )
        finally:
            server.stop(0)


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=50)
    arguments = parser.parse_args()
    torch.set_num_threads(1)
    config = RewardsConfig(pool=ScorerPoolConfig(workers=arguments.workers))
    rule_only = scorer_throughput(config, None, arguments.batch_size, arguments.batches)
    with_model = scorer_throughput(
        config, tiny_reward_model(seed=0), arguments.batch_size, arguments.batches
    )
    single, batched = grpc_latencies(config, arguments.batch_size, arguments.repeats)

    print("### Reward service\n")
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {datetime.date.today().isoformat()}\n"
    )
    print("| measurement | value |\n| --- | --- |")
    print(
        f"| HybridScorer, rule + format, {arguments.workers} rule workers, batches of "
        f"{arguments.batch_size} | {rule_only:,.0f} items/s |"
    )
    print(f"| HybridScorer, rule + format + tiny reward model | {with_model:,.0f} items/s |")
    for name, latencies in (
        ("Score, 1 item", single),
        (f"ScoreBatch, {arguments.batch_size}", batched),
    ):
        print(
            f"| gRPC {name}, median / p95 | {statistics.median(latencies) * 1e3:.1f} / "
            f"{percentile(latencies, 0.95) * 1e3:.1f} ms |"
        )


if __name__ == "__main__":
    main()
