"""Hand-made run directories: 2 MPO steps then 8 GRPO steps, and four evaluations.

Numbers chosen so that the summary can be checked by hand:
- step times: MPO steps 1 s each, the first GRPO step 10 s, the others 2 s: ``time`` after
  steps 0..9 is 1, 2, 12, 14, 16, 18, 20, 22, 24, 26; 4 samples per step, 40 in 26 s;
- policy version after step k is k + 1;
- GRPO busy seconds: 1.0 on the first step, 1.5 on the others (busy fraction 0.75 after it);
- last quarter of GRPO (steps 8, 9): fresh effective ratio ``ratios[-2:]``, batch fill 0.9 and
  0.7, reward 1.0 and 2.0;
- evaluations: before 0.2 at step 0, during 0.4 at 4 and 0.65 at 8, after 0.6 at 10.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

RATIOS = (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.1)
"""Fresh effective ratio of each GRPO step; the last quarter's mean is 0.2."""

EVALUATIONS = (
    {"label": "after", "step": 10, "policy_version": 10, "accuracy": 0.6},
    {"label": "before", "step": 0, "policy_version": 0, "accuracy": 0.2},
    {"label": "during", "step": 4, "policy_version": 4, "accuracy": 0.4},
    {"label": "during", "step": 8, "policy_version": 8, "accuracy": 0.65},
)
"""Out of order on purpose: the reader sorts by step."""

RunFactory = Callable[..., Path]


def step_records(ratios: Sequence[float] = RATIOS) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    time = 0.0
    for step in range(2 + len(ratios)):
        grpo = step >= 2
        index = step - 2
        seconds = (10.0 if index == 0 else 2.0) if grpo else 1.0
        time += seconds
        records.append(
            {
                "step": step,
                "phase": "grpo" if grpo else "mpo",
                "phase_step": index if grpo else step,
                "policy_version": step + 1,
                "time": time,
                "seconds": seconds,
                "busy_seconds": (1.0 if index == 0 else 1.5) if grpo else 0.5,
                "samples": 4,
                "samples_per_second": 4 / seconds,
                "reward": float(index - 6) if grpo else None,
                "reward_rule": 0.5,
                "reward_format": 0.25,
                "reward_model": None,
                "response_length": 12.0 + step,
                "fresh_effective_ratio": ratios[index] if grpo else 0.5,
                "batch_fill": ({6: 0.9, 7: 0.7}.get(index, 1.0)) if grpo else 1.0,
                "buffer_size": step * 3,
                "loss": 1.0 / (step + 1),
                "clip_fraction": 0.1,
                "kl_to_reference": 0.01 * step,
                "ssb_effective_ratio": 0.5,
                "note": "unknown text keys are ignored",
                "flag": True,
            }
        )
    return records


def write_jsonl(path: Path, records: Sequence[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))


@pytest.fixture
def make_run(tmp_path: Path) -> RunFactory:
    """``make_run(name, ratios=RATIOS, evaluations=EVALUATIONS)``: a run directory."""

    def make(
        name: str,
        ratios: Sequence[float] = RATIOS,
        evaluations: Sequence[dict[str, Any]] = EVALUATIONS,
    ) -> Path:
        directory = tmp_path / name
        directory.mkdir()
        write_jsonl(directory / "metrics.jsonl", step_records(ratios))
        write_jsonl(directory / "evaluations.jsonl", evaluations)
        return directory

    return make
