"""SSBSettings: YAML, environment overrides, derived locations, refused values."""

from __future__ import annotations

from pathlib import Path

import pytest
from hybridrl_services.ssb.settings import SSBSettings
from pydantic import ValidationError

from hybridrl.config.buffer import EvictionPolicy
from hybridrl.config.object_store import ObjectStoreSettings


def test_yaml_values_are_read_and_the_environment_overrides_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "ssb.yaml"
    config.write_text(
        "shard: shard-1\n"
        "buffer:\n  capacity: 500\n  eviction: lowest_priority\n"
        "mpo_pairs:\n  threshold: 7.5\n"
        "assembly:\n  expiry_policy_versions: 3\n"
        "snapshots:\n  uri: /tmp/ssb-snapshots\n  interval_seconds: 5\n"
    )
    monkeypatch.setenv("HYBRIDRL_SSB_SHARD", "shard-7")
    monkeypatch.setenv("HYBRIDRL_SSB_KAFKA__BOOTSTRAP_SERVERS", "kafka:9092")
    settings = SSBSettings.load(config)
    assert settings.shard == "shard-7"
    assert settings.kafka.bootstrap_servers == "kafka:9092"
    assert settings.buffer.capacity == 500
    assert settings.buffer.eviction is EvictionPolicy.LOWEST_PRIORITY
    assert settings.mpo_pairs.threshold == 7.5
    assert settings.assembly.expiry_policy_versions == 3
    assert settings.snapshots.interval_seconds == 5
    assert settings.resolved_snapshot_uri == "/tmp/ssb-snapshots"
    shard = settings.shard_settings()
    assert (shard.buffer.capacity, shard.pairs.threshold) == (500, 7.5)


def test_defaults_name_the_loop_topics_and_the_consumer_group() -> None:
    settings = SSBSettings()
    assert settings.topics.scored == "hybridrl.scored"
    assert settings.topics.dlq == "hybridrl.dlq"
    assert settings.group_id == "hybridrl-ssb"
    assert settings.kafka.client_id == "hybridrl-ssb"
    assert settings.resolved_snapshot_uri is None
    assert settings.resolved_claim_check_uri is None
    assert settings.fetch_offloaded_payloads


def test_locations_default_to_the_object_store_bucket() -> None:
    settings = SSBSettings(object_store=ObjectStoreSettings(bucket="run-1"))
    assert settings.resolved_snapshot_uri == "s3://run-1"
    assert settings.resolved_claim_check_uri == "s3://run-1/claim-checks/rollouts"


@pytest.mark.parametrize(
    "values",
    [
        {"shard": "a/b"},
        {"shard": ""},
        {"topic_prefix": "bad prefix "},
        {"max_batch_size": 0},
        {"snapshots": {"keep_last": 0}},
        {"unknown": 1},
    ],
)
def test_bad_values_fail_at_start_up(values: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SSBSettings(**values)  # type: ignore[arg-type]


def test_settings_are_frozen() -> None:
    settings = SSBSettings()
    with pytest.raises(ValidationError):
        settings.shard = "other"  # type: ignore[misc]
