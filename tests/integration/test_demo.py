"""``hybridrl demo`` runs the local stack end to end and leaves no process behind."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_demo_streams_every_group_and_stops_its_children(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "hybridrl",
            "demo",
            "--prompts",
            "6",
            "--group-size",
            "4",
            "--max-new-tokens",
            "8",
            "--run-dir",
            str(run_dir),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["complete"] is True
    assert summary["groups_seen"] == 6
    # The tiny reward model gives each response its own score: every group has variance.
    assert summary["effective_sample_ratio"] == 1.0
    for name in ("broker", "s3", "rollout", "reward", "ssb"):
        assert (run_dir / "logs" / f"{name}.log").exists()
    leftovers = subprocess.run(
        ["pgrep", "-f", str(run_dir)], capture_output=True, text=True, check=False
    )
    assert leftovers.stdout == ""
