"""The object store as a directory: for a laptop, a shared volume, and the unit tests.

Implements ``ObjectStore`` with one file per key under a root directory. Every write goes to
a temporary file next to its target, is flushed to disk, and is renamed over the target with
``os.replace``: a reader (a rollout worker loading weights while the learner saves) sees the
old file or the new one, never half of one.

Differences from S3 that the file system imposes: a key cannot be both an object and the
directory of other objects (``a`` and ``a/b``), and a key segment longer than about 200
characters may exceed the file system's name limit.
"""

from __future__ import annotations

import builtins
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from hybridrl.store.object_store import ObjectInfo, ObjectNotFound, validate_key, validate_prefix

# Temporary files: ".<target name>.<32 hex>.partial" in the target's directory.
_TEMPORARY_NAME = re.compile(r"^\..+\.[0-9a-f]{32}\.partial$")
_COPY_CHUNK_BYTES = 1024 * 1024
# A concurrent delete may remove the directory a write has just created (it prunes empty
# directories); the write then makes it again. Two rounds suffice unless deletes race on
# every round.
_WRITE_ROUNDS = 5


def write_file_atomically(target: Path, write: Callable[[BinaryIO], object]) -> None:
    """Create or replace ``target`` with what ``write`` writes, all at once.

    The bytes go to a temporary file in the same directory (so the rename stays on one file
    system), are flushed with ``fsync``, and the file is renamed over ``target``. On failure
    the temporary file is removed and ``target`` is left as it was.
    """
    for round_number in range(1, _WRITE_ROUNDS + 1):
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.parent / f".{target.name}.{uuid.uuid4().hex}.partial"
        try:
            handle = open(temporary, "xb")  # noqa: SIM115 - closed in the finally below
        except FileNotFoundError:
            if round_number == _WRITE_ROUNDS:
                raise
            continue
        try:
            with handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, target)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        _fsync_directory(target.parent)
        return


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; without it a power cut may bring back the old name.
    # Windows cannot open a directory, and its renames need no such step.
    if os.name != "posix":
        return
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class LocalObjectStore:
    """``ObjectStore`` over the directory ``root`` (created on the first write)."""

    def __init__(self, root: Path | str) -> None:
        self._root = Path(root).absolute()

    @property
    def root(self) -> Path:
        return self._root

    def __repr__(self) -> str:
        return f"LocalObjectStore(root={str(self._root)!r})"

    def _path(self, key: str) -> Path:
        validate_key(key)
        if any(_TEMPORARY_NAME.match(segment) for segment in key.split("/")):
            raise ValueError(f"object key {key!r} has a segment named like a temporary file")
        return self._root.joinpath(*key.split("/"))

    def put_bytes(self, key: str, data: bytes) -> None:
        write_file_atomically(self._path(key), lambda handle: handle.write(data))

    def get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(self.uri(key)) from None

    def put_file(self, key: str, path: Path) -> None:
        target = self._path(key)
        with open(path, "rb") as source:
            write_file_atomically(
                target, lambda handle: shutil.copyfileobj(source, handle, _COPY_CHUNK_BYTES)
            )

    def get_file(self, key: str, path: Path) -> None:
        source_path = self._path(key)
        try:
            source = open(source_path, "rb")  # noqa: SIM115 - closed by the with below
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(self.uri(key)) from None
        with source:
            write_file_atomically(
                Path(path), lambda handle: shutil.copyfileobj(source, handle, _COPY_CHUNK_BYTES)
            )

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> builtins.list[ObjectInfo]:
        validate_prefix(prefix)
        # Walk only below the deepest directory the prefix names in full.
        directory_key = prefix.rpartition("/")[0]
        start = self._root.joinpath(*directory_key.split("/")) if directory_key else self._root
        found: builtins.list[ObjectInfo] = []
        for directory, subdirectories, files in os.walk(start):
            relative = Path(directory).relative_to(self._root).as_posix()
            base = "" if relative == "." else relative + "/"
            subdirectories[:] = [
                name
                for name in subdirectories
                if (base + name + "/").startswith(prefix) or prefix.startswith(base + name + "/")
            ]
            for name in files:
                key = base + name
                if not key.startswith(prefix) or _TEMPORARY_NAME.match(name):
                    continue
                try:
                    status = os.stat(os.path.join(directory, name))
                except FileNotFoundError:
                    continue  # deleted while we walked
                found.append(
                    ObjectInfo(
                        key=key,
                        size=status.st_size,
                        last_modified=datetime.fromtimestamp(status.st_mtime, tz=UTC),
                    )
                )
        return sorted(found, key=lambda info: info.key)

    def delete(self, key: str) -> None:
        self._delete_path(self._path(key))

    def delete_many(self, keys: Iterable[str]) -> None:
        # Every key is checked before the first deletion, so a bad key deletes nothing.
        for path in [self._path(key) for key in keys]:
            self._delete_path(path)

    def _delete_path(self, path: Path) -> None:
        try:
            path.unlink()
        except (FileNotFoundError, IsADirectoryError):
            return
        self._prune_empty_directories(path.parent)

    def _prune_empty_directories(self, directory: Path) -> None:
        # Retention deletes whole checkpoints; without pruning their directories would pile up.
        while directory != self._root and self._root in directory.parents:
            try:
                directory.rmdir()
            except OSError:
                return  # not empty (or already gone): stop climbing
            directory = directory.parent

    def uri(self, key: str = "") -> str:
        if key == "":
            root_uri = self._root.as_uri()
            return root_uri if root_uri.endswith("/") else root_uri + "/"
        path = self._path(key.removesuffix("/"))
        return path.as_uri() + ("/" if key.endswith("/") else "")
