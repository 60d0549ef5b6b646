"""RolloutSettings: defaults, YAML, environment overrides, and what it refuses."""

from pathlib import Path

import pytest
from hybridrl_services.rollout.settings import RolloutSettings
from pydantic import SecretStr, ValidationError

from hybridrl.config.object_store import ObjectStoreSettings
from hybridrl.rollout.worker import RolloutSampling


def test_defaults_run_the_tiny_model_on_the_cpu_engine_against_the_default_topics() -> None:
    settings = RolloutSettings()
    assert settings.model.source == "tiny"
    assert settings.engine.kind == "cpu"
    assert settings.engine.torch_threads == 1
    assert settings.group_id == "hybridrl-rollout"
    assert settings.kafka.client_id == "hybridrl-rollout"
    assert (settings.topics.prompts, settings.topics.rollouts, settings.topics.policy) == (
        "hybridrl.prompts",
        "hybridrl.rollouts",
        "hybridrl.policy",
    )
    assert settings.consume
    assert settings.resolved_claim_check_uri is None
    assert settings.sampling.rollout_sampling() == RolloutSampling(1.0, 1.0, 256, 0)


def test_environment_overrides_the_yaml_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "rollout.yaml"
    config.write_text(
        "topic_prefix: run7.\n"
        "kafka:\n  bootstrap_servers: 127.0.0.1:9092\n"
        "sampling:\n  temperature: 0.7\n  max_new_tokens: 64\n"
        "object_store:\n  endpoint: 127.0.0.1:9000\n  bucket: runs\n"
    )
    monkeypatch.setenv("HYBRIDRL_ROLLOUT_KAFKA__BOOTSTRAP_SERVERS", "kafka:9093")
    monkeypatch.setenv("HYBRIDRL_ROLLOUT_SAMPLING__TOP_P", "0.9")
    monkeypatch.setenv("HYBRIDRL_ROLLOUT_OBJECT_STORE__SECRET_KEY", "s3cr3t")
    monkeypatch.setenv("HYBRIDRL_ROLLOUT_OBJECT_STORE__ACCESS_KEY", "key")
    settings = RolloutSettings.load(config)
    assert settings.kafka.bootstrap_servers == "kafka:9093"
    assert settings.topics.prompts == "run7.prompts"
    assert settings.sampling.rollout_sampling() == RolloutSampling(0.7, 0.9, 64, 0)
    assert settings.object_store is not None
    assert settings.object_store.secret_key == SecretStr("s3cr3t")
    assert "s3cr3t" not in repr(settings)
    assert settings.resolved_claim_check_uri == "s3://runs/claim-checks/rollouts"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"unknown": 1}, "Extra inputs are not permitted"),
        ({"sampling": {"top_p": 0}}, "greater than 0"),
        ({"sampling": {"max_new_tokens": 0}}, "greater than or equal to 1"),
        ({"engine": {"kind": "vllm"}}, "needs vllm_model_path"),
        ({"engine": {"kind": "tpu"}}, "'cpu' or 'vllm'"),
        ({"topic_prefix": "bad prefix "}, "not legal in Kafka"),
        ({"max_batch_prompts": 0}, "greater than or equal to 1"),
    ],
)
def test_invalid_settings_fail_at_start_up(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RolloutSettings(**values)  # type: ignore[arg-type]


def test_settings_are_frozen() -> None:
    settings = RolloutSettings()
    with pytest.raises(ValidationError, match="frozen"):
        settings.consume = False


def test_an_explicit_claim_check_location_wins_over_the_bucket() -> None:
    store = ObjectStoreSettings(endpoint="s3:9000", bucket="runs")
    assert RolloutSettings(object_store=store).resolved_claim_check_uri == (
        "s3://runs/claim-checks/rollouts"
    )
    explicit = RolloutSettings(object_store=store, claim_check_uri="file:///tmp/claims")
    assert explicit.resolved_claim_check_uri == "file:///tmp/claims"
