"""The object-store contract against both backends, and S3 against a real S3 server (moto).

One contract, two backends: every test taking ``backend`` runs on a local directory and on
the S3 server of the ``s3_server`` fixture, each test on a bucket of its own. The S3-only
tests cover what a directory cannot show: bucket creation, multipart transfers, a dead
endpoint, and a server restart ridden out by the retries.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from minio import Minio
from pydantic import SecretStr

from hybridrl.config.object_store import ObjectStoreSettings, RetrySettings
from hybridrl.local import LocalS3Server, free_port
from hybridrl.local.object_server import LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY
from hybridrl.store import (
    CheckpointCorrupt,
    CheckpointExists,
    CheckpointStore,
    ClaimCheckStore,
    FileEntry,
    LocalObjectStore,
    ObjectNotFound,
    ObjectStore,
    ObjectStoreError,
    ObjectStoreUnavailable,
    RetryPolicy,
    S3ObjectStore,
    open_object_store,
    resolve,
)

MIB = 1024 * 1024


def s3_settings(endpoint: str, **overrides: object) -> ObjectStoreSettings:
    values: dict[str, object] = {
        "endpoint": endpoint,
        "secure": False,
        "access_key": SecretStr(LOCAL_ACCESS_KEY),
        "secret_key": SecretStr(LOCAL_SECRET_KEY),
        "create_bucket": True,
        "part_size_bytes": 5 * MIB,
        "retry": RetrySettings(attempts=3, initial_backoff_seconds=0.05, max_backoff_seconds=0.2),
    }
    return ObjectStoreSettings.model_validate(values | overrides)


def unique_bucket() -> str:
    return f"hybridrl-test-{uuid.uuid4().hex[:16]}"


def raw_client(settings: ObjectStoreSettings) -> Minio:
    return Minio(
        settings.endpoint, access_key=LOCAL_ACCESS_KEY, secret_key=LOCAL_SECRET_KEY, secure=False
    )


@dataclass(frozen=True)
class Backend:
    store: ObjectStore
    settings: ObjectStoreSettings | None  # what resolve() needs for this backend's URIs


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "local":
        return Backend(LocalObjectStore(tmp_path / "objects"), None)
    server: LocalS3Server = request.getfixturevalue("s3_server")
    settings = s3_settings(server.endpoint)
    return Backend(open_object_store(f"s3://{unique_bucket()}/run", settings), settings)


@pytest.fixture
def settings(s3_server: LocalS3Server) -> ObjectStoreSettings:
    return s3_settings(s3_server.endpoint)


# --- the contract, on both backends ---------------------------------------------------------


def test_put_get_overwrite_and_empty_objects(backend: Backend) -> None:
    store = backend.store
    store.put_bytes("weights/a.bin", b"first")
    assert store.get_bytes("weights/a.bin") == b"first"
    store.put_bytes("weights/a.bin", b"second version")
    assert store.get_bytes("weights/a.bin") == b"second version"
    store.put_bytes("empty", b"")
    assert store.get_bytes("empty") == b""


def test_missing_object_is_object_not_found_with_its_uri(backend: Backend) -> None:
    with pytest.raises(ObjectNotFound) as caught:
        backend.store.get_bytes("no/such/key")
    assert caught.value.uri == backend.store.uri("no/such/key")
    assert isinstance(caught.value, KeyError)
    assert not backend.store.exists("no/such/key")


def test_list_is_a_sorted_string_prefix_match_with_sizes(backend: Backend) -> None:
    store = backend.store
    before = datetime.now(UTC).replace(microsecond=0)
    for key, data in {"r/s-2/b": b"22", "r/s-1/a": b"1", "r/o": b"333", "rx/y": b"4444"}.items():
        store.put_bytes(key, data)
    assert [(info.key, info.size) for info in store.list("r/")] == [
        ("r/o", 3),
        ("r/s-1/a", 1),
        ("r/s-2/b", 2),
    ]
    assert [info.key for info in store.list("r/s-")] == ["r/s-1/a", "r/s-2/b"]
    assert [info.key for info in store.list()] == ["r/o", "r/s-1/a", "r/s-2/b", "rx/y"]
    assert store.list("absent/") == []
    # S3 keeps last-modified to the second.
    assert all(info.last_modified >= before for info in store.list())


def test_delete_is_idempotent_and_delete_many_removes_all(backend: Backend) -> None:
    store = backend.store
    for key in ("a", "b/c", "b/d"):
        store.put_bytes(key, key.encode())
    store.delete("a")
    store.delete("a")
    assert not store.exists("a")
    store.delete_many(["b/c", "b/d", "never-existed"])
    store.delete_many([])
    assert store.list() == []


def test_files_round_trip_and_a_missing_object_leaves_no_file(
    backend: Backend, tmp_path: Path
) -> None:
    data = random.Random(1).randbytes(MIB + 17)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    backend.store.put_file("shards/0.bin", source)
    target = tmp_path / "copy" / "0.bin"
    backend.store.get_file("shards/0.bin", target)
    assert target.read_bytes() == data
    with pytest.raises(ObjectNotFound):
        backend.store.get_file("shards/missing.bin", tmp_path / "missing.bin")
    assert not (tmp_path / "missing.bin").exists()


def test_invalid_keys_are_refused(backend: Backend) -> None:
    with pytest.raises(ValueError, match=r"'\.\.'"):
        backend.store.put_bytes("../escape", b"x")
    with pytest.raises(ValueError, match="start or end"):
        backend.store.get_bytes("/absolute")


def test_resolve_reads_an_object_from_its_uri(backend: Backend) -> None:
    backend.store.put_bytes("run-1/step-000000200/adapter.bin", b"adapter")
    uri = backend.store.uri("run-1/step-000000200/adapter.bin")
    store, key = resolve(uri, backend.settings)
    assert store.get_bytes(key) == b"adapter"
    assert store.uri(key) == uri


def test_checkpoints_save_list_latest_load_and_retain(backend: Backend, tmp_path: Path) -> None:
    checkpoints = CheckpointStore(backend.store, "ckpt")
    for step in (10, 20, 30):
        checkpoints.save(step, {"adapter.bin": f"w{step}".encode()}, {"policy_version": step})
    backend.store.put_bytes("ckpt/step-000000040/adapter.bin", b"half-written")
    assert [ref.step for ref in checkpoints.list()] == [10, 20, 30]
    latest = checkpoints.latest()
    assert latest is not None
    assert latest.step == 30
    assert latest.uri == backend.store.uri("ckpt/step-000000030/")
    assert checkpoints.read_manifest(latest).metadata == {"policy_version": 30}
    paths = checkpoints.download(latest, tmp_path / "download")
    assert paths["adapter.bin"].read_bytes() == b"w30"
    assert checkpoints.retain(keep_last=2) == [10]
    assert [ref.step for ref in checkpoints.list()] == [20, 30]
    assert backend.store.exists("ckpt/step-000000040/adapter.bin")


def test_a_damaged_shard_is_detected(backend: Backend) -> None:
    checkpoints = CheckpointStore(backend.store, "ckpt")
    ref = checkpoints.save(1, {"adapter.bin": b"abc"}, {})
    backend.store.put_bytes("ckpt/step-000000001/adapter.bin", b"abd")
    with pytest.raises(CheckpointCorrupt):
        checkpoints.load_file(ref, "adapter.bin")


def test_claim_check_round_trip_writes_a_payload_once(backend: Backend) -> None:
    claims = ClaimCheckStore(backend.store, "claims", threshold_bytes=MIB)
    payload = random.Random(2).randbytes(MIB + 1)
    assert claims.should_offload(len(payload))
    check = claims.offload(payload, key_hint="group-1")
    assert claims.offload(payload, key_hint="group-1") == check
    assert check.sha256 == hashlib.sha256(payload).hexdigest()
    assert claims.fetch(check.uri, check.sha256) == payload
    assert [info.key for info in backend.store.list("claims/")] == [
        f"claims/{check.sha256[:2]}/{check.sha256}"
    ]


# --- S3 only ---------------------------------------------------------------------------------


def test_create_bucket_creates_it_once_and_tolerates_repeats(
    settings: ObjectStoreSettings,
) -> None:
    bucket = unique_bucket()
    client = raw_client(settings)
    assert not client.bucket_exists(bucket)
    store = open_object_store(f"s3://{bucket}/", settings)
    assert isinstance(store, S3ObjectStore)
    assert client.bucket_exists(bucket)
    store.ensure_bucket()
    store.put_bytes("a", b"a")
    assert client.get_object(bucket, "a").read() == b"a"


def test_a_missing_bucket_is_reported_by_name(settings: ObjectStoreSettings) -> None:
    bucket = unique_bucket()
    store = open_object_store(
        f"s3://{bucket}/", settings.model_copy(update={"create_bucket": False})
    )
    with pytest.raises(ObjectStoreError, match=f"bucket '{bucket}' does not exist"):
        store.get_bytes("a")


def test_prefixes_keep_runs_apart_in_one_bucket(settings: ObjectStoreSettings) -> None:
    bucket = unique_bucket()
    run_1 = open_object_store(f"s3://{bucket}/team/run-1", settings)
    run_10 = open_object_store(f"s3://{bucket}/team/run-10", settings)
    run_1.put_bytes("w", b"1")
    run_10.put_bytes("w", b"10")
    assert [info.key for info in run_1.list()] == ["w"]
    assert run_1.get_bytes("w") == b"1"
    assert raw_client(settings).get_object(bucket, "team/run-10/w").read() == b"10"


def test_a_checkpoint_written_by_two_processes_is_committed_by_one(
    settings: ObjectStoreSettings, tmp_path: Path
) -> None:
    bucket = unique_bucket()
    # Each learner rank has its own client on the shared bucket.
    rank0 = CheckpointStore(open_object_store(f"s3://{bucket}/run", settings), "ckpt")
    rank1 = CheckpointStore(open_object_store(f"s3://{bucket}/run", settings), "ckpt")
    rank0.write_shard(3, "leftover.bin", b"an earlier attempt")
    shard = tmp_path / "rank1.pt"
    shard.write_bytes(b"rank 1 state")
    entries = {
        "rank0.pt": rank0.write_shard(3, "rank0.pt", b"abc"),
        "rank1.pt": rank1.write_shard(3, "rank1.pt", shard),
    }
    assert entries["rank0.pt"] == FileEntry(size=3, sha256=hashlib.sha256(b"abc").hexdigest())
    assert rank0.latest() is None
    with pytest.raises(CheckpointCorrupt, match=r"rank2\.pt is not stored"):
        rank0.commit(3, {**entries, "rank2.pt": entries["rank0.pt"]}, {})
    assert rank1.latest() is None
    ref = rank0.commit(3, entries, {"policy_version": 1})
    assert rank1.latest() == ref
    assert rank1.load_file(ref, "rank1.pt") == b"rank 1 state"
    assert [info.key for info in rank1.store.list("ckpt/")] == [
        "ckpt/step-000000003/manifest.json",
        "ckpt/step-000000003/rank0.pt",
        "ckpt/step-000000003/rank1.pt",
    ]
    with pytest.raises(CheckpointExists):
        rank1.commit(3, entries, {})


def test_a_20_mb_file_goes_up_in_parts_and_comes_back_whole(
    settings: ObjectStoreSettings, tmp_path: Path
) -> None:
    bucket = unique_bucket()
    store = open_object_store(f"s3://{bucket}/big", settings)
    data = random.Random(3).randbytes(20_000_000)
    source = tmp_path / "shard.bin"
    source.write_bytes(data)
    store.put_file("shard.bin", source)
    # A multipart ETag ends with the part count: 20,000,000 bytes in 5 MiB parts is 4 parts.
    etag = raw_client(settings).stat_object(bucket, "big/shard.bin").etag
    assert etag is not None
    assert etag.endswith("-4")
    target = tmp_path / "download.bin"
    store.get_file("shard.bin", target)
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(data).digest()
    assert [(info.key, info.size) for info in store.list()] == [("shard.bin", 20_000_000)]


def test_a_dead_endpoint_is_unavailable_after_the_configured_attempts() -> None:
    sleeps: list[float] = []
    retry = RetryPolicy(
        attempts=3, initial_backoff=0.5, max_backoff=4.0, sleep=sleeps.append, jitter=lambda: 1.0
    )
    dead = s3_settings(f"127.0.0.1:{free_port()}", create_bucket=False)
    store = open_object_store("s3://runs/run-1", dead, retry=retry)
    with pytest.raises(ObjectStoreUnavailable, match="failed 3 time") as caught:
        store.get_bytes("weights.bin")
    assert "s3://runs/run-1/weights.bin" in str(caught.value)
    assert sleeps == [0.5, 1.0]


@pytest.fixture
def restartable_server(tmp_path: Path) -> Iterator[LocalS3Server]:
    with LocalS3Server(tmp_path / "restartable") as server:
        yield server


def test_retries_ride_out_a_server_restart(restartable_server: LocalS3Server) -> None:
    restarts: list[float] = []

    def restart_while_waiting(delay: float) -> None:
        restarts.append(delay)
        restartable_server.start()

    retry = RetryPolicy(attempts=3, sleep=restart_while_waiting, jitter=lambda: 0.0)
    settings = s3_settings(restartable_server.endpoint, create_bucket=False)
    store = open_object_store(f"s3://{unique_bucket()}/run", settings, retry=retry)
    assert isinstance(store, S3ObjectStore)
    restartable_server.stop()
    store.ensure_bucket()  # refused once, then answered by the restarted server
    assert restarts == [0.0]
    store.put_bytes("after-restart", b"ok")
    assert store.get_bytes("after-restart") == b"ok"
