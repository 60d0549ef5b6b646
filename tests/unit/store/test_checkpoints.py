"""CheckpointStore on a local directory: manifest last, visibility, integrity, retention."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hybridrl.store import (
    CheckpointCorrupt,
    CheckpointExists,
    CheckpointRef,
    CheckpointStore,
    LocalObjectStore,
    ObjectNotFound,
    open_checkpoint,
)

CREATED_AT = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
# hashlib.sha256(b"abc"): the FIPS 180-2 test vector.
SHA256_ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
SHA256_EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


class RecordingStore(LocalObjectStore):
    """A local store that records its writes and deletes in order."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.events: list[tuple[str, str]] = []

    def put_bytes(self, key: str, data: bytes) -> None:
        self.events.append(("put", key))
        super().put_bytes(key, data)

    def put_file(self, key: str, path: Path) -> None:
        self.events.append(("put", key))
        super().put_file(key, path)

    def delete(self, key: str) -> None:
        self.events.append(("delete", key))
        super().delete(key)

    def delete_many(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.delete(key)


@pytest.fixture
def store(tmp_path: Path) -> RecordingStore:
    return RecordingStore(tmp_path / "bucket")


@pytest.fixture
def checkpoints(store: RecordingStore) -> CheckpointStore:
    return CheckpointStore(store, "run-1", clock=lambda: CREATED_AT)


def save_steps(checkpoints: CheckpointStore, steps: Iterable[int]) -> None:
    for step in steps:
        checkpoints.save(step, {"adapter.bin": f"weights {step}".encode()}, {"version": step})


def test_save_writes_every_shard_before_the_manifest(
    checkpoints: CheckpointStore, store: RecordingStore
) -> None:
    ref = checkpoints.save(200, {"a.bin": b"abc", "nested/b.bin": b""}, {"policy_version": 7})
    assert ref == CheckpointRef(
        step=200, key="run-1/step-000000200", uri=store.uri("run-1/step-000000200/")
    )
    assert store.events == [
        ("put", "run-1/step-000000200/a.bin"),
        ("put", "run-1/step-000000200/nested/b.bin"),
        ("put", "run-1/step-000000200/manifest.json"),
    ]


def test_manifest_records_sizes_digests_step_time_and_metadata(
    checkpoints: CheckpointStore, store: RecordingStore
) -> None:
    ref = checkpoints.save(200, {"a.bin": b"abc", "nested/b.bin": b""}, {"policy_version": 7})
    stored = store.get_bytes("run-1/step-000000200/manifest.json")
    assert json.loads(stored) == {
        "format": 1,
        "step": 200,
        "created_at": "2026-11-25T10:00:00+00:00",
        "files": {
            "a.bin": {"size": 3, "sha256": SHA256_ABC},
            "nested/b.bin": {"size": 0, "sha256": SHA256_EMPTY},
        },
        "metadata": {"policy_version": 7},
    }
    manifest = checkpoints.read_manifest(ref)
    assert manifest.step == 200
    assert manifest.created_at == CREATED_AT
    assert manifest.files["a.bin"].sha256 == SHA256_ABC
    assert manifest.metadata == {"policy_version": 7}
    assert checkpoints.manifest_sha256(ref) == hashlib.sha256(stored).hexdigest()


def test_manifest_bytes_are_the_same_for_the_same_checkpoint(tmp_path: Path) -> None:
    digests = []
    for name in ("one", "two"):
        checkpoints = CheckpointStore(
            LocalObjectStore(tmp_path / name), "", clock=lambda: CREATED_AT
        )
        ref = checkpoints.save(1, {"w": b"abc"}, {"b": 1, "a": [1.5, None]})
        digests.append(checkpoints.manifest_sha256(ref))
    assert digests[0] == digests[1]


def test_a_local_file_is_uploaded_with_its_digest(
    checkpoints: CheckpointStore, tmp_path: Path
) -> None:
    shard = tmp_path / "shard.bin"
    shard.write_bytes(b"abc")
    ref = checkpoints.save(5, {"shard.bin": shard}, {})
    assert checkpoints.read_manifest(ref).files["shard.bin"].sha256 == SHA256_ABC
    assert checkpoints.load_file(ref, "shard.bin") == b"abc"


def test_list_and_latest_show_complete_checkpoints_by_step(checkpoints: CheckpointStore) -> None:
    assert checkpoints.list() == []
    assert checkpoints.latest() is None
    save_steps(checkpoints, [5, 1, 30])
    assert [ref.step for ref in checkpoints.list()] == [1, 5, 30]
    latest = checkpoints.latest()
    assert latest is not None
    assert latest.step == 30
    assert checkpoints.load_file(latest, "adapter.bin") == b"weights 30"


def test_a_checkpoint_without_manifest_is_invisible(
    checkpoints: CheckpointStore, store: RecordingStore
) -> None:
    save_steps(checkpoints, [1])
    store.put_bytes("run-1/step-000000002/adapter.bin", b"half-written")
    assert [ref.step for ref in checkpoints.list()] == [1]
    latest = checkpoints.latest()
    assert latest is not None
    assert latest.step == 1


def test_objects_outside_step_directories_are_ignored(
    checkpoints: CheckpointStore, store: RecordingStore
) -> None:
    store.put_bytes("run-1/notes.txt", b"x")
    store.put_bytes("run-1/steps-000000001/manifest.json", b"{}")
    store.put_bytes("run-10/step-000000009/manifest.json", b"{}")
    save_steps(checkpoints, [3])
    assert [ref.step for ref in checkpoints.list()] == [3]


def test_a_shard_with_other_content_of_the_same_size_is_detected(
    checkpoints: CheckpointStore, store: RecordingStore, tmp_path: Path
) -> None:
    ref = checkpoints.save(1, {"a.bin": b"abc"}, {})
    store.put_bytes("run-1/step-000000001/a.bin", b"abd")
    with pytest.raises(CheckpointCorrupt, match="SHA-256"):
        checkpoints.load_file(ref, "a.bin")
    with pytest.raises(CheckpointCorrupt, match="SHA-256"):
        checkpoints.download(ref, tmp_path / "local")
    assert not (tmp_path / "local" / "a.bin").exists()
    assert not (tmp_path / "local" / "manifest.json").exists()


def test_a_truncated_shard_is_detected(checkpoints: CheckpointStore, store: RecordingStore) -> None:
    ref = checkpoints.save(1, {"a.bin": b"abc"}, {})
    store.put_bytes("run-1/step-000000001/a.bin", b"ab")
    with pytest.raises(CheckpointCorrupt, match="2 bytes, the manifest says 3"):
        checkpoints.load_file(ref, "a.bin")


def test_a_missing_shard_is_object_not_found(
    checkpoints: CheckpointStore, store: RecordingStore
) -> None:
    ref = checkpoints.save(1, {"a.bin": b"abc"}, {})
    store.delete("run-1/step-000000001/a.bin")
    with pytest.raises(ObjectNotFound):
        checkpoints.load_file(ref, "a.bin")


def test_a_file_the_manifest_does_not_list_is_not_part_of_the_checkpoint(
    checkpoints: CheckpointStore, store: RecordingStore
) -> None:
    ref = checkpoints.save(1, {"a.bin": b"abc"}, {})
    store.put_bytes("run-1/step-000000001/extra.bin", b"x")
    with pytest.raises(ObjectNotFound, match=r"step-000000001/extra\.bin"):
        checkpoints.load_file(ref, "extra.bin")


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (b"{not json", "malformed"),
        (b'{"format": 2}', "unknown format 2"),
        (
            b'{"format": 1, "step": 1, "created_at": "2026-11-25T10:00:00+00:00", '
            b'"files": {"../../escape": {"size": 3, "sha256": "' + SHA256_ABC.encode() + b'"}}, '
            b'"metadata": {}}',
            r"'\.\.'",
        ),
        (
            b'{"format": 1, "step": 1, "created_at": "2026-11-25T10:00:00+00:00", '
            b'"files": {"a.bin": {"size": 3, "sha256": "' + SHA256_ABC.encode() + b'"}}, '
            b'"metadata": {"shift": NaN}}',
            "non-finite",
        ),
        (
            b'{"format": 1, "step": 2, "created_at": "2026-11-25T10:00:00+00:00", '
            b'"files": {"a.bin": {"size": 3, "sha256": "' + SHA256_ABC.encode() + b'"}}, '
            b'"metadata": {}}',
            "says step 2, its directory 1",
        ),
    ],
)
def test_a_malformed_manifest_is_a_corrupt_checkpoint(
    checkpoints: CheckpointStore,
    store: RecordingStore,
    tmp_path: Path,
    manifest: bytes,
    message: str,
) -> None:
    ref = checkpoints.save(1, {"a.bin": b"abc"}, {})
    store.put_bytes("run-1/step-000000001/manifest.json", manifest)
    with pytest.raises(CheckpointCorrupt, match=message):
        checkpoints.read_manifest(ref)
    with pytest.raises(CheckpointCorrupt, match=message):
        checkpoints.download(ref, tmp_path / "local")
    assert not (tmp_path / "escape").exists()


