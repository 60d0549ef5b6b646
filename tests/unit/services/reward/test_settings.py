"""RewardSettings: defaults, YAML, environment overrides, strictness."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hybridrl_services.reward.settings import RewardSettings
from pydantic import ValidationError


def test_defaults_name_the_loop_topics_group_and_no_model() -> None:
    settings = RewardSettings()
    assert settings.kafka.client_id == "hybridrl-reward"
    assert settings.group_id == "hybridrl-reward"
    assert (settings.topics.rollouts, settings.topics.scored, settings.topics.dlq) == (
        "hybridrl.rollouts",
        "hybridrl.scored",
        "hybridrl.dlq",
    )
    assert settings.consume is True
    assert settings.reward_model.source == "none"
    assert settings.rewards.weights.model == 1.0
    assert settings.resolved_claim_check_uri is None


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "reward.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "kafka": {"bootstrap_servers": "file-broker:9092"},
                "reward_model": {"source": "/models/vl-reward", "deadline_seconds": 5},
                "rewards": {"weights": {"format": 0.5}, "pool": {"workers": 4}},
                "max_batch_items": 32,
            }
        )
    )
    monkeypatch.setenv("HYBRIDRL_REWARD_KAFKA__BOOTSTRAP_SERVERS", "env-broker:9092")
    monkeypatch.setenv("HYBRIDRL_REWARD_CONSUME", "false")
    monkeypatch.setenv("HYBRIDRL_REWARD_REWARD_MODEL__SOURCE", "tiny")
    settings = RewardSettings.load(path)
    assert settings.kafka.bootstrap_servers == "env-broker:9092"
    assert settings.consume is False
    assert settings.reward_model.source == "tiny"
    # Nested fields from the environment merge into the file's, key by key.
    assert settings.reward_model.deadline_seconds == 5.0
    assert (settings.rewards.weights.format, settings.rewards.pool.workers) == (0.5, 4)
    assert settings.max_batch_items == 32


def test_unknown_keys_bad_prefix_and_bad_limits_are_rejected() -> None:
    with pytest.raises(ValidationError, match="max_items"):
        RewardSettings(max_items=3)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="not legal in Kafka"):
        RewardSettings(topic_prefix="bad prefix ")
    with pytest.raises(ValidationError, match="max_batch_items"):
        RewardSettings(max_batch_items=0)
    with pytest.raises(ValidationError, match="deadline_seconds"):
        RewardSettings(reward_model={"deadline_seconds": 0})  # type: ignore[arg-type]


def test_claim_checks_default_to_the_object_store_bucket() -> None:
    settings = RewardSettings(
        object_store={  # type: ignore[arg-type]
            "endpoint": "minio:9000",
            "access_key": "key",
            "secret_key": "secret",
            "bucket": "hybridrl-run",
        }
    )
    assert settings.resolved_claim_check_uri == "s3://hybridrl-run/claim-checks/rollouts"
    assert RewardSettings(claim_check_uri="/tmp/claims").resolved_claim_check_uri == "/tmp/claims"
