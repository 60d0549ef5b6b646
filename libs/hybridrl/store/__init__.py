"""Object storage for checkpoints, weights and large payloads (S3/MinIO, or a local directory).

Weights and blobs never travel through Kafka: the learner writes checkpoints here (shards
first, manifest last), rollout workers read them back when a policy event names them, and the
services park oversized messages here as claim checks.
"""

from hybridrl.store.checkpoint_manifest import CheckpointCorrupt, CheckpointManifest, FileEntry
from hybridrl.store.checkpoints import (
    CheckpointExists,
    CheckpointRef,
    CheckpointStore,
    open_checkpoint,
)
from hybridrl.store.claim_check import ClaimCheck, ClaimCheckCorrupt, ClaimCheckStore
from hybridrl.store.local_object_store import LocalObjectStore
from hybridrl.store.object_store import (
    ObjectCorrupt,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    ObjectStoreError,
    ObjectStoreUnavailable,
)
from hybridrl.store.retry import RetryPolicy
from hybridrl.store.s3_object_store import S3ObjectStore
from hybridrl.store.uris import open_object_store, resolve

__all__ = [
    "CheckpointCorrupt",
    "CheckpointExists",
    "CheckpointManifest",
    "CheckpointRef",
    "CheckpointStore",
    "ClaimCheck",
    "ClaimCheckCorrupt",
    "ClaimCheckStore",
    "FileEntry",
    "LocalObjectStore",
    "ObjectCorrupt",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectStore",
    "ObjectStoreError",
    "ObjectStoreUnavailable",
    "RetryPolicy",
    "S3ObjectStore",
    "open_checkpoint",
    "open_object_store",
    "resolve",
]