def test_download_writes_verified_files_and_the_manifest(
    checkpoints: CheckpointStore, tmp_path: Path
) -> None:
    ref = checkpoints.save(1, {"a.bin": b"abc", "adapter/b.bin": b"bb"}, {"v": 1})
    paths = checkpoints.download(ref, tmp_path / "local")
    assert paths == {
        "a.bin": tmp_path / "local" / "a.bin",
        "adapter/b.bin": tmp_path / "local" / "adapter" / "b.bin",
    }
    assert paths["adapter/b.bin"].read_bytes() == b"bb"
    manifest_copy = (tmp_path / "local" / "manifest.json").read_bytes()
    assert hashlib.sha256(manifest_copy).hexdigest() == checkpoints.manifest_sha256(ref)


def test_saving_a_complete_step_again_is_refused_and_leaves_it_intact(
    checkpoints: CheckpointStore,
) -> None:
    ref = checkpoints.save(1, {"a.bin": b"abc"}, {"v": 1})
    digest = checkpoints.manifest_sha256(ref)
    with pytest.raises(CheckpointExists, match="step-000000001"):
        checkpoints.save(1, {"a.bin": b"other"}, {"v": 2})
    assert checkpoints.load_file(ref, "a.bin") == b"abc"
    assert checkpoints.manifest_sha256(ref) == digest


