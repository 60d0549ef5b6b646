"""The learner's step record from every rank's share, against hand-computed values."""

from pathlib import Path

import pytest
from hybridrl_services.learner.batches import BatchSummary
from hybridrl_services.learner.step_log import (
    RankStep,
    append_record,
    end_cut_line,
    losses_of,
    step_record,
)


def test_ranks_merge_into_one_record() -> None:
    ranks = [
        RankStep(
            items=96,
            busy_seconds=0.3,
            metrics={"loss": 0.5, "clip_fraction": 0.1, "samples": 24.0},
            summary=BatchSummary(
                fresh_offered=128,
                fresh_zero_advantage=32,
                reward=1.5,
                reward_rule=0.5,
                reward_format=1.0,
                response_length=16.0,
            ),
        ),
        RankStep(
            items=32,
            busy_seconds=0.4,
            metrics={"loss": 1.0, "clip_fraction": 0.3, "samples": 8.0},
            summary=BatchSummary(
                fresh_offered=64,
                fresh_zero_advantage=48,
                reward=1.25,
                reward_rule=0.25,
                reward_format=1.0,
                response_length=19.0,
            ),
        ),
    ]
    record = step_record(
        ranks,
        step=40,
        phase="grpo",
        phase_step=10,
        policy_version=41,
        elapsed=20.0,
        seconds=0.5,
        places=256,
    )
    # Metrics by items: loss (96 * 0.5 + 32 * 1.0) / 128 = 0.625; clip (9.6 + 9.6) / 128 = 0.15.
    assert record["loss"] == pytest.approx(0.625)
    assert record["clip_fraction"] == pytest.approx(0.15)
    assert record["samples"] == 128  # the learner's count, not the step function's
    assert record["samples_per_second"] == pytest.approx(256.0)
    # Rollout means by fresh rollouts: reward (128 * 1.5 + 64 * 1.25) / 192 = 1.41666...
    assert record["reward"] == pytest.approx(272 / 192)
    assert record["reward_rule"] == pytest.approx(80 / 192)
    assert record["response_length"] == pytest.approx((2048 + 1216) / 192)
    # 80 of 192 fresh rollouts had zero advantage.
    assert record["fresh_effective_ratio"] == pytest.approx(112 / 192)
    assert record["zero_variance_fraction"] == pytest.approx(80 / 192)
    assert record["batch_fill"] == 0.5
    assert record["busy_seconds"] == 0.4
    assert losses_of(record) == {"total": 0.625}


def test_an_mpo_step_has_no_rollout_means_and_reports_its_terms() -> None:
    ranks = [RankStep(items=16, metrics={"loss": 0.9, "preference_loss": 0.7}), RankStep()]
    record = step_record(
        ranks,
        step=3,
        phase="mpo",
        phase_step=3,
        policy_version=4,
        elapsed=3.0,
        seconds=1.0,
        places=16,
    )
    assert record["reward"] is None
    assert record["fresh_effective_ratio"] is None
    assert record["batch_fill"] == 1.0
    assert losses_of(record) == {"total": 0.9, "preference": 0.7}


def test_a_cut_line_is_ended_before_the_next_record(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    end_cut_line(path)  # no file yet: nothing to do
    path.write_text('{"step": 1}\n{"step": 2, "pha')
    end_cut_line(path)
    append_record(path, {"step": 1})
    assert path.read_text().splitlines() == ['{"step": 1}', '{"step": 2, "pha', '{"step": 1}']
    end_cut_line(path)
    assert path.read_text().endswith('{"step": 1}\n')
