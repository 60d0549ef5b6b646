"""open_object_store and resolve: from s3://, file:// and plain paths to a store and a key.

Building an S3 store makes no request (create_bucket is off), so these run without a server.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from hybridrl.config.object_store import ObjectStoreSettings
from hybridrl.store import LocalObjectStore, S3ObjectStore, open_object_store, resolve

SETTINGS = ObjectStoreSettings(
    endpoint="minio.hybridrl.svc:9000",
    access_key=SecretStr("access"),
    secret_key=SecretStr("secret"),
)


def test_s3_uri_opens_a_store_on_its_bucket_and_prefix() -> None:
    store = open_object_store("s3://runs/team-a/run-1/", SETTINGS)
    assert isinstance(store, S3ObjectStore)
    assert (store.bucket, store.prefix) == ("runs", "team-a/run-1")
    assert store.uri("step-000000001/manifest.json") == (
        "s3://runs/team-a/run-1/step-000000001/manifest.json"
    )


def test_s3_uri_without_prefix_uses_the_whole_bucket() -> None:
    store = open_object_store("s3://runs", SETTINGS)
    assert isinstance(store, S3ObjectStore)
    assert (store.bucket, store.prefix) == ("runs", "")


def test_s3_uri_needs_settings() -> None:
    with pytest.raises(ValueError, match="ObjectStoreSettings"):
        open_object_store("s3://runs/run-1")


@pytest.mark.parametrize("uri", ["s3://", "s3:///run-1", "s3://Not_A_Bucket/run-1"])
def test_s3_uri_with_a_bad_bucket_is_refused(uri: str) -> None:
    with pytest.raises(ValueError, match="bucket"):
        open_object_store(uri, SETTINGS)


def test_file_uri_and_plain_path_open_a_local_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    by_uri = open_object_store((tmp_path / "objects").as_uri())
    assert isinstance(by_uri, LocalObjectStore)
    assert by_uri.root == tmp_path / "objects"
    by_path = open_object_store(str(tmp_path / "objects"))
    assert isinstance(by_path, LocalObjectStore)
    assert by_path.root == tmp_path / "objects"
    monkeypatch.chdir(tmp_path)
    relative = open_object_store("objects")
    assert isinstance(relative, LocalObjectStore)
    assert relative.root == tmp_path / "objects"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("gs://bucket/run-1", "unsupported scheme"),
        ("file://otherhost/data", "only local file URIs"),
        ("", "must not be empty"),
    ],
)
def test_unsupported_locations_are_refused(uri: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        open_object_store(uri)


def test_resolve_s3_object_uri_gives_bucket_store_and_full_key() -> None:
    store, key = resolve("s3://runs/run-1/step-000000200/adapter.safetensors", SETTINGS)
    assert isinstance(store, S3ObjectStore)
    assert (store.bucket, store.prefix) == ("runs", "")
    assert key == "run-1/step-000000200/adapter.safetensors"


@pytest.mark.parametrize(
    "uri",
    [
        "s3://runs/run-1/step-000000200/",
        "s3://runs/run-1/step-000000200/manifest.json",
        "s3://runs/key with spaces?and#marks",
    ],
)
def test_resolve_round_trips_s3_uris(uri: str) -> None:
    store, key = resolve(uri, SETTINGS)
    assert store.uri(key) == uri


def test_resolve_of_a_bucket_alone_is_refused() -> None:
    with pytest.raises(ValueError, match="names a bucket"):
        resolve("s3://runs/", SETTINGS)


def test_resolve_local_uri_gives_parent_store_and_name(tmp_path: Path) -> None:
    (tmp_path / "run 1").mkdir()
    (tmp_path / "run 1" / "w.bin").write_bytes(b"weights")
    uri = (tmp_path / "run 1" / "w.bin").as_uri()
    store, key = resolve(uri)
    assert isinstance(store, LocalObjectStore)
    assert store.root == tmp_path / "run 1"
    assert key == "w.bin"
    assert store.uri(key) == uri
    assert store.get_bytes(key) == b"weights"


def test_resolve_local_directory_uri_keeps_the_trailing_slash(tmp_path: Path) -> None:
    uri = (tmp_path / "run-1" / "step-000000200").as_uri() + "/"
    store, key = resolve(uri)
    assert key == "step-000000200/"
    assert store.uri(key) == uri


def test_resolve_of_the_file_system_root_is_refused() -> None:
    with pytest.raises(ValueError, match="file system root"):
        resolve("file:///")
