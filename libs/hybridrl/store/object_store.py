"""The object-store interface: what the learner, rollout workers and services need from S3.

Weights, checkpoints and payloads too large for a Kafka message travel through object storage
(MinIO or any S3 in a cluster, a directory on a laptop); Kafka carries only their URIs. This
module defines the one interface both backends implement, its errors, and the rules a key
follows. ``S3ObjectStore`` and ``LocalObjectStore`` implement it; ``open_object_store`` picks
one from a URI.

Keys are relative, ``/``-separated names such as ``run-1/step-000000200/manifest.json``: no
leading or trailing ``/``, no empty, ``.`` or ``..`` segment, no backslash, at most 1024 bytes
(S3's limit). The same key means the same object on both backends.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

MAX_KEY_BYTES = 1024


class ObjectStoreError(Exception):
    """Base class of the object-store errors."""


class ObjectNotFound(ObjectStoreError, KeyError):  # noqa: N818 - named for the condition
    """No object under the key. A ``KeyError`` too, so mapping-style callers can catch it."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        super().__init__(uri)

    def __str__(self) -> str:
        # KeyError's own __str__ shows the repr of its argument; a sentence reads better in logs.
        return f"no object at {self.uri}"


class ObjectStoreUnavailable(ObjectStoreError):  # noqa: N818 - named for the condition
    """A call still failed after every retry; ``__cause__`` holds the last failure."""

    def __init__(self, description: str, attempts: int, last_error: BaseException) -> None:
        self.description = description
        self.attempts = attempts
        super().__init__(
            f"object store unavailable: {description} failed {attempts} time(s); "
            f"last error: {type(last_error).__name__}: {last_error}"
        )


class ObjectCorrupt(ObjectStoreError):  # noqa: N818 - named for the condition
    """Stored bytes do not match the size or SHA-256 digest recorded for them."""


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object: its key (relative to the store), size in bytes, last change (UTC)."""

    key: str
    size: int
    last_modified: datetime


@runtime_checkable
class ObjectStore(Protocol):
    """A flat namespace of immutable-until-overwritten objects.

    A reader sees either the previous or the new content of an object, never a mix: S3 gives
    that for single objects, the local backend by writing a temporary file and renaming it.
    Deleting a missing key is not an error (S3's semantics).
    """

    def put_bytes(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``, replacing what was there."""
        ...

    def get_bytes(self, key: str) -> bytes:
        """The whole object; ``ObjectNotFound`` when there is none."""
        ...

    def put_file(self, key: str, path: Path) -> None:
        """Upload a local file, in parts when it is large."""
        ...

    def get_file(self, key: str, path: Path) -> None:
        """Download to ``path``; the file appears complete or not at all."""
        ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str = "") -> builtins.list[ObjectInfo]:
        """Every object whose key starts with ``prefix`` (a plain string prefix), by key."""
        ...

    def delete(self, key: str) -> None: ...

    def delete_many(self, keys: Iterable[str]) -> None: ...

    def uri(self, key: str = "") -> str:
        """The full URI of ``key`` (``s3://bucket/...`` or ``file:///...``).

        ``key`` may end with ``/`` to name a "directory", and ``""`` names the store itself.
        """
        ...


def validate_key(key: str) -> str:
    """``key`` itself when it follows the key rules (module docstring), else ``ValueError``."""
    if not isinstance(key, str):
        raise ValueError(f"an object key must be a string, got {type(key).__name__}")
    if not key:
        raise ValueError("an object key must not be empty")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise ValueError(f"object key longer than {MAX_KEY_BYTES} bytes: {key[:80]!r}...")
    if "\\" in key or any(ord(char) < 32 for char in key):
        raise ValueError(f"object key {key!r} contains a backslash or a control character")
    if key.startswith("/") or key.endswith("/"):
        raise ValueError(f"object key {key!r} must not start or end with '/'")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise ValueError(f"object key {key!r} has an empty, '.' or '..' segment")
    return key


def validate_prefix(prefix: str) -> str:
    """``prefix`` itself when it is ``""`` or a valid key optionally followed by one ``/``."""
    if prefix == "":
        return prefix
    validate_key(prefix.removesuffix("/"))
    return prefix


def join_key(*parts: str) -> str:
    """The non-empty ``parts`` joined with ``/`` (``join_key("", "a", "b") == "a/b"``)."""
    return "/".join(part for part in parts if part)
