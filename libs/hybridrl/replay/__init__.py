"""The SSB store's core: scored responses in, GRPO batches and MPO pairs out, state durable.

Where it sits: between the reward stage (``hybridrl.scored``) and the learner. The ssb service
translates ``ScoredEvent`` records into ``ScoredSample``s and ``Sample`` requests into calls of
a ``ReplayShard``; nothing here imports gRPC or Kafka.

- ``GroupAssembler``: waits for all N responses of a group, drops duplicates, expires groups
  whose responses were lost;
- ``SampleStore``: advantages (eq. 6), effective vs zero-variance groups, the fresh queue, the
  Selective Sample Buffer (section 3.3.2), MPO pairs, idempotent batches per (step, rank);
- ``ReplayShard``: both behind one lock, with the stream offsets they reflect;
- ``ShardSnapshots``: snapshots in the object store and the restore after a restart.
"""

from hybridrl.replay.assembler import AssemblyResult, GroupAssembler
from hybridrl.replay.config import GroupAssemblyConfig, SampleStoreConfig
from hybridrl.replay.records import (
    GrpoBatch,
    MpoBatch,
    PartitionOffsets,
    RewardBreakdown,
    SamplePayload,
    ScoredSample,
    ServedSample,
    pair_id_for,
)
from hybridrl.replay.sample_store import SampleStore
from hybridrl.replay.served_batches import RecentBatches
from hybridrl.replay.shard import SNAPSHOT_FORMAT, ReplayShard, ShardSettings, ShardSnapshot
from hybridrl.replay.snapshots import RestoredShard, SavedSnapshot, ShardSnapshots, shard_prefix
from hybridrl.replay.stats import EffectiveRatioWindow, ReplayStats

__all__ = [
    "SNAPSHOT_FORMAT",
    "AssemblyResult",
    "EffectiveRatioWindow",
    "GroupAssembler",
    "GroupAssemblyConfig",
    "GrpoBatch",
    "MpoBatch",
    "PartitionOffsets",
    "RecentBatches",
    "ReplayShard",
    "ReplayStats",
    "RestoredShard",
    "RewardBreakdown",
    "SamplePayload",
    "SampleStore",
    "SampleStoreConfig",
    "SavedSnapshot",
    "ScoredSample",
    "ServedSample",
    "ShardSettings",
    "ShardSnapshot",
    "ShardSnapshots",
    "pair_id_for",
    "shard_prefix",
]
