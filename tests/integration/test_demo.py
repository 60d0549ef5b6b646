"""``hybridrl demo`` runs the whole local training run, writes its report and leaves no process
behind."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

pytestmark = pytest.mark.slow


def test_a_short_demo_trains_reports_and_stops_its_children(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "hybridrl",
            "demo",
            "--mpo-steps",
            "2",
            "--grpo-steps",
            "8",
            "--eval-every",
            "4",
            "--run-dir",
            str(run_dir),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["complete"] is True
    assert (summary["mpo_steps"], summary["grpo_steps"]) == (2, 8)
    assert summary["accuracy_before"] is not None
    assert summary["accuracy_after"] is not None
    propagation = summary["policy_propagation"]
    # Version 0 (the warm-up's full weights) and one adapter-only update per step.
    assert propagation["versions_published"] == 11
    assert propagation["bytes_per_adapter_update"] < propagation["bytes_per_full_update"]
    steps = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [record["step"] for record in steps] == list(range(10))
    assert [record["phase"] for record in steps] == ["mpo"] * 2 + ["grpo"] * 8
    labels = [
        json.loads(line)["label"]
        for line in (run_dir / "evaluations.jsonl").read_text().splitlines()
    ]
    assert labels == ["before", "during", "during", "after"]
    for name in ("reward", "accuracy", "effective_ratio", "training"):
        with Image.open(run_dir / "report" / f"{name}.png") as image:
            assert image.width > 400
            assert image.height > 200
    for name in ("broker", "s3", "rollout", "reward", "ssb", "learner"):
        assert (run_dir / "logs" / f"{name}.log").exists()
    leftovers = subprocess.run(
        ["pgrep", "-f", str(run_dir)], capture_output=True, text=True, check=False
    )
    assert leftovers.stdout == ""