def test_saving_over_a_half_written_step_replaces_it_and_drops_stray_files(
    checkpoints: CheckpointStore, store: RecordingStore
) -> None:
    store.put_bytes("run-1/step-000000004/a.bin", b"attempt 1")
    store.put_bytes("run-1/step-000000004/optimizer.bin", b"attempt 1")
    ref = checkpoints.save(4, {"a.bin": b"abc"}, {})
    assert checkpoints.load_file(ref, "a.bin") == b"abc"
    assert [info.key for info in store.list("run-1/")] == [
        "run-1/step-000000004/a.bin",
        "run-1/step-000000004/manifest.json",
    ]


@pytest.mark.parametrize(
    ("step", "files", "metadata", "message"),
    [
        (-1, {"a": b"x"}, {}, "non-negative"),
        (True, {"a": b"x"}, {}, "non-negative"),
        (1, {}, {}, "at least one file"),
        (1, {"manifest.json": b"x"}, {}, "reserved"),
        (1, {"../a": b"x"}, {}, "'..'"),
        (1, {"a": "text"}, {}, "bytes or a Path"),
        (1, {"a": b"x"}, {"shift": float("nan")}, "finite JSON"),
        (1, {"a": b"x"}, {"offsets": {0: 12}}, "non-string key 0"),
    ],
)
def test_bad_save_arguments_raise_value_error_and_write_nothing(
    checkpoints: CheckpointStore,
    store: RecordingStore,
    step: int,
    files: dict[str, bytes],
    metadata: dict[str, object],
    message: str,
) -> None:
    with pytest.raises(ValueError, match=message):
        checkpoints.save(step, files, metadata)  # type: ignore[arg-type]
    assert store.list() == []


