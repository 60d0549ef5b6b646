"""``hybridrl demo``: train the tiny vision-language model on this machine, end to end.

Starts a Kafka-protocol broker and an S3 server as child processes, warms the tiny model up
(its held-out accuracy is the "before"), starts rollout, reward and SSB services and a 2-rank
DeepSpeed learner as separate processes, feeds synthetic visual prompts and shows the run
live: step, phase, reward and its parts, effective-sample ratio, buffer size, policy version,
samples/s. At the end it evaluates the published policies on held-out prompts and writes the
report (PNG plots and ``summary.json``) into the run directory, with every process's log.
Ctrl-C stops every child process cleanly. ``--no-ssb`` runs the same without the Selective
Sample Buffer, for the ablation.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import grpc
import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from hybridrl.config.learner import LearnerConfig
from hybridrl.local.stack import SERVICES, LocalStack, LocalStackConfig
from hybridrl.local.training_run import (
    PromptFeeder,
    append_jsonl,
    evaluate_published_policies,
    policy_propagation,
    prepare_base_policy,
    service_settings,
)
from hybridrl.proto.schema import SCHEMA_VERSION
from hybridrl.proto.v1 import buffer_pb2, buffer_pb2_grpc, learner_pb2, learner_pb2_grpc
from hybridrl.report import write_report

ACCURACY_GAIN_TARGET = 0.4
"""The held-out accuracy gain the demo is expected to show (issue measure)."""


def demo(
    no_ssb: Annotated[
        bool, typer.Option("--no-ssb", help="Disable the Selective Sample Buffer (ablation).")
    ] = False,
    mpo_steps: Annotated[int | None, typer.Option(min=0, help="MPO phase steps.")] = None,
    grpo_steps: Annotated[int | None, typer.Option(min=0, help="GRPO phase steps.")] = None,
    learner_ranks: Annotated[int, typer.Option(min=1, help="DeepSpeed ranks.")] = 2,
    rollout_workers: Annotated[
        int, typer.Option(min=1, max=2, help="Rollout worker processes (one per partition).")
    ] = 1,
    seed: Annotated[int, typer.Option(min=0, help="Seed of weights and sampling.")] = 0,
    eval_every: Annotated[
        int, typer.Option(min=1, help="Evaluate every this many published policies.")
    ] = 20,
    run_dir: Annotated[
        Path | None, typer.Option(help="Where configs, logs, metrics and the report go.")
    ] = None,
    timeout_minutes: Annotated[float, typer.Option(help="Give up after this long.")] = 30.0,
) -> None:
    """Train the tiny model with MPO then GRPO (+ SSB) locally and report what it learnt."""
    console = Console()
    directory = run_dir or Path("runs") / datetime.now(UTC).strftime("demo-%Y%m%d-%H%M%S")
    directory = directory.absolute()
    directory.mkdir(parents=True, exist_ok=True)
    defaults = LearnerConfig()
    config = LearnerConfig(
        seed=seed,
        mpo_steps=defaults.mpo_steps if mpo_steps is None else mpo_steps,
        grpo_steps=defaults.grpo_steps if grpo_steps is None else grpo_steps,
        ssb=defaults.ssb.model_copy(update={"enabled": not no_ssb}),
    )
    (directory / "run_config.json").write_text(config.model_dump_json(indent=2))
    stack = LocalStack(directory, LocalStackConfig())
    run_name = directory.name
    run_uri = f"s3://{stack.config.bucket}/runs/{run_name}"
    summary: dict[str, Any] = {
        "run_dir": str(directory),
        "ssb": not no_ssb,
        "learner_ranks": learner_ranks,
        "rollout_workers": rollout_workers,
        "complete": False,
    }
    console.print(f"[bold]hybridrl demo[/] run directory: {directory}")
    try:
        with console.status("starting the broker and the S3 server"):
            stack.start_backends()
        with console.status(f"supervised warm-up: {config.warmup.steps} steps"):
            base = prepare_base_policy(config, run_uri, stack.object_store)
        summary["warmup"] = {
            "steps": config.warmup.steps,
            "images": config.warmup.images,
            "seconds": round(base.warmup_seconds, 1),
            "final_loss": base.warmup_losses[-1] if base.warmup_losses else None,
            "note": "accuracy_before is measured after this warm-up; the gain is the RL phases'",
        }
        summary["task_kinds"] = list(config.task_kinds)
        before = {"label": "before", "step": 0, **asdict(base.before)}
        (directory / "evaluations.jsonl").unlink(missing_ok=True)
        append_jsonl(directory / "evaluations.jsonl", [before])
        console.print(
            f"warm-up done in {base.warmup_seconds:.0f} s (loss {base.warmup_losses[-1]:.3f}); "
            f"held-out accuracy before RL: [bold]{base.before.accuracy:.3f}[/]"
        )
        overrides = service_settings(
            config, base.uri, run_name=run_name, metrics_file=directory / "metrics.jsonl"
        )
        with console.status("starting rollout, reward and ssb services"):
            for name in SERVICES:
                stack.start_service(name, overrides[name])
            for worker in range(2, rollout_workers + 1):
                stack.start_service("rollout", overrides["rollout"], instance=f"rollout-{worker}")
        with console.status(f"starting the learner: {learner_ranks} DeepSpeed ranks"):
            learner = stack.start_learner(learner_ranks, overrides["learner"])
        started = time.monotonic()
        code = _follow(stack, config, directory, timeout_minutes * 60, console)
        summary["rl_seconds"] = round(time.monotonic() - started, 1)
        if code != 0:
            console.print(f"[red]the learner exited with {code}[/]; see {learner.log_path}")
            raise typer.Exit(code=1)
        with console.status("stopping the services; evaluating the published policies"):
            stack.stop_services()
            evaluations = evaluate_published_policies(
                config, base.uri, run_uri, stack.object_store, every=eval_every, prompts=100
            )
        append_jsonl(directory / "evaluations.jsonl", evaluations)
        with console.status("measuring policy propagation from the rollouts topic"):
            summary["policy_propagation"] = policy_propagation(stack, run_uri, stack.object_store)
        summary["complete"] = True
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: stopping every child process[/]")
        summary["interrupted"] = True
    finally:
        with console.status("stopping services, S3 server and broker"):
            stack.stop()
    report = write_report(directory, accuracy_target=_target(directory, ACCURACY_GAIN_TARGET))
    report_summary = json.loads((report / "summary.json").read_text())
    summary.update(report_summary)
    (directory / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    _print_summary(console, report_summary)
    console.print(f"report: {report}; logs: {directory / 'logs'}")
    if not summary["complete"]:
        raise typer.Exit(code=1)


def _target(directory: Path, gain: float) -> float | None:
    path = directory / "evaluations.jsonl"
    if not path.exists():
        return None
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if record.get("label") == "before":
            return min(float(record["accuracy"]) + gain, 1.0)
    return None


def _last_metrics(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    lines = path.read_text().splitlines()
    for line in reversed(lines):
        try:
            record: dict[str, Any] = json.loads(line)
            return record
        except json.JSONDecodeError:
            continue
    return {}


def _follow(
    stack: LocalStack,
    config: LearnerConfig,
    directory: Path,
    timeout_seconds: float,
    console: Console,
) -> int:
    """Feed prompts and show progress until the learner exits; its exit code."""
    learner = stack.services["learner"]
    feeder = PromptFeeder(stack, config)
    started = time.monotonic()
    total = config.mpo_steps + config.grpo_steps
    try:
        with (
            grpc.insecure_channel(f"127.0.0.1:{stack.ports['learner']}") as learner_channel,
            grpc.insecure_channel(f"127.0.0.1:{stack.ports['ssb']}") as ssb_channel,
            Live(console=console, refresh_per_second=2) as live,
        ):
            status_stub = learner_pb2_grpc.LearnerServiceStub(learner_channel)
            buffer_stub = buffer_pb2_grpc.BufferServiceStub(ssb_channel)
            status = learner_pb2.StatusResponse()
            stats = buffer_pb2.StatsResponse()
            while learner.exit_code is None:
                if time.monotonic() - started > timeout_seconds:
                    raise TimeoutError(f"the run took longer than {timeout_seconds:.0f} s")
                try:
                    status = status_stub.Status(
                        learner_pb2.StatusRequest(schema_version=SCHEMA_VERSION), timeout=5
                    )
                    stats = buffer_stub.Stats(
                        buffer_pb2.StatsRequest(schema_version=SCHEMA_VERSION), timeout=5
                    )
                except grpc.RpcError:
                    pass  # the learner is finishing; its exit code ends the loop
                feeder.feed(int(status.step))
                metrics = _last_metrics(directory / "metrics.jsonl")
                live.update(_table(status, stats, metrics, total, time.monotonic() - started))
                time.sleep(0.5)
    finally:
        feeder.close()
    return int(learner.exit_code or 0)


def _number(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{float(value):.{digits}f}"


def _table(
    status: learner_pb2.StatusResponse,
    stats: buffer_pb2.StatsResponse,
    metrics: dict[str, Any],
    total: int,
    elapsed: float,
) -> Table:
    phase = learner_pb2.TrainingPhase.Name(status.phase).removeprefix("TRAINING_PHASE_")
    table = Table(title=f"hybridrl demo — {elapsed:5.0f} s")
    table.add_column("statistic")
    table.add_column("value", justify="right")
    table.add_row("step", f"{status.step} / {total} ({phase})")
    table.add_row("policy version", str(status.policy_version))
    table.add_row("mean reward (rule + format)", _number(metrics.get("reward")))
    table.add_row("  rule (correct answer)", _number(metrics.get("reward_rule")))
    table.add_row("  format", _number(metrics.get("reward_format")))
    table.add_row("fresh effective-sample ratio", _number(metrics.get("fresh_effective_ratio")))
    table.add_row("batch fill (SSB keeps it near 1)", _number(metrics.get("batch_fill")))
    table.add_row("SSB buffer size", str(stats.buffer_size))
    dropped = stats.groups_dropped_zero_variance
    table.add_row("groups seen / zero-variance", f"{stats.groups_seen} / {dropped}")
    table.add_row("samples/s", _number(status.samples_per_second, 1))
    table.add_row("last checkpoint", status.last_checkpoint_uri or "-")
    return table


def _print_summary(console: Console, summary: dict[str, Any]) -> None:
    table = Table(title="run summary")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        if isinstance(value, int | float | str) or value is None:
            table.add_row(key, _number(value) if isinstance(value, float) else str(value))
    console.print(table)
