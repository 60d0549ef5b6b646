"""Run the benchmarks and write their results to docs/benchmarks.md.

Each benchmark is a script in this folder that prints a markdown section (a heading, the machine,
the date and a table). This runner executes them one after another, so they do not compete for
the two cores, and writes the sections with the command that produced each.

Run: ``python bench/run_all.py [--only ssb rule_reward ...] [--output docs/benchmarks.md]``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# name -> (script, arguments, what it measures)
BENCHMARKS: dict[str, tuple[str, list[str], str]] = {
    "ssb": ("bench/ssb_bench.py", [], "Selective Sample Buffer insert throughput and draw latency"),
    "rule_reward": ("bench/rule_reward_bench.py", [], "rule-reward throughput on a mix of answers"),
    "object_store": ("bench/object_store_bench.py", [], "object-store throughput, local and S3"),
    "bus": ("bench/bus_bench.py", [], "Kafka produce/consume throughput on loopback"),
    "engine": ("bench/engine_bench.py", [], "CPU generation engine throughput, tiny model"),
    "reward_service": (
        "bench/reward_service_bench.py",
        [],
        "reward scorer throughput and Score/ScoreBatch latency",
    ),
    "ssb_service": (
        "bench/ssb_service_bench.py",
        [],
        "SSB store ingestion, Sample latency and snapshot cost",
    ),
    "pipeline": (
        "bench/pipeline_bench.py",
        [],
        "stage throughput through the real broker and the platform's overhead",
    ),
    "learning_curve": (
        "bench/learning_curve.py",
        ["--seeds", "0", "1"],
        "MPO + GRPO learning on the tiny model, with and without SSB",
    ),
    "demo": (
        "bench/demo_bench.py",
        [],
        "the local run (make demo): learning, SSB ablation, policy propagation, busy learner",
    ),
    "rollout": (
        "bench/rollout_service_bench.py",
        [],
        "rollout worker overhead and policy update cost",
    ),
}

HEADER = """# Benchmarks

Every figure here was produced by a script in `bench/`, run by `make bench`
(`python bench/run_all.py`), on the machine named in each section. Targets come from the issues
that asked for them; a figure below its target says so.
"""


def run_one(name: str) -> str:
    script, arguments, purpose = BENCHMARKS[name]
    command = [sys.executable, script, *arguments]
    started = time.monotonic()
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - started
    shown = " ".join(["python", script, *arguments])
    if completed.returncode != 0:
        body = (
            f"Failed with exit code {completed.returncode}:\n\n```\n{completed.stderr[-3000:]}\n```"
        )
    else:
        # A benchmark's own title becomes a sub-heading of its section.
        body = "\n".join(
            f"###{line[1:]}" if line.startswith("# ") else line
            for line in completed.stdout.strip().splitlines()
        )
    print(f"{name}: {elapsed:.0f} s, exit {completed.returncode}", file=sys.stderr)
    return f"## {purpose}\n\nCommand: `{shown}` ({elapsed:.0f} s)\n\n{body}\n"


def _sections(text: str) -> dict[str, str]:
    """The ``## purpose`` sections of an earlier output, by purpose."""
    sections: dict[str, str] = {}
    for chunk in text.split("\n## ")[1:]:
        purpose = chunk.split("\n", 1)[0].strip()
        sections[purpose] = "## " + chunk.rstrip("\n") + "\n"
    return sections


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHMARKS), default=None)
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    names = args.only or [name for name in BENCHMARKS if (ROOT / BENCHMARKS[name][0]).exists()]
    machine = (
        f"{platform.system()} {platform.machine()}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs"
    )
    fresh = {BENCHMARKS[name][2]: run_one(name) for name in names}
    # With --only, the other benchmarks' sections stay as the last run wrote them.
    kept = _sections(args.output.read_text()) if args.output.exists() else {}
    sections = [
        fresh.get(purpose) or kept[purpose]
        for _, _, purpose in BENCHMARKS.values()
        if purpose in fresh or purpose in kept
    ]
    stamp = "Last full run" if args.only is None else "Last run (partial)"
    text = (
        HEADER
        + f"\n{stamp}: {datetime.date.today().isoformat()} on {machine}.\n\n"
        + "\n".join(sections)
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
