"""The local run's measures: learning, the SSB ablation, policy propagation, learner busy time.

Runs ``hybridrl demo`` (broker, S3 server, rollout, reward and SSB services and a 2-rank
DeepSpeed learner, all as processes on this machine) twice, with the Selective Sample Buffer
and without it (``--no-ssb``), each from the same warm-up and seed, then compares the two
runs with ``hybridrl report``. Prints a markdown section:

- learning: held-out greedy accuracy before RL (after the warm-up) and after, the gain
  (target >= 0.4) and the RL wall-clock (target <= 10 minutes on 2 cores);
- the paper's Table 2 direction: the fresh effective-sample ratio and the batch fill in the
  last quarter of the GRPO steps, and the learner steps until held-out accuracy first reached
  before + 0.4 (target: the SSB run's batch fill >= 1.5x the other's, and no more steps);
- policy propagation: seconds from a policy checkpoint's manifest to the first rollout sample
  tagged with its version, and the bytes of an adapter-only and of a full update;
- learner busy fraction: time in forward/backward/optimizer step over wall time in steady
  state (target >= 0.8: rollouts arrive faster than the learner consumes them).

Run: ``python bench/demo_bench.py [--runs-dir runs/bench] [--eval-every 10]``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from hybridrl.report import write_report

ROOT = Path(__file__).resolve().parent.parent
GAIN_TARGET = 0.4


def run_demo(run_dir: Path, *extra: str) -> float:
    """One ``hybridrl demo`` run; its wall-clock seconds."""
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-m", "hybridrl", "demo", "--run-dir", str(run_dir), *extra],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise SystemExit(f"demo in {run_dir} failed:\n{completed.stdout[-3000:]}")
    return time.monotonic() - started


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "runs" / "bench")
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="Compare the runs already in --runs-dir instead of running them again.",
    )
    args = parser.parse_args()
    ssb_dir, plain_dir = args.runs_dir / "ssb", args.runs_dir / "no-ssb"
    common = ("--eval-every", str(args.eval_every))
    if args.report_only:
        walls = {"ssb": float("nan"), "no-ssb": float("nan")}
    else:
        walls = {
            "ssb": run_demo(ssb_dir, *common),
            "no-ssb": run_demo(plain_dir, "--no-ssb", *common),
        }
    before = json.loads((ssb_dir / "summary.json").read_text())["accuracy_before"]
    target = min(before + GAIN_TARGET, 1.0)
    write_report(plain_dir, accuracy_target=target)
    report = write_report(ssb_dir, compare=plain_dir, accuracy_target=target)
    summary = json.loads((report / "summary.json").read_text())
    other = summary["comparison"]["summary"]
    images = ROOT / "docs" / "images"
    images.mkdir(parents=True, exist_ok=True)
    for name in ("accuracy", "effective_ratio"):
        shutil.copyfile(report / f"{name}.png", images / f"demo_{name}.png")
    demo_summary = json.loads((ssb_dir / "summary.json").read_text())
    propagation = demo_summary.get("policy_propagation", {})

    print("# The local run: learning, SSB ablation, policy propagation")
    print()
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; {datetime.date.today().isoformat()}. Each run: "
        "`hybridrl demo` with the default recipe (warm-up, MPO then GRPO), broker, S3 server, "
        "rollout, reward, SSB and a 2-rank DeepSpeed learner as separate processes. Held-out "
        f"accuracy target: before + {GAIN_TARGET} = {target:.3f}."
    )
    print()
    print(
        "| run | before | after | gain | RL s | steps to target | fresh eff. ratio (last "
        "quarter) | batch fill (last quarter) | learner busy | samples/s | demo wall s |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, row in (("with SSB", summary), ("without SSB", other)):
        wall = walls["ssb" if name == "with SSB" else "no-ssb"]
        print(
            f"| {name} | {_fmt(row['accuracy_before'])} | {_fmt(row['accuracy_after'])} | "
            f"{_fmt(row['accuracy_gain'])} | {_fmt(row['rl_wall_seconds'], 0)} | "
            f"{_fmt(row['steps_to_target'])} | "
            f"{_fmt(row['fresh_effective_ratio_last_quarter'])} | "
            f"{_fmt(row['batch_fill_last_quarter'])} | {_fmt(row['learner_busy_fraction'], 2)} | "
            f"{_fmt(row['samples_per_second'], 0)} | {wall:.0f} |"
        )
    print()
    fill, fill_other = summary["batch_fill_last_quarter"], other["batch_fill_last_quarter"]
    if fill is not None and fill_other:
        print(
            f"Batch fill with SSB / without, last quarter of GRPO: {fill / fill_other:.2f}x "
            "(target >= 1.5x)."
        )
    print(
        "The paper's effective-sample ratio of the training batch is the batch fill: samples "
        "with a non-zero advantage over the places of the batch. Both runs overlaid:"
    )
    print()
    print("![held-out accuracy](images/demo_accuracy.png)")
    print("![effective-sample ratio](images/demo_effective_ratio.png)")
    print()
    print("| policy propagation (SSB run) | value |")
    print("| --- | ---: |")
    for key, value in propagation.items():
        print(f"| {key.replace('_', ' ')} | {_fmt(value)} |")


if __name__ == "__main__":
    main()
