"""LocalObjectStore: the ObjectStore contract on a directory, atomic writes, key rules."""

from __future__ import annotations

import random
from datetime import UTC
from pathlib import Path
from typing import BinaryIO

import pytest

from hybridrl.store import LocalObjectStore, ObjectNotFound, ObjectStore
from hybridrl.store.local_object_store import write_file_atomically


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "objects")


def files_under(directory: Path) -> list[str]:
    return sorted(path.relative_to(directory).as_posix() for path in directory.rglob("*"))


def test_is_an_object_store(store: LocalObjectStore) -> None:
    assert isinstance(store, ObjectStore)


def test_put_then_get_returns_the_bytes_and_overwrite_replaces_them(
    store: LocalObjectStore,
) -> None:
    store.put_bytes("run-1/weights.bin", b"\x00\x01first")
    assert store.get_bytes("run-1/weights.bin") == b"\x00\x01first"
    store.put_bytes("run-1/weights.bin", b"second")
    assert store.get_bytes("run-1/weights.bin") == b"second"
    assert (store.root / "run-1" / "weights.bin").read_bytes() == b"second"


def test_empty_object_round_trips(store: LocalObjectStore) -> None:
    store.put_bytes("empty", b"")
    assert store.get_bytes("empty") == b""
    assert [(info.key, info.size) for info in store.list()] == [("empty", 0)]


def test_missing_object_raises_object_not_found_which_is_a_key_error(
    store: LocalObjectStore,
) -> None:
    with pytest.raises(ObjectNotFound) as caught:
        store.get_bytes("run-1/missing.bin")
    assert isinstance(caught.value, KeyError)
    expected_uri = (store.root / "run-1" / "missing.bin").as_uri()
    assert caught.value.uri == expected_uri
    assert str(caught.value) == f"no object at {expected_uri}"


def test_a_directory_is_not_an_object(store: LocalObjectStore) -> None:
    store.put_bytes("run-1/step/a", b"a")
    assert not store.exists("run-1/step")
    with pytest.raises(ObjectNotFound):
        store.get_bytes("run-1/step")


def test_exists_tells_stored_from_missing(store: LocalObjectStore) -> None:
    store.put_bytes("a/b", b"x")
    assert store.exists("a/b")
    assert not store.exists("a/c")


def test_put_file_and_get_file_copy_a_multi_chunk_file(
    store: LocalObjectStore, tmp_path: Path
) -> None:
    # 2.5 MiB spans three of the 1 MiB copy chunks.
    data = random.Random(0).randbytes(5 * 512 * 1024)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    store.put_file("shards/model.bin", source)
    target = tmp_path / "download" / "nested" / "model.bin"
    store.get_file("shards/model.bin", target)
    assert target.read_bytes() == data
    assert store.get_bytes("shards/model.bin") == data


def test_get_file_of_a_missing_object_creates_no_file(
    store: LocalObjectStore, tmp_path: Path
) -> None:
    target = tmp_path / "out.bin"
    with pytest.raises(ObjectNotFound):
        store.get_file("missing", target)
    assert not target.exists()


def test_list_matches_a_string_prefix_not_only_whole_directories(
    store: LocalObjectStore,
) -> None:
    for key, data in {
        "run/step-1/a": b"1",
        "run/step-2/b": b"22",
        "run/other": b"333",
        "runner/x": b"4444",
    }.items():
        store.put_bytes(key, data)
    assert [(info.key, info.size) for info in store.list("run/")] == [
        ("run/other", 3),
        ("run/step-1/a", 1),
        ("run/step-2/b", 2),
    ]
    assert [info.key for info in store.list("run/step-")] == ["run/step-1/a", "run/step-2/b"]
    assert [info.key for info in store.list("run")] == [
        "run/other",
        "run/step-1/a",
        "run/step-2/b",
        "runner/x",
    ]
    assert [info.key for info in store.list()] == [info.key for info in store.list("run")]
    assert store.list("nothing/") == []
    assert all(info.last_modified.tzinfo == UTC for info in store.list())


def test_list_of_a_store_that_was_never_written_is_empty(tmp_path: Path) -> None:
    assert LocalObjectStore(tmp_path / "never-created").list() == []


def test_list_skips_temporary_files_of_writes_in_progress(store: LocalObjectStore) -> None:
    store.put_bytes("run/a", b"a")
    (store.root / "run" / f".b.{'0' * 32}.partial").write_bytes(b"half")
    assert [info.key for info in store.list()] == ["run/a"]


def test_failed_write_leaves_the_previous_content_and_no_temporary_file(
    store: LocalObjectStore,
) -> None:
    store.put_bytes("weights", b"old weights")

    def write_half_then_fail(handle: BinaryIO) -> None:
        handle.write(b"new wei")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_file_atomically(store.root / "weights", write_half_then_fail)
    assert store.get_bytes("weights") == b"old weights"
    assert files_under(store.root) == ["weights"]


def test_writes_leave_no_temporary_files(store: LocalObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.write_bytes(b"file")
    store.put_bytes("a/b", b"bytes")
    store.put_file("a/c", source)
    store.get_file("a/b", tmp_path / "copy")
    assert files_under(store.root) == ["a", "a/b", "a/c"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["copy", "objects", "source"]


def test_delete_is_idempotent_and_prunes_empty_directories(store: LocalObjectStore) -> None:
    store.put_bytes("run/step-1/a", b"a")
    store.put_bytes("run/keep", b"k")
    store.delete("run/step-1/a")
    store.delete("run/step-1/a")
    assert files_under(store.root) == ["run", "run/keep"]
    store.delete("run/keep")
    assert store.root.is_dir()
    assert files_under(store.root) == []


def test_delete_many_checks_every_key_before_deleting_any(store: LocalObjectStore) -> None:
    store.put_bytes("a", b"a")
    store.put_bytes("b", b"b")
    with pytest.raises(ValueError, match=r"'\.\.'"):
        store.delete_many(["a", "../outside"])
    assert [info.key for info in store.list()] == ["a", "b"]
    store.delete_many(["a", "b", "never-there"])
    assert store.list() == []


@pytest.mark.parametrize(
    "key", ["", "/abs", "trailing/", "a//b", "../x", "a/./b", "a/../b", "a\\b", "a\nb"]
)
def test_keys_breaking_the_key_rules_are_refused(store: LocalObjectStore, key: str) -> None:
    with pytest.raises(ValueError, match="key"):
        store.put_bytes(key, b"x")
    with pytest.raises(ValueError, match="key"):
        store.get_bytes(key)


def test_key_longer_than_s3_allows_is_refused(store: LocalObjectStore) -> None:
    with pytest.raises(ValueError, match="1024 bytes"):
        store.put_bytes("a/" + "é" * 512, b"x")


def test_key_named_like_a_temporary_file_is_refused(store: LocalObjectStore) -> None:
    with pytest.raises(ValueError, match="temporary"):
        store.put_bytes(f"run/.b.{'a' * 32}.partial", b"x")


def test_uri_is_a_file_uri_and_a_trailing_slash_names_a_directory(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "my objects")
    root_uri = (tmp_path / "my objects").as_uri()
    assert "my%20objects" in root_uri
    assert store.uri() == root_uri + "/"
    assert store.uri("run/step-000000001/") == root_uri + "/run/step-000000001/"
    assert store.uri("run/w.bin") == root_uri + "/run/w.bin"
