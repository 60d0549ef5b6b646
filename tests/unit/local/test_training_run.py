"""The local run's wiring without processes: one recipe gives settings every service accepts,
and the prompt feeder stays a fixed number of learner steps ahead, also across a resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hybridrl_services.learner.settings import LearnerSettings
from hybridrl_services.reward.settings import RewardSettings
from hybridrl_services.rollout.settings import RolloutSettings
from hybridrl_services.ssb.settings import SSBSettings

from hybridrl.config.buffer import SSBConfig
from hybridrl.config.learner import LearnerConfig
from hybridrl.local import training_run
from hybridrl.local.training_run import PromptFeeder, service_settings


def test_one_recipe_gives_settings_every_service_accepts(tmp_path: Path) -> None:
    config = LearnerConfig(temperature=0.6, max_new_tokens=20, ssb=SSBConfig(enabled=False))
    overrides = service_settings(
        config, "s3://bkt/runs/r/base/step-000000000/", run_name="r", metrics_file=tmp_path / "m"
    )
    common: dict[str, Any] = {"object_store": {"endpoint": "127.0.0.1:9000", "bucket": "bkt"}}
    rollout = RolloutSettings(**common, **overrides["rollout"])
    reward = RewardSettings(**common, **overrides["reward"])
    ssb = SSBSettings(**common, **overrides["ssb"])
    learner = LearnerSettings(**common, **overrides["learner"])
    assert (rollout.sampling.temperature, rollout.sampling.max_new_tokens) == (0.6, 20)
    assert rollout.model.initial_checkpoint_uri == learner.initial_checkpoint_uri
    assert reward.reward_model.source == "none"
    assert ssb.buffer.enabled is False
    assert ssb.mpo_pairs == config.mpo_pairs
    assert ssb.advantages == config.grpo
    assert learner.run == config
    assert learner.run_uri == "s3://bkt/runs/r"


class RecordingProducer:
    """Stands in for the Kafka producer: keeps what was sent."""

    def __init__(self, settings: Any) -> None:
        self.sent: list[str] = []

    def send(self, topic: str, key: str, event: Any) -> None:
        self.sent.append(key)

    def flush(self, timeout: float) -> None:
        pass

    def close(self, timeout: float) -> None:
        pass


class Stack:
    kafka = None

    class topics:  # noqa: N801 - mirrors LocalStack.topics
        prompts = "hybridrl.prompts"


def test_the_feeder_stays_ahead_and_counts_steps_that_only_grow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(training_run, "EventProducer", RecordingProducer)
    config = LearnerConfig(prompts_per_step=4, group_size=2)
    feeder = PromptFeeder(Stack(), config, lookahead=2)  # type: ignore[arg-type]
    assert feeder.feed(0) == 2  # two steps ahead of a learner at step 0
    assert feeder.feed(0) == 0
    assert feeder.feed(3) == 3  # the learner took three steps
    # The learner died and resumed from its checkpoint of step 1: the prompts of steps 1-4
    # are still in the pipeline; only steps it takes from here on ask for more.
    assert feeder.feed(1) == 0
    assert feeder.feed(2) == 1
    assert feeder.batches_published == 6
    sent = feeder._producer.sent  # type: ignore[attr-defined]
    assert len(sent) == 6 * 4
    assert len(set(sent)) == len(sent)  # every batch has new prompts
