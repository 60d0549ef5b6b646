"""``hybridrl demo``: the loop on this machine, with live statistics.

Starts a ``LocalStack`` (broker, S3 server, rollout, reward and SSB services as child
processes), publishes synthetic visual reasoning prompts, and shows what the SSB store sees
while the groups flow through: groups assembled, the effective-sample ratio of eq. 6 (groups
with reward variance), duplicates dropped, samples per second. It writes ``summary.json`` and
keeps every process's log in the run directory; Ctrl-C stops every child process cleanly.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import grpc
import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from hybridrl.bus.producer import EventProducer
from hybridrl.local.stack import LocalStack, LocalStackConfig
from hybridrl.proto.schema import SCHEMA_VERSION
from hybridrl.proto.v1 import buffer_pb2, buffer_pb2_grpc
from hybridrl.rollout.prompts import prompt_event_from_task
from hybridrl.tasks.visual_reasoning import generate_prompts


def demo(
    prompts: Annotated[int, typer.Option(min=1, help="Synthetic prompts to publish.")] = 64,
    group_size: Annotated[int, typer.Option(min=2, help="Responses per prompt (N).")] = 8,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Longest response.")] = 32,
    reward_model: Annotated[str, typer.Option(help="'tiny' or 'none' (rule + format only).")] = (
        "tiny"
    ),
    run_dir: Annotated[
        Path | None, typer.Option(help="Where configs, logs and summary.json go.")
    ] = None,
    timeout_seconds: Annotated[float, typer.Option(help="Give up after this long.")] = 600.0,
) -> None:
    """Run broker, S3 server and the services locally and stream the synthetic task through."""
    console = Console()
    directory = run_dir or Path("runs") / datetime.now(UTC).strftime("demo-%Y%m%d-%H%M%S")
    directory.mkdir(parents=True, exist_ok=True)
    config = LocalStackConfig(
        services={
            "rollout": {
                "sampling": {"max_new_tokens": max_new_tokens, "run_seed": 1},
                "engine": {"torch_threads": 1},
                "max_batch_prompts": 4,
                "poll_timeout_seconds": 0.2,
            },
            "reward": {
                "rewards": {"pool": {"workers": 1}},
                "reward_model": {"source": reward_model},
                "poll_timeout_seconds": 0.2,
            },
            "ssb": {"shard": "local", "poll_timeout_seconds": 0.2},
        }
    )
    stack = LocalStack(directory, config)
    console.print(f"[bold]hybridrl demo[/] run directory: {directory}")
    summary: dict[str, Any] = {"prompts": prompts, "group_size": group_size, "complete": False}
    try:
        with console.status("starting broker, S3 server, rollout, reward and ssb services"):
            stack.start()
        console.print(f"services up: {', '.join(f'{n}:{p}' for n, p in stack.ports.items())}")
        _publish(stack, prompts, group_size)
        summary.update(_follow(stack, prompts, group_size, timeout_seconds, console))
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: stopping every child process[/]")
        summary["interrupted"] = True
    finally:
        with console.status("stopping services, S3 server and broker"):
            stack.stop()
    (directory / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    console.print(f"summary: {directory / 'summary.json'}; logs: {directory / 'logs'}")
    if not summary["complete"]:
        raise typer.Exit(code=1)


def _publish(stack: LocalStack, prompts: int, group_size: int) -> None:
    producer = EventProducer(stack.kafka)
    try:
        for prompt in generate_prompts(prompts, seed=0):
            event = prompt_event_from_task(prompt, group_size)
            producer.send(stack.topics.prompts, event.prompt_id, event)
        producer.flush(30)
    finally:
        producer.close(5)


def _follow(
    stack: LocalStack, prompts: int, group_size: int, timeout_seconds: float, console: Console
) -> dict[str, Any]:
    started = time.monotonic()
    stats = buffer_pb2.StatsResponse()
    with (
        grpc.insecure_channel(f"127.0.0.1:{stack.ports['ssb']}") as channel,
        Live(console=console, refresh_per_second=4) as live,
    ):
        buffer = buffer_pb2_grpc.BufferServiceStub(channel)
        while time.monotonic() - started < timeout_seconds:
            stats = buffer.Stats(buffer_pb2.StatsRequest(schema_version=SCHEMA_VERSION), timeout=5)
            elapsed = time.monotonic() - started
            live.update(_table(stats, prompts, group_size, elapsed))
            if stats.groups_seen >= prompts:
                break
            time.sleep(0.25)
    elapsed = time.monotonic() - started
    return {
        "complete": stats.groups_seen >= prompts,
        "seconds": round(elapsed, 3),
        "groups_seen": stats.groups_seen,
        "groups_dropped_zero_variance": stats.groups_dropped_zero_variance,
        "effective_sample_ratio": stats.effective_sample_ratio,
        "duplicates_dropped": stats.duplicates_dropped,
        "samples_per_second": round(stats.groups_seen * group_size / max(elapsed, 1e-9), 1),
    }


def _table(stats: buffer_pb2.StatsResponse, prompts: int, group_size: int, elapsed: float) -> Table:
    table = Table(title=f"hybridrl demo — {elapsed:5.1f} s")
    table.add_column("statistic")
    table.add_column("value", justify="right")
    table.add_row("groups assembled", f"{stats.groups_seen} / {prompts}")
    table.add_row("zero-variance groups dropped", str(stats.groups_dropped_zero_variance))
    table.add_row("effective-sample ratio (eq. 6)", f"{stats.effective_sample_ratio:.2f}")
    table.add_row("duplicates dropped", str(stats.duplicates_dropped))
    table.add_row("newest policy version", str(stats.newest_policy_version))
    table.add_row("samples/s", f"{stats.groups_seen * group_size / max(elapsed, 1e-9):.1f}")
    return table