def test_retain_keeps_the_newest_and_deletes_older_and_dead_partial_ones(
    checkpoints: CheckpointStore, store: RecordingStore
) -> None:
    save_steps(checkpoints, [1, 3, 4, 5])
    store.put_bytes("run-1/step-000000002/adapter.bin", b"died half-way")
    store.put_bytes("run-1/step-000000009/adapter.bin", b"save in progress")
    assert checkpoints.retain(keep_last=2) == [1, 2, 3]
    assert [ref.step for ref in checkpoints.list()] == [4, 5]
    assert store.exists("run-1/step-000000009/adapter.bin")
    assert not store.exists("run-1/step-000000002/adapter.bin")
    assert checkpoints.retain(keep_last=2) == []


def test_retain_removes_the_manifest_before_the_shards(
    checkpoints: CheckpointStore, store: RecordingStore
) -> None:
    save_steps(checkpoints, [1, 2])
    store.events.clear()
    checkpoints.retain(keep_last=1)
    assert store.events == [
        ("delete", "run-1/step-000000001/manifest.json"),
        ("delete", "run-1/step-000000001/adapter.bin"),
    ]


def test_retain_without_complete_checkpoints_deletes_nothing(
    checkpoints: CheckpointStore, store: RecordingStore
) -> None:
    store.put_bytes("run-1/step-000000002/adapter.bin", b"in progress")
    assert checkpoints.retain(keep_last=1) == []
    assert store.exists("run-1/step-000000002/adapter.bin")


@pytest.mark.parametrize("keep_last", [0, -1, True])
def test_retain_refuses_to_keep_nothing(checkpoints: CheckpointStore, keep_last: int) -> None:
    with pytest.raises(ValueError, match="keep_last"):
        checkpoints.retain(keep_last)


def test_open_checkpoint_finds_the_checkpoint_a_policy_event_names(
    checkpoints: CheckpointStore,
) -> None:
    ref = checkpoints.save(200, {"adapter.bin": b"abc"}, {})
    for uri in (ref.uri, ref.uri.removesuffix("/"), ref.uri + "manifest.json"):
        opened, opened_ref = open_checkpoint(uri)
        assert opened_ref.step == 200
        assert opened_ref.uri == ref.uri
        assert opened.load_file(opened_ref, "adapter.bin") == b"abc"
        assert opened.manifest_sha256(opened_ref) == checkpoints.manifest_sha256(ref)


def test_open_checkpoint_refuses_a_uri_that_is_not_a_step_directory(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="checkpoint directory"):
        open_checkpoint((tmp_path / "run-1" / "weights").as_uri())


def test_the_digest_from_a_policy_event_must_match_the_manifest(
    checkpoints: CheckpointStore, tmp_path: Path
) -> None:
    ref = checkpoints.save(1, {"a.bin": b"abc"}, {})
    digest = checkpoints.manifest_sha256(ref)
    assert checkpoints.read_manifest(ref, expected_sha256=digest).step == 1
    assert checkpoints.download(ref, tmp_path / "ok", expected_sha256=digest) == {
        "a.bin": tmp_path / "ok" / "a.bin"
    }
    with pytest.raises(CheckpointCorrupt, match=f"expected {'0' * 64}"):
        checkpoints.read_manifest(ref, expected_sha256="0" * 64)
    with pytest.raises(CheckpointCorrupt, match="expected"):
        checkpoints.download(ref, tmp_path / "bad", expected_sha256="0" * 64)
    assert not (tmp_path / "bad").exists()
