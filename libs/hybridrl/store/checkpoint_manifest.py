"""The manifest of a checkpoint: what ``manifest.json`` holds and how it is checked.

Written last by ``CheckpointStore.commit`` (``save`` ends with it), the manifest makes a
checkpoint visible and records, for every file, its size and SHA-256, so a reader detects a
missing, truncated or altered shard. Its bytes are canonical (sorted keys, fixed layout), and
their SHA-256 is the digest the learner announces in a policy event.

Layout (format 1)::

    {"format": 1, "step": 200, "created_at": "2026-11-25T10:00:00+00:00",
     "files": {"adapter.safetensors": {"sha256": "…", "size": 1234}},
     "metadata": {"policy_version": 7, …}}
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeAlias

from hybridrl.store.object_store import ObjectCorrupt, validate_key

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
_HASH_CHUNK_BYTES = 1024 * 1024
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")

JSONValue: TypeAlias = (
    str | int | float | bool | Sequence["JSONValue"] | Mapping[str, "JSONValue"] | None
)


class CheckpointCorrupt(ObjectCorrupt):
    """A checkpoint's manifest is malformed, or a file does not match its manifest entry."""


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks (shards may be gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def validate_step(step: int) -> int:
    """``step`` itself when it is a non-negative int (not a bool), else ``ValueError``."""
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be a non-negative int, got {step!r}")
    return step


def validate_file_name(name: str) -> str:
    """``name`` itself when it may name a file of a checkpoint (a key, not the manifest's)."""
    validate_key(name)
    if name == MANIFEST_NAME:
        raise ValueError(f"{MANIFEST_NAME!r} is reserved for the checkpoint's manifest")
    return name


def validate_metadata(metadata: Mapping[str, JSONValue]) -> dict[str, Any]:
    """A JSON copy of ``metadata``; ``ValueError`` unless it is finite JSON with string keys.

    Non-string keys are refused rather than converted: ``{0: 123}`` (offsets by partition)
    would come back as ``{"0": 123}`` and break the resume that reads it.
    """
    if not isinstance(metadata, Mapping):
        raise ValueError(f"checkpoint metadata must be a mapping, got {type(metadata).__name__}")
    _check_string_keys(metadata, path="metadata")
    try:
        copy: dict[str, Any] = json.loads(json.dumps(dict(metadata), allow_nan=False))
    except (TypeError, ValueError) as error:
        raise ValueError(f"checkpoint metadata must be finite JSON: {error}") from error
    return copy


def _check_string_keys(value: object, *, path: str) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{path} has the non-string key {key!r}; JSON keys are strings")
            _check_string_keys(item, path=f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_string_keys(item, path=f"{path}[{index}]")


@dataclass(frozen=True)
class FileEntry:
    """A file of a checkpoint as the manifest records it."""

    size: int
    sha256: str

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 0:
            raise ValueError(f"a file's size must be a non-negative int, got {self.size!r}")
        if not isinstance(self.sha256, str) or not _SHA256_HEX.match(self.sha256):
            raise ValueError(
                f"a file's sha256 must be 64 lowercase hex digits, got {self.sha256!r}"
            )

    def check(self, size: int, sha256: str, *, what: str) -> None:
        """``CheckpointCorrupt`` unless ``size`` and ``sha256`` are the recorded ones."""
        if size != self.size:
            raise CheckpointCorrupt(f"{what}: {size} bytes, the manifest says {self.size}")
        if sha256 != self.sha256:
            raise CheckpointCorrupt(
                f"{what}: SHA-256 {sha256}, the manifest says {self.sha256} (altered or damaged)"
            )


@dataclass(frozen=True)
class CheckpointManifest:
    """Step, creation time (UTC), files by name, and the learner's metadata (JSON)."""

    step: int
    created_at: datetime
    files: Mapping[str, FileEntry]
    metadata: Mapping[str, Any]

    def to_json_bytes(self) -> bytes:
        """Canonical UTF-8 JSON; ``ValueError`` when the metadata is not finite JSON."""
        document = {
            "format": MANIFEST_FORMAT,
            "step": self.step,
            "created_at": self.created_at.isoformat(),
            "files": {
                name: {"size": entry.size, "sha256": entry.sha256}
                for name, entry in self.files.items()
            },
            "metadata": self.metadata,
        }
        try:
            text = json.dumps(document, sort_keys=True, indent=2, allow_nan=False)
        except (TypeError, ValueError) as error:
            raise ValueError(f"checkpoint metadata must be finite JSON: {error}") from error
        return text.encode("utf-8") + b"\n"

    @classmethod
    def from_json_bytes(cls, data: bytes, *, source: str) -> CheckpointManifest:
        """Parse and check a manifest; ``CheckpointCorrupt`` names ``source`` on any defect."""
        try:
            document = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
            return cls._from_document(document)
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            raise CheckpointCorrupt(f"manifest of {source} is malformed: {error}") from error

    @classmethod
    def _from_document(cls, document: Any) -> CheckpointManifest:
        if document.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"unknown format {document.get('format')!r}")
        step = document["step"]
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"bad step {step!r}")
        created_at = datetime.fromisoformat(document["created_at"])
        files: dict[str, FileEntry] = {}
        for name, entry in document["files"].items():
            # A name like "../x" would let a crafted manifest write outside a download folder.
            validate_key(name)
            size, sha256 = entry["size"], entry["sha256"]
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise ValueError(f"bad size {size!r} for {name!r}")
            if not isinstance(sha256, str) or not _SHA256_HEX.match(sha256):
                raise ValueError(f"bad sha256 {sha256!r} for {name!r}")
            files[name] = FileEntry(size=size, sha256=sha256)
        if not files:
            raise ValueError("no files")
        metadata = document["metadata"]
        if not isinstance(metadata, dict):
            raise ValueError("metadata is not an object")
        return cls(step=step, created_at=created_at, files=files, metadata=metadata)


def _reject_constant(name: str) -> float:
    # json.loads accepts NaN and Infinity by default; a manifest never holds them.
    raise ValueError(f"non-finite number {name}")
