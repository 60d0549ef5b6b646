"""Atomic checkpoints in the object store: shards first, ``manifest.json`` last.

The learner saves its weights (or only the adapter) and its resume state here; rollout
workers load the weights a policy event points at; a restarted learner resumes from
``latest()``. A checkpoint lives under ``{prefix}/step-{step:09d}/`` and exists only once its
manifest does: the manifest, written after every shard, lists each file with its size and
SHA-256, so a reader never trusts a half-written checkpoint and detects a damaged shard.

Several writers: learner ranks, separate processes maybe on separate machines, each hold
their own shard files (DeepSpeed's ``zero_pp_rank_{r}_mp_rank_00_optim_states.pt``). Each
uploads its files with ``write_shard``, which returns the file's manifest entry; once all have
finished (a barrier), one process gathers the entries and ``commit``s them: it checks that
every listed file is stored with its listed size, deletes the files of the step nobody listed,
and writes the manifest last. ``save`` is the one-process case of the same two calls.

Saving a step again: when a manifest for that step already exists, ``save``, ``write_shard``
and ``commit`` refuse (``CheckpointExists``): a visible checkpoint is immutable, so a worker
loading it can never mix two versions. Without a manifest (a save that died half-way), the
leftovers are overwritten, and stray files of the earlier attempt removed before the manifest
is written. Two processes committing one step at once are not detected: one process commits.
"""

from __future__ import annotations

import builtins
import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from hybridrl.config.object_store import ObjectStoreSettings
from hybridrl.store.checkpoint_manifest import (
    MANIFEST_NAME,
    CheckpointCorrupt,
    CheckpointManifest,
    FileEntry,
    JSONValue,
    file_sha256,
    validate_file_name,
    validate_metadata,
    validate_step,
)
from hybridrl.store.local_object_store import write_file_atomically
from hybridrl.store.object_store import (
    ObjectNotFound,
    ObjectStore,
    ObjectStoreError,
    join_key,
    validate_key,
)
from hybridrl.store.uris import resolve

_STEP_DIRECTORY = re.compile(r"^step-([0-9]+)$")


class CheckpointExists(ObjectStoreError):  # noqa: N818 - named for the condition
    """A complete checkpoint of this step is already stored; checkpoints are immutable."""


@dataclass(frozen=True)
class CheckpointRef:
    """A complete checkpoint: its step, its directory key in the store, and that key's URI."""

    step: int
    key: str
    uri: str


def step_directory(step: int) -> str:
    """``step-000000200`` for step 200: zero-padded so that names sort like numbers."""
    return f"step-{step:09d}"


