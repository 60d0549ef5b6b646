"""A checkpoint written by several processes: each uploads its shards, one commits them.

Two ``CheckpointStore`` objects on one local directory stand for two learner ranks.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hybridrl.store import (
    CheckpointCorrupt,
    CheckpointExists,
    CheckpointStore,
    FileEntry,
    LocalObjectStore,
)

CREATED_AT = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
# hashlib.sha256(b"abc") and hashlib.sha256(b""): FIPS 180-2 and the empty-input digests.
SHA256_ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
SHA256_EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
RANK_0 = "zero_pp_rank_0_mp_rank_00_optim_states.pt"
RANK_1 = "zero_pp_rank_1_mp_rank_00_optim_states.pt"
STEP_KEY = "run-1/step-000000007"


def rank_store(root: Path) -> CheckpointStore:
    """What one learner process opens: its own client on the shared store."""
    return CheckpointStore(LocalObjectStore(root), "run-1", clock=lambda: CREATED_AT)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "bucket"


def test_two_processes_write_shards_and_one_commits(root: Path, tmp_path: Path) -> None:
    rank0, rank1 = rank_store(root), rank_store(root)
    local_shard = tmp_path / "rank1.pt"
    local_shard.write_bytes(b"")
    entries = {
        RANK_0: rank0.write_shard(7, RANK_0, b"abc"),
        RANK_1: rank1.write_shard(7, RANK_1, local_shard),
        "adapter.bin": rank0.write_shard(7, "adapter.bin", b"abc"),
    }
    assert entries[RANK_0] == FileEntry(size=3, sha256=SHA256_ABC)
    assert entries[RANK_1] == FileEntry(size=0, sha256=SHA256_EMPTY)
    assert rank0.latest() is None  # uploaded, not committed: invisible

    ref = rank0.commit(7, entries, {"policy_version": 3})
    assert ref.key == STEP_KEY
    manifest = json.loads((root / STEP_KEY / "manifest.json").read_bytes())
    assert manifest["files"] == {
        "adapter.bin": {"size": 3, "sha256": SHA256_ABC},
        RANK_0: {"size": 3, "sha256": SHA256_ABC},
        RANK_1: {"size": 0, "sha256": SHA256_EMPTY},
    }
    assert manifest["metadata"] == {"policy_version": 3}
    latest = rank1.latest()
    assert latest == ref
    assert rank1.load_file(latest, RANK_0) == b"abc"
    assert rank1.load_file(latest, RANK_1) == b""


def test_latest_ignores_a_step_whose_shards_are_not_committed(root: Path) -> None:
    writer = rank_store(root)
    writer.save(5, {"adapter.bin": b"five"}, {})
    writer.write_shard(6, RANK_0, b"abc")
    latest = writer.latest()
    assert latest is not None
    assert latest.step == 5
    assert [ref.step for ref in writer.list()] == [5]


def test_commit_listing_a_missing_file_fails_and_writes_no_manifest(root: Path) -> None:
    rank0, rank1 = rank_store(root), rank_store(root)
    entries = {RANK_0: rank0.write_shard(7, RANK_0, b"abc")}
    entries[RANK_1] = FileEntry(size=3, sha256=SHA256_ABC)  # rank 1 never uploaded it
    with pytest.raises(CheckpointCorrupt, match=f"{RANK_1} is not stored"):
        rank1.commit(7, entries, {})
    assert not (root / STEP_KEY / "manifest.json").exists()
    assert rank1.latest() is None
    assert (root / STEP_KEY / RANK_0).read_bytes() == b"abc"  # nothing deleted


def test_commit_with_a_wrong_size_fails_and_writes_no_manifest(root: Path) -> None:
    writer = rank_store(root)
    writer.write_shard(7, RANK_0, b"abc")
    with pytest.raises(CheckpointCorrupt, match=f"{RANK_0} has 3 bytes, its entry says 4"):
        writer.commit(7, {RANK_0: FileEntry(size=4, sha256=SHA256_ABC)}, {})
    assert not (root / STEP_KEY / "manifest.json").exists()


def test_commit_after_commit_is_refused_and_leaves_the_checkpoint_intact(root: Path) -> None:
    rank0, rank1 = rank_store(root), rank_store(root)
    entries = {RANK_0: rank0.write_shard(7, RANK_0, b"abc")}
    ref = rank0.commit(7, entries, {"v": 1})
    digest = rank0.manifest_sha256(ref)
    with pytest.raises(CheckpointExists, match="step-000000007"):
        rank1.commit(7, entries, {"v": 2})
    with pytest.raises(CheckpointExists, match="step-000000007"):
        rank1.commit(7, {"other.bin": FileEntry(size=3, sha256=SHA256_ABC)}, {})
    with pytest.raises(CheckpointExists, match="step-000000007"):
        rank1.write_shard(7, RANK_1, b"late")
    assert rank0.manifest_sha256(ref) == digest
    assert sorted(path.name for path in (root / STEP_KEY).iterdir()) == [
        "manifest.json",
        RANK_0,
    ]


def test_commit_deletes_the_files_of_the_step_it_does_not_list(root: Path) -> None:
    writer = rank_store(root)
    writer.write_shard(7, "nested/leftover.bin", b"attempt 1")
    entries = {RANK_0: writer.write_shard(7, RANK_0, b"abc")}
    writer.commit(7, entries, {})
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) == [
        f"{STEP_KEY}/manifest.json",
        f"{STEP_KEY}/{RANK_0}",
    ]


@pytest.mark.parametrize(
    ("step", "name", "content", "message"),
    [
        (-1, "a", b"x", "non-negative"),
        (1, "manifest.json", b"x", "reserved"),
        (1, "../a", b"x", "'..'"),
        (1, "a", "text", "bytes or a Path"),
    ],
)
def test_bad_shard_arguments_raise_value_error_and_write_nothing(
    root: Path, step: int, name: str, content: bytes, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        rank_store(root).write_shard(step, name, content)
    assert not root.exists()


@pytest.mark.parametrize(
    ("entries", "metadata", "message"),
    [
        ({}, {}, "at least one file"),
        ({"manifest.json": FileEntry(size=3, sha256=SHA256_ABC)}, {}, "reserved"),
        ({"a": (3, SHA256_ABC)}, {}, "FileEntry"),
        ({"a": FileEntry(size=3, sha256=SHA256_ABC)}, {"shift": float("nan")}, "finite JSON"),
    ],
)
def test_bad_commit_arguments_raise_value_error(
    root: Path, entries: dict[str, FileEntry], metadata: dict[str, object], message: str
) -> None:
    writer = rank_store(root)
    writer.write_shard(1, "a", b"abc")
    with pytest.raises(ValueError, match=message):
        writer.commit(1, entries, metadata)  # type: ignore[arg-type]
    assert writer.latest() is None


@pytest.mark.parametrize(
    ("size", "sha256", "message"),
    [(-1, SHA256_ABC, "size"), (True, SHA256_ABC, "size"), (3, "ABC", "sha256")],
)
def test_a_file_entry_must_hold_a_size_and_a_hex_digest(
    size: int, sha256: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        FileEntry(size=size, sha256=sha256)
