"""Learning benchmark: does the tiny policy learn the synthetic task with MPO then GRPO + SSB?

Runs ``SynchronousTrainer`` end to end with the tuned ``LearnerConfig`` (its defaults) once with
the Selective Sample Buffer and once without, for each seed: supervised warm-up on blank
images, held-out greedy accuracy ("before"), the MPO phase, the GRPO phase, held-out accuracy
again ("after"). Prints a markdown table:

- before / after / gain: held-out greedy accuracy (rule reward) around the RL phases;
- RL steps to target: the first RL step (MPO steps count) after which held-out accuracy
  reached before + ``--target`` (evaluated every ``--eval-every`` steps), "-" if never;
- warm-up s, RL s: wall-clock of the warm-up and of the RL phases, evaluations excluded;
- eff. fresh / eff. batch: in the last quarter of the GRPO steps, the share of fresh rollouts
  with non-zero advantage, and the share of the GRPO batch's places filled with samples that
  carry a learning signal (the SSB refills what vanishing advantages leave empty).

``OMP_WAIT_POLICY=PASSIVE`` is set before torch starts (unless already set): on a machine that
other processes also load, two spinning OpenMP threads make every step many times slower.

Run: ``python bench/learning_curve.py [--seeds 0 1] [--threads 2] [--set grpo_steps=200]``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# The environment must be set before torch loads, hence the imports after it.
import argparse
import datetime
import json
import platform
from dataclasses import dataclass

import torch

from hybridrl.config.learner import LearnerConfig
from hybridrl.learner.synchronous import StepRecord, SynchronousTrainer, TrainingReport


@dataclass(frozen=True)
class Row:
    variant: str
    seed: int
    report: TrainingReport
    steps_to_target: int | None


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, or the architecture where there is none."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def parse_overrides(pairs: list[str]) -> dict[str, object]:
    """``key=value`` pairs (dotted keys for nested settings, JSON values) as nested dicts."""
    overrides: dict[str, object] = {}
    for pair in pairs:
        key, _, raw = pair.partition("=")
        try:
            value: object = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        target = overrides
        *parents, leaf = key.split(".")
        for parent in parents:
            child = target.setdefault(parent, {})
            if not isinstance(child, dict):
                raise ValueError(f"{key}: {parent} is not a group of settings")
            target = child
        target[leaf] = value
    return overrides


def merge(base: dict[str, object], extra: dict[str, object]) -> dict[str, object]:
    merged = dict(base)
    for key, value in extra.items():
        current = merged.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            merged[key] = merge(current, value)
        else:
            merged[key] = value
    return merged


def run(config: LearnerConfig, variant: str, target: float) -> Row:
    """One run; prints a progress line per evaluation."""

    def progress(record: StepRecord) -> None:
        if record.eval_accuracy is not None:
            print(
                f"  {variant} seed {config.seed} {record.phase} step {record.step + 1}: "
                f"accuracy {record.eval_accuracy:.3f}, reward {record.reward:.2f}, "
                f"fresh effective {record.fresh_effective_ratio:.2f}, "
                f"batch effective {record.batch_effective_ratio:.2f}",
                flush=True,
            )

    report = SynchronousTrainer(config, on_step=progress).run()
    goal = report.before.accuracy + target
    reached = next(
        (
            index + 1
            for index, record in enumerate(report.steps)
            if record.eval_accuracy is not None and record.eval_accuracy >= goal
        ),
        None,
    )
    if reached is None and report.after.accuracy >= goal:
        reached = len(report.steps)
    return Row(variant, config.seed, report, reached)


def last_quarter(report: TrainingReport, field: str) -> str:
    """Mean of ``field`` over the last quarter of the GRPO steps, "-" without GRPO steps."""
    grpo = [record for record in report.steps if record.phase == "grpo"]
    tail = grpo[len(grpo) - max(1, len(grpo) // 4) :]
    if not tail:
        return "-"
    return f"{sum(float(getattr(record, field)) for record in tail) / len(tail):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--target", type=float, default=0.4, help="accuracy gain to reach")
    parser.add_argument("--set", nargs="*", default=[], help="LearnerConfig overrides, key=value")
    parser.add_argument("--no-baseline", action="store_true", help="skip the run without SSB")
    args = parser.parse_args()

    overrides = merge(
        {"torch_threads": args.threads, "eval_every": args.eval_every},
        parse_overrides(args.set),
    )
    variants = [("SSB", {})] + (
        [] if args.no_baseline else [("no SSB", {"ssb": {"enabled": False}})]
    )
    rows = []
    for seed in args.seeds:
        for name, variant in variants:
            config = LearnerConfig.model_validate(merge(merge(overrides, variant), {"seed": seed}))
            rows.append(run(config, name, args.target))

    config = LearnerConfig.model_validate(overrides)
    print(f"\n# Learning curve: MPO then GRPO on the tiny model ({datetime.date.today()})\n")
    print(
        f"Machine: {cpu_model()}, {os.cpu_count()} logical cores, torch {torch.__version__}, "
        f"{args.threads} threads. Tasks {list(config.task_kinds)}; warm-up {config.warmup.steps} "
        f"steps ({config.warmup.images} images); RL trains {config.freeze_mode!r}; "
        f"{config.mpo_steps} MPO + {config.grpo_steps} GRPO steps of {config.prompts_per_step} "
        f"prompts x {config.group_size} responses, {config.minibatches_per_step} updates each; "
        f"held-out set of {config.eval_prompts} prompts, greedy.\n"
    )
    print(
        "| variant | seed | before | after | gain | RL steps to +"
        f"{args.target:g} | warm-up s | RL s | eff. fresh (last 1/4) | eff. batch (last 1/4) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        report = row.report
        reached = "-" if row.steps_to_target is None else str(row.steps_to_target)
        print(
            f"| {row.variant} | {row.seed} | {report.before.accuracy:.3f} | "
            f"{report.after.accuracy:.3f} | {report.after.accuracy - report.before.accuracy:+.3f} "
            f"| {reached} | {report.warmup_seconds:.0f} | {report.rl_seconds:.0f} | "
            f"{last_quarter(report, 'fresh_effective_ratio')} | "
            f"{last_quarter(report, 'batch_effective_ratio')} |"
        )


if __name__ == "__main__":
    main()
