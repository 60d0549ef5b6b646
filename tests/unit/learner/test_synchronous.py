"""The synchronous trainer: a few steps of each phase, their records, and a learning run."""

import pytest
import torch

from hybridrl.config.learner import LearnerConfig
from hybridrl.learner.synchronous import StepRecord, SynchronousTrainer
from hybridrl.models.freezing import trainable_state_dict

TINY_RUN = {
    "torch_threads": 1,
    "task_kinds": ["colour", "position"],
    "eval_prompts": 4,
    "warmup": {"steps": 3, "batch_size": 4},
    "mpo_steps": 2,
    "grpo_steps": 3,
    "prompts_per_step": 2,
    "group_size": 4,
    "max_new_tokens": 8,
    "minibatches_per_step": 2,
}


def test_a_short_run_records_every_step_and_keeps_the_engine_in_step_with_the_policy() -> None:
    seen: list[StepRecord] = []
    trainer = SynchronousTrainer(LearnerConfig.model_validate(TINY_RUN), on_step=seen.append)
    report = trainer.run()

    assert [(r.phase, r.step) for r in report.steps] == [
        ("mpo", 0),
        ("mpo", 1),
        ("grpo", 0),
        ("grpo", 1),
        ("grpo", 2),
    ]
    assert seen == report.steps
    assert len(report.warmup.losses) == 3
    assert report.before.prompts == report.after.prompts == 4
    assert report.before.policy_version == 0
    # A step that trains publishes one new version, whatever its number of minibatches.
    trained = [r for r in report.steps if r.metrics]
    assert trainer.policy_version == len(trained) == report.after.policy_version
    assert trainer.engine.policy_version == trainer.policy_version
    for name, tensor in trainable_state_dict(trainer.policy, "adapter").items():
        assert torch.equal(tensor, trainer.engine._model.state_dict()[name])  # type: ignore[union-attr]
    for record in report.steps:
        assert 0.0 <= record.rule_reward <= 1.0
        assert record.reward == pytest.approx(record.rule_reward + record.format_reward)
        assert record.seconds > 0.0
    for record in report.steps[2:]:
        assert record.buffer_size >= 0
        if record.metrics:
            assert record.metrics["samples"] >= 1.0
            assert "clip_fraction" in record.metrics


def test_without_the_buffer_a_grpo_batch_holds_only_fresh_effective_samples() -> None:
    config = LearnerConfig.model_validate(
        {**TINY_RUN, "mpo_steps": 0, "ssb": {"enabled": False}, "warmup": {"steps": 0}}
    )
    trainer = SynchronousTrainer(config)
    records = trainer.train_grpo(2)
    assert trainer.buffer is None
    for record in records:
        assert record.buffer_size == 0
        assert record.batch_effective_ratio == pytest.approx(record.fresh_effective_ratio)


def test_the_same_seed_gives_the_same_run() -> None:
    config = LearnerConfig.model_validate({**TINY_RUN, "mpo_steps": 1, "grpo_steps": 1})
    first = SynchronousTrainer(config).run()
    second = SynchronousTrainer(config).run()
    strip = [(r.reward, r.metrics.get("loss"), r.buffer_size) for r in first.steps]
    assert strip == [(r.reward, r.metrics.get("loss"), r.buffer_size) for r in second.steps]
    assert first.warmup == second.warmup
    assert first.after == second.after


@pytest.mark.slow
def test_grpo_with_the_buffer_raises_reward_and_held_out_accuracy() -> None:
    """A shortened version of the tuned run (bench/learning_curve.py): the adapter alone,
    trained by GRPO from a blank-image warm-up, learns to name the shape's colour."""
    config = LearnerConfig.model_validate(
        {"torch_threads": 1, "mpo_steps": 0, "grpo_steps": 120, "eval_prompts": 100}
    )
    report = SynchronousTrainer(config).run()
    rewards = [record.rule_reward for record in report.steps]
    first, last = sum(rewards[:10]) / 10, sum(rewards[-10:]) / 10
    assert last > first + 0.2, (first, last)
    assert report.after.accuracy > report.before.accuracy + 0.3, (report.before, report.after)