class CheckpointStore:
    """Checkpoints of one run under ``prefix`` in ``store``.

    ``clock`` gives the manifests' ``created_at`` (UTC); tests inject a fixed one.
    """

    def __init__(
        self,
        store: ObjectStore,
        prefix: str,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        prefix = prefix.strip("/")
        if prefix:
            validate_key(prefix)
        self._store = store
        self._prefix = prefix
        self._clock = clock

    @property
    def store(self) -> ObjectStore:
        return self._store

    @property
    def prefix(self) -> str:
        return self._prefix

    def __repr__(self) -> str:
        return f"CheckpointStore({self._store.uri(self._prefix + '/' if self._prefix else '')!r})"

    def _ref(self, step: int, directory: str) -> CheckpointRef:
        key = join_key(self._prefix, directory)
        return CheckpointRef(step=step, key=key, uri=self._store.uri(key + "/"))

    def save(
        self,
        step: int,
        files: Mapping[str, bytes | Path],
        metadata: Mapping[str, JSONValue] | None = None,
    ) -> CheckpointRef:
        """Write ``files`` (name -> bytes, or a local file to upload) and then the manifest.

        ``metadata`` must be JSON (the learner records the policy version, the BCO shift and
        the data offsets there). A ``Path`` must not change while it is saved: its digest is
        taken before the upload.
        """
        validate_step(step)
        if not files:
            raise ValueError("a checkpoint needs at least one file")
        for name, content in files.items():
            _check_file(name, content)
        # Checked before any shard is written, so bad metadata leaves nothing behind.
        validate_metadata(metadata or {})
        directory = self._refuse_committed(step)
        entries = {name: self._upload(directory, name, content) for name, content in files.items()}
        return self.commit(step, entries, metadata)

    def write_shard(self, step: int, name: str, content: bytes | Path) -> FileEntry:
        """Upload one file of checkpoint ``step`` before it is committed; its manifest entry.

        Any process may call it (a file of the same name is replaced); the entries go to the
        one process that calls ``commit``. ``CheckpointExists`` once the step is committed. A
        ``Path`` must not change while it is uploaded: its digest is taken before.
        """
        validate_step(step)
        _check_file(name, content)
        return self._upload(self._refuse_committed(step), name, content)

    def commit(
        self,
        step: int,
        entries: Mapping[str, FileEntry],
        metadata: Mapping[str, JSONValue] | None = None,
    ) -> CheckpointRef:
        """Make checkpoint ``step`` visible with the files ``entries`` lists: manifest last.

        ``entries`` (name -> what ``write_shard`` returned, from every writer) must name files
        already stored. Each must be there with its listed size, else ``CheckpointCorrupt``
        and no manifest; digests are not read back here (that would download every shard):
        readers check them on load. Files of the step that ``entries`` omits (an earlier
        attempt's) are deleted. ``CheckpointExists`` when the step is committed already.
        """
        validate_step(step)
        if not entries:
            raise ValueError("a checkpoint needs at least one file")
        for name, entry in entries.items():
            validate_file_name(name)
            if not isinstance(entry, FileEntry):
                raise ValueError(f"{name!r}: entry must be a FileEntry, not {type(entry)}")
        checked_metadata = validate_metadata(metadata or {})
        directory = join_key(self._prefix, step_directory(step))
        # One listing tells whether the step is committed and what is stored, with sizes.
        stored = {
            info.key.removeprefix(directory + "/"): info.size
            for info in self._store.list(directory + "/")
        }
        if MANIFEST_NAME in stored:
            raise CheckpointExists(f"checkpoint {self._store.uri(directory + '/')} already exists")
        problems = _unmatched_entries(entries, stored)
        if problems:
            raise CheckpointCorrupt(
                f"cannot commit {self._store.uri(directory + '/')}: " + "; ".join(problems)
            )
        self._store.delete_many(
            [join_key(directory, name) for name in sorted(stored) if name not in entries]
        )
        manifest = CheckpointManifest(
            step=step, created_at=self._clock(), files=dict(entries), metadata=checked_metadata
        )
        self._store.put_bytes(join_key(directory, MANIFEST_NAME), manifest.to_json_bytes())
        return self._ref(step, step_directory(step))

    def _refuse_committed(self, step: int) -> str:
        """The step's directory key; ``CheckpointExists`` when its manifest is stored."""
        directory = join_key(self._prefix, step_directory(step))
        if self._store.exists(join_key(directory, MANIFEST_NAME)):
            raise CheckpointExists(f"checkpoint {self._store.uri(directory + '/')} already exists")
        return directory

    def _upload(self, directory: str, name: str, content: bytes | Path) -> FileEntry:
        if isinstance(content, Path):
            entry = FileEntry(size=content.stat().st_size, sha256=file_sha256(content))
            self._store.put_file(join_key(directory, name), content)
            return entry
        self._store.put_bytes(join_key(directory, name), content)
        return FileEntry(size=len(content), sha256=hashlib.sha256(content).hexdigest())

    def _scan(self) -> tuple[dict[int, str], dict[int, set[str]]]:
        """Complete checkpoints (step -> directory) and every step's object keys."""
        listing_prefix = self._prefix + "/" if self._prefix else ""
        complete: dict[int, str] = {}
        keys_by_step: dict[int, set[str]] = {}
        for info in self._store.list(listing_prefix):
            directory, _, name = info.key.removeprefix(listing_prefix).partition("/")
            match = _STEP_DIRECTORY.match(directory)
            if match is None or not name:
                continue
            step = int(match.group(1))
            keys_by_step.setdefault(step, set()).add(info.key)
            if name == MANIFEST_NAME:
                complete[step] = directory
        return complete, keys_by_step

    def list(self) -> list[CheckpointRef]:
        """Complete checkpoints, oldest step first."""
        complete, _ = self._scan()
        return [self._ref(step, complete[step]) for step in sorted(complete)]

    def latest(self) -> CheckpointRef | None:
        """The complete checkpoint with the highest step, if any."""
        complete, _ = self._scan()
        if not complete:
            return None
        step = max(complete)
        return self._ref(step, complete[step])

    def manifest_bytes(self, ref: CheckpointRef) -> bytes:
        return self._store.get_bytes(join_key(ref.key, MANIFEST_NAME))

    def read_manifest(
        self, ref: CheckpointRef, *, expected_sha256: str | None = None
    ) -> CheckpointManifest:
        """The parsed manifest; ``CheckpointCorrupt`` when it is malformed or off-step.

        ``expected_sha256`` (from a policy event) must then match the manifest's bytes.
        """
        return self._parse_manifest(ref, self.manifest_bytes(ref), expected_sha256)

    @staticmethod
    def _parse_manifest(
        ref: CheckpointRef, data: bytes, expected_sha256: str | None
    ) -> CheckpointManifest:
        if expected_sha256 is not None:
            actual = hashlib.sha256(data).hexdigest()
            if actual != expected_sha256:
                raise CheckpointCorrupt(
                    f"manifest of {ref.uri} has SHA-256 {actual}, expected {expected_sha256}"
                )
        manifest = CheckpointManifest.from_json_bytes(data, source=ref.uri)
        if manifest.step != ref.step:
            raise CheckpointCorrupt(
                f"manifest of {ref.uri} says step {manifest.step}, its directory {ref.step}"
            )
        return manifest

    def manifest_sha256(self, ref: CheckpointRef) -> str:
        """Hex SHA-256 of the stored manifest: the digest a policy event carries."""
        return hashlib.sha256(self.manifest_bytes(ref)).hexdigest()

    def load_file(self, ref: CheckpointRef, name: str) -> bytes:
        """One file of the checkpoint, checked against its size and digest in the manifest."""
        entry = self._entry(ref, self.read_manifest(ref), name)
        data = self._store.get_bytes(join_key(ref.key, name))
        entry.check(len(data), hashlib.sha256(data).hexdigest(), what=f"{ref.uri}{name}")
        return data

    def download(
        self, ref: CheckpointRef, directory: Path, *, expected_sha256: str | None = None
    ) -> dict[str, Path]:
        """Every file of the checkpoint into ``directory``, each verified; manifest last.

        Returns name -> local path. A file that fails its check is removed and
        ``CheckpointCorrupt`` raised; ``expected_sha256`` is checked as in ``read_manifest``.
        """
        manifest_bytes = self.manifest_bytes(ref)
        manifest = self._parse_manifest(ref, manifest_bytes, expected_sha256)
        paths: dict[str, Path] = {}
        for name in manifest.files:
            entry = self._entry(ref, manifest, name)
            target = directory.joinpath(*name.split("/"))
            self._store.get_file(join_key(ref.key, name), target)
            try:
                entry.check(target.stat().st_size, file_sha256(target), what=f"{ref.uri}{name}")
            except CheckpointCorrupt:
                target.unlink(missing_ok=True)
                raise
            paths[name] = target
        write_file_atomically(
            directory / MANIFEST_NAME, lambda handle: handle.write(manifest_bytes)
        )
        return paths

    def _entry(self, ref: CheckpointRef, manifest: CheckpointManifest, name: str) -> FileEntry:
        try:
            return manifest.files[name]
        except KeyError:
            # The manifest is the checkpoint's content list: a file it omits is not part of it.
            raise ObjectNotFound(f"{ref.uri}{name}") from None

    def retain(self, keep_last: int) -> builtins.list[int]:
        """Keep the ``keep_last`` newest complete checkpoints; delete older ones and leftovers.

        Deleted: complete checkpoints older than the kept ones, and directories without a
        manifest whose step is below the newest complete one (a save that died). A directory
        without a manifest above it may be a save in progress and is kept. A complete
        checkpoint loses its manifest first, so it is never visible with missing shards.
        Returns the deleted steps, ascending.
        """
        if isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 1:
            raise ValueError(f"keep_last must be an int >= 1, got {keep_last!r}")
        complete, keys_by_step = self._scan()
        if not complete:
            return []
        kept = set(sorted(complete)[-keep_last:])
        newest = max(complete)
        doomed = sorted(
            step
            for step in keys_by_step
            if (step in complete and step not in kept) or (step not in complete and step < newest)
        )
        for step in doomed:
            keys = keys_by_step[step]
            if step in complete:
                manifest_key = join_key(self._prefix, complete[step], MANIFEST_NAME)
                self._store.delete(manifest_key)
                keys = keys - {manifest_key}
            self._store.delete_many(sorted(keys))
        return doomed


def _check_file(name: str, content: bytes | Path) -> None:
    validate_file_name(name)
    if not isinstance(content, bytes | Path):
        raise ValueError(f"{name!r}: content must be bytes or a Path, not {type(content)}")


def _unmatched_entries(entries: Mapping[str, FileEntry], stored: Mapping[str, int]) -> list[str]:
    """What is wrong with ``entries`` given the stored sizes by name, one phrase a file."""
    problems: list[str] = []
    for name, entry in sorted(entries.items()):
        size = stored.get(name)
        if size is None:
            problems.append(f"{name} is not stored")
        elif size != entry.size:
            problems.append(f"{name} has {size} bytes, its entry says {entry.size}")
    return problems


def open_checkpoint(
    uri: str, settings: ObjectStoreSettings | None = None
) -> tuple[CheckpointStore, CheckpointRef]:
    """The store and reference for a checkpoint URI such as ``s3://b/run-1/step-000000200/``.

    Accepts the URI of the directory (with or without the final ``/``) or of its manifest.
    The checkpoint is not checked to be complete: ``read_manifest`` tells.
    """
    trimmed = uri.removesuffix("/").removesuffix("/" + MANIFEST_NAME)
    store, key = resolve(trimmed, settings)
    prefix, _, directory = key.rpartition("/")
    match = _STEP_DIRECTORY.match(directory)
    if match is None:
        raise ValueError(f"{uri!r} does not name a checkpoint directory (…/step-NNNNNNNNN/)")
    checkpoints = CheckpointStore(store, prefix)
    return checkpoints, checkpoints._ref(int(match.group(1)), directory)
