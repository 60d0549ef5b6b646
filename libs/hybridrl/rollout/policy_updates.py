"""Hot reload of policy updates on a rollout worker, and the event that announces them.

The learner saves a checkpoint (``hybridrl.models.policy_checkpoint.save_policy``), then
announces it with a ``PolicyVersionEvent`` on the compacted ``hybridrl.policy`` topic
(``policy_version_event`` builds it). A rollout worker hands each event it sees to its
``PolicyUpdater``: ``offer`` reads and verifies the checkpoint (manifest digest from the event,
then every file's size and SHA-256) into a state dict, off the generation path; ``apply_pending``
swaps the newest verified weights into the engine between two batches, so a group never mixes
versions. Versions not newer than the engine's are ignored (the compacted topic re-delivers
the latest event to every new worker). A failed update is logged and counted and the worker
keeps sampling from the weights it has.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType

import torch

from hybridrl.config.object_store import ObjectStoreSettings
from hybridrl.engines.base import GenerationEngine
from hybridrl.models.policy_checkpoint import load_policy_state
from hybridrl.models.vlm_config import FreezeMode
from hybridrl.proto.schema import SCHEMA_VERSION, check_schema_version
from hybridrl.proto.v1 import common_pb2, events_pb2
from hybridrl.store.checkpoint_manifest import CheckpointCorrupt
from hybridrl.store.checkpoints import CheckpointRef, CheckpointStore, open_checkpoint

logger = logging.getLogger(__name__)

TRAIN_MODE_OF: Mapping[FreezeMode, common_pb2.TrainMode.ValueType] = MappingProxyType(
    {
        "adapter": common_pb2.TRAIN_MODE_ADAPTER_ONLY,
        "llm+adapter": common_pb2.TRAIN_MODE_LLM_AND_ADAPTER,
        # A vision+adapter checkpoint ships the full state dict, as a full one does.
        "adapter+vision": common_pb2.TRAIN_MODE_FULL,
        "full": common_pb2.TRAIN_MODE_FULL,
    }
)
"""The ``PolicyVersionEvent.mode`` of a checkpoint saved in each freeze mode."""


def policy_version_event(
    checkpoint_store: CheckpointStore,
    ref: CheckpointRef,
    mode: FreezeMode,
    policy_version: int,
    *,
    created_at: datetime | None = None,
) -> events_pb2.PolicyVersionEvent:
    """The event announcing a checkpoint saved by ``save_policy``, with its manifest digest."""
    event = events_pb2.PolicyVersionEvent(
        schema_version=SCHEMA_VERSION,
        policy_version=policy_version,
        checkpoint_uri=ref.uri,
        manifest_sha256=checkpoint_store.manifest_sha256(ref),
        mode=TRAIN_MODE_OF[mode],
        step=ref.step,
    )
    event.created_at.FromDatetime(created_at or datetime.now(UTC))
    return event


@dataclass(frozen=True)
class PolicyUpdateCounters:
    """Running totals of one updater, for metrics and status pages."""

    applied: int = 0
    ignored: int = 0
    failed: int = 0
    last_error: str = ""


@dataclass(frozen=True, eq=False)
class _Verified:
    policy_version: int
    state: Mapping[str, torch.Tensor]


OpenCheckpoint = Callable[[str, ObjectStoreSettings | None], tuple[CheckpointStore, CheckpointRef]]


class PolicyUpdater:
    """Reads announced checkpoints and swaps them into an engine between batches.

    Thread-safe: a watcher thread calls ``offer``, the generation loop ``apply_pending``.
    Until applied, the newest verified state is held in memory next to the engine's weights
    (the adapter alone in adapter-only mode; a second copy of the model otherwise).
    """

    def __init__(
        self,
        engine: GenerationEngine,
        object_store: ObjectStoreSettings | None = None,
        *,
        open_checkpoint_uri: OpenCheckpoint = open_checkpoint,
    ) -> None:
        self._engine = engine
        self._object_store = object_store
        self._open = open_checkpoint_uri
        self._lock = threading.Lock()
        self._pending: _Verified | None = None
        self._counters = PolicyUpdateCounters()

    @property
    def counters(self) -> PolicyUpdateCounters:
        return self._counters

    @property
    def pending_version(self) -> int | None:
        """The version verified and waiting for ``apply_pending``, if any."""
        with self._lock:
            return None if self._pending is None else self._pending.policy_version

    def offer(self, event: events_pb2.PolicyVersionEvent) -> bool:
        """Verify and read the checkpoint ``event`` names; True when it is now pending.

        False when the version is not newer than the engine's or the pending one, or when
        reading fails (logged, counted in ``counters.failed``).
        """
        version = int(event.policy_version)
        if not self._is_newer(version):
            self._count(ignored=1)
            logger.debug("policy version %d is not newer; ignored", version)
            return False
        try:
            state = self._read(event)
        except Exception as error:  # any failure leaves the worker on its current weights
            self._fail(f"policy version {version} from {event.checkpoint_uri!r}", error)
            return False
        with self._lock:
            if self._pending is None or self._pending.policy_version < version:
                self._pending = _Verified(version, state)
        logger.info("policy version %d verified; loads before the next batch", version)
        return True

    def apply_pending(self) -> int | None:
        """Load the pending weights into the engine; the new version, or None if none loaded."""
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is None:
            return None
        if pending.policy_version <= self._engine.policy_version:
            self._count(ignored=1)
            return None
        try:
            self._engine.load_weights(pending.state, pending.policy_version)
        except Exception as error:  # wrong keys or shapes: keep generating with the old weights
            self._fail(f"loading policy version {pending.policy_version}", error)
            return None
        self._count(applied=1)
        logger.info("now sampling from policy version %d", pending.policy_version)
        return pending.policy_version

    def load_checkpoint(self, uri: str) -> int:
        """Load the policy checkpoint at ``uri`` now (the worker's initial weights).

        Unlike events, nothing vouches for the manifest's digest; the files are still checked
        against it. Errors propagate: a worker must not start on weights it cannot read.
        """
        checkpoint_store, ref = self._open(uri, self._object_store)
        state, metadata = load_policy_state(checkpoint_store, ref)
        self._engine.load_weights(state, metadata.policy_version)
        self._count(applied=1)
        return metadata.policy_version

    def _is_newer(self, version: int) -> bool:
        with self._lock:
            pending = -1 if self._pending is None else self._pending.policy_version
        return version > max(self._engine.policy_version, pending)

    def _read(self, event: events_pb2.PolicyVersionEvent) -> Mapping[str, torch.Tensor]:
        check_schema_version(event)
        if not event.checkpoint_uri:
            raise ValueError("the policy event names no checkpoint_uri")
        if not event.manifest_sha256:
            raise ValueError("the policy event carries no manifest_sha256 to verify against")
        if event.mode == common_pb2.TRAIN_MODE_UNSPECIFIED:
            raise ValueError("the policy event's mode is TRAIN_MODE_UNSPECIFIED")
        checkpoint_store, ref = self._open(event.checkpoint_uri, self._object_store)
        state, metadata = load_policy_state(
            checkpoint_store, ref, expected_manifest_sha256=event.manifest_sha256
        )
        if metadata.policy_version != event.policy_version:
            raise CheckpointCorrupt(
                f"{ref.uri} holds policy version {metadata.policy_version}, "
                f"the event announces {event.policy_version}"
            )
        adapter_only = event.mode == common_pb2.TRAIN_MODE_ADAPTER_ONLY
        if adapter_only != (metadata.weights == "adapter"):
            raise CheckpointCorrupt(
                f"{ref.uri} holds {metadata.weights} weights, the event announces mode "
                f"{common_pb2.TrainMode.Name(event.mode)}"
            )
        return state

    def _count(self, *, applied: int = 0, ignored: int = 0) -> None:
        with self._lock:
            current = self._counters
            self._counters = PolicyUpdateCounters(
                current.applied + applied,
                current.ignored + ignored,
                current.failed,
                current.last_error,
            )

    def _fail(self, what: str, error: Exception) -> None:
        message = f"{what}: {type(error).__name__}: {error}"
        logger.error("policy update failed, keeping the current weights: %s", message)
        with self._lock:
            current = self._counters
            self._counters = PolicyUpdateCounters(
                current.applied, current.ignored, current.failed + 1, message
            )
