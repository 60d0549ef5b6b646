"""Durable snapshots of an SSB shard in the object store, and the restore after a restart.

The shard lives in memory; a snapshot makes it durable together with the stream offsets it
reflects. A restarted shard loads the newest complete snapshot and reads the stream on from
those offsets, and ends up in the state it would have reached without the restart: the shard
is a deterministic function of its snapshot and the records applied after it (event time, not
the wall clock, drives expiry). With several partitions the records of different partitions
may interleave differently after a restart; that reorders the queues but changes no count,
unless an expiry or a capacity limit falls in between.

Layout: checkpoints of ``CheckpointStore`` under ``ssb/<shard>/``, one per snapshot, numbered
by a sequence that grows by one (``ssb/shard-0/step-000000042/``). Each holds one file,
``state.pkl``: the shard's plain-data snapshot (``ReplayShard.snapshot().data``: dicts, lists,
numpy arrays and the frozen record dataclasses of ``hybridrl.algo`` / ``hybridrl.replay``)
pickled with protocol 5, its layout versioned by ``data["format"]``. The manifest, written
last, makes the snapshot visible, records the file's SHA-256 (checked on load) and carries
JSON metadata: ``format``, ``offsets`` (``[[topic, partition, next offset], ...]``),
``buffer_size`` and ``revision``. Pickle runs code from the bytes it loads: the snapshot
prefix must be writable by the ssb service only.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass
from datetime import datetime

from hybridrl.replay.records import PartitionOffsets
from hybridrl.replay.shard import SNAPSHOT_FORMAT, ReplayShard, ShardSettings, ShardSnapshot
from hybridrl.store.checkpoints import CheckpointRef, CheckpointStore
from hybridrl.store.object_store import ObjectStore, validate_key

logger = logging.getLogger(__name__)

STATE_FILE = "state.pkl"
PICKLE_PROTOCOL = 5


@dataclass(frozen=True)
class SavedSnapshot:
    """Where a snapshot is and what it holds."""

    uri: str
    sequence: int
    offsets: PartitionOffsets
    buffer_size: int
    revision: int
    created_at: datetime


@dataclass(frozen=True)
class RestoredShard:
    """A shard rebuilt from a snapshot, and the offsets to read the stream on from."""

    shard: ReplayShard
    offsets: PartitionOffsets
    snapshot: SavedSnapshot


def shard_prefix(shard_name: str) -> str:
    """``ssb/<shard_name>``, the key prefix of a shard's snapshots."""
    if "/" in shard_name:
        raise ValueError(f"shard name {shard_name!r} must not contain '/'")
    return validate_key(f"ssb/{shard_name}")


class ShardSnapshots:
    """Saves and restores the snapshots of one shard; keeps the ``keep_last`` newest."""

    def __init__(self, checkpoints: CheckpointStore, *, keep_last: int = 3) -> None:
        if keep_last < 1:
            raise ValueError(f"keep_last must be >= 1, got {keep_last}")
        self._checkpoints = checkpoints
        self._keep_last = keep_last
        self._last_sequence: int | None = None

    @classmethod
    def for_shard(
        cls, store: ObjectStore, shard_name: str, *, keep_last: int = 3
    ) -> ShardSnapshots:
        return cls(CheckpointStore(store, shard_prefix(shard_name)), keep_last=keep_last)

    def save(self, snapshot: ShardSnapshot) -> SavedSnapshot:
        """Write ``snapshot`` (state file first, manifest last) and drop the oldest ones."""
        if self._last_sequence is None:
            latest = self._checkpoints.latest()
            self._last_sequence = latest.step if latest is not None else -1
        sequence = self._last_sequence + 1
        state = pickle.dumps(snapshot.data, protocol=PICKLE_PROTOCOL)
        offsets = [[t, p, o] for (t, p), o in sorted(snapshot.offsets.items())]
        ref = self._checkpoints.save(
            sequence,
            {STATE_FILE: state},
            metadata={
                "format": SNAPSHOT_FORMAT,
                "offsets": offsets,  # type: ignore[dict-item]  # JSON lists of str/int
                "buffer_size": snapshot.buffer_size,
                "revision": snapshot.revision,
            },
        )
        self._last_sequence = sequence
        self._checkpoints.retain(self._keep_last)
        manifest = self._checkpoints.read_manifest(ref)
        logger.info(
            "snapshot %s: %d bytes, offsets %s", ref.uri, len(state), dict(snapshot.offsets)
        )
        return SavedSnapshot(
            uri=ref.uri,
            sequence=sequence,
            offsets=dict(snapshot.offsets),
            buffer_size=snapshot.buffer_size,
            revision=snapshot.revision,
            created_at=manifest.created_at,
        )

    def latest(self) -> SavedSnapshot | None:
        """The newest complete snapshot's description, without loading its state."""
        ref = self._checkpoints.latest()
        return self._describe(ref) if ref is not None else None

    def restore_latest(self, settings: ShardSettings | None = None) -> RestoredShard | None:
        """The shard of the newest complete snapshot, or None when there is none."""
        ref = self._checkpoints.latest()
        if ref is None:
            return None
        saved = self._describe(ref)
        # The prefix is written by this service alone (module docstring), so unpickling is safe.
        data = pickle.loads(self._checkpoints.load_file(ref, STATE_FILE))
        shard = ReplayShard.restore(data, settings)
        if shard.offsets() != saved.offsets:
            raise ValueError(f"snapshot {ref.uri}: manifest offsets differ from the state's")
        self._last_sequence = max(self._last_sequence or -1, ref.step)
        logger.info("restored %s at offsets %s", ref.uri, saved.offsets)
        return RestoredShard(shard=shard, offsets=saved.offsets, snapshot=saved)

    def _describe(self, ref: CheckpointRef) -> SavedSnapshot:
        manifest = self._checkpoints.read_manifest(ref)
        metadata = manifest.metadata
        if metadata.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(
                f"snapshot {ref.uri} has format {metadata.get('format')!r}; this code reads "
                f"{SNAPSHOT_FORMAT!r}"
            )
        return SavedSnapshot(
            uri=ref.uri,
            sequence=ref.step,
            offsets={(str(t), int(p)): int(o) for t, p, o in metadata["offsets"]},
            buffer_size=int(metadata["buffer_size"]),
            revision=int(metadata["revision"]),
            created_at=manifest.created_at,
        )
