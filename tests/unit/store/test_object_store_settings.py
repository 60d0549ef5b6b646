"""ObjectStoreSettings: validation, immutability, and secrets that never print."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from hybridrl.config.object_store import ObjectStoreSettings, RetrySettings
from hybridrl.store import S3ObjectStore, open_object_store

SECRET = "s3cr3t-value-never-printed"
ACCESS = "AKIA-ACCESS-KEY-ID"


def settings(**overrides: Any) -> ObjectStoreSettings:
    values: dict[str, Any] = {
        "endpoint": "minio:9000",
        "access_key": SecretStr(ACCESS),
        "secret_key": SecretStr(SECRET),
    }
    return ObjectStoreSettings.model_validate(values | overrides)


def test_defaults_are_secure_and_leave_bucket_creation_to_the_chart() -> None:
    defaults = ObjectStoreSettings()
    assert defaults.secure is True
    assert defaults.create_bucket is False
    assert defaults.ca_bundle is None
    assert defaults.part_size_bytes == 16 * 1024 * 1024
    assert defaults.retry == RetrySettings(
        attempts=5, initial_backoff_seconds=0.2, max_backoff_seconds=10.0
    )


def test_secrets_do_not_appear_in_repr_str_or_json() -> None:
    configured = settings()
    for text in (repr(configured), str(configured), configured.model_dump_json()):
        assert SECRET not in text
        assert ACCESS not in text
    assert configured.secret_key is not None
    assert configured.secret_key.get_secret_value() == SECRET


def test_secrets_do_not_appear_in_the_store_or_its_errors() -> None:
    store = open_object_store("s3://runs/run-1", settings())
    assert isinstance(store, S3ObjectStore)
    for text in (repr(store), str(store)):
        assert SECRET not in text
        assert ACCESS not in text
    with pytest.raises(ValueError, match=r"'\.\.'") as caught:
        store.put_bytes("../x", b"")
    assert SECRET not in str(caught.value)


def test_settings_are_frozen() -> None:
    configured = settings()
    with pytest.raises(ValidationError, match="frozen"):
        configured.bucket = "other"


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError, match="extra"):
        settings(endpoint_url="http://minio:9000")


@pytest.mark.parametrize(
    "endpoint",
    ["http://minio:9000", "minio:9000/path", "", "minio:port", "https://s3.aws", "minio:70000"],
)
def test_endpoint_must_be_host_and_port(endpoint: str) -> None:
    with pytest.raises(ValidationError, match="host:port"):
        settings(endpoint=endpoint)


@pytest.mark.parametrize("endpoint", ["minio:9000", "127.0.0.1:9000", "[::1]:9000", "s3.aws"])
def test_host_port_endpoints_are_accepted(endpoint: str) -> None:
    assert settings(endpoint=endpoint).endpoint == endpoint


def test_keys_come_in_pairs() -> None:
    with pytest.raises(ValidationError, match="together"):
        ObjectStoreSettings(access_key=SecretStr(ACCESS))
    anonymous = ObjectStoreSettings()
    assert anonymous.access_key is None
    assert anonymous.secret_key is None


@pytest.mark.parametrize("bucket", ["ab", "Upper", "under_score", "-dash", "a..b", "x" * 64])
def test_invalid_bucket_names_are_refused(bucket: str) -> None:
    with pytest.raises(ValidationError, match="bucket"):
        settings(bucket=bucket)


def test_part_size_within_s3_limits() -> None:
    with pytest.raises(ValidationError, match="part_size_bytes"):
        settings(part_size_bytes=5 * 1024 * 1024 - 1)
    assert settings(part_size_bytes=5 * 1024 * 1024).part_size_bytes == 5 * 1024 * 1024


def test_retry_cap_not_below_the_initial_backoff() -> None:
    with pytest.raises(ValidationError, match="max_backoff_seconds"):
        RetrySettings(initial_backoff_seconds=2.0, max_backoff_seconds=1.0)
    with pytest.raises(ValidationError, match="attempts"):
        RetrySettings(attempts=0)


def test_nested_retry_settings_load_from_a_mapping(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    loaded = settings(ca_bundle=str(bundle), retry={"attempts": 2, "initial_backoff_seconds": 0.5})
    assert loaded.ca_bundle == bundle
    assert loaded.retry.attempts == 2
    assert loaded.retry.initial_backoff_seconds == 0.5
    assert loaded.retry.max_backoff_seconds == 10.0
