"""The learner's two kinds of writes to the object store: policies and resumable checkpoints.

Under ``<run_uri>``:

    policy/step-{version:09d}/    a policy checkpoint (``save_policy``) per published version;
                                  rollout workers load the one a policy event names
    learner/step-{step:09d}/      a resumable checkpoint: the policy files and metadata (so it
                                  is a policy checkpoint too), DeepSpeed's files of every rank
                                  under deepspeed/<tag>/, and metadata["learner"]: step, policy
                                  version, phase, the BCO shift (eq. 4), the SSB's offsets

A resumable checkpoint is collective: every rank saves its DeepSpeed files to its own scratch
directory and uploads them (``CheckpointStore.write_shard``); rank 0 gathers their digests,
adds the policy files and writes the manifest last (``commit``). Until then the checkpoint is
invisible, so a learner killed half-way resumes from the previous one.

Policy versions only grow: a resumed learner continues after the newest *published* version,
not after its checkpoint's, because rollout workers ignore versions they have already passed.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hybridrl_services.learner.distributed import RankInfo, barrier, gather_objects

from hybridrl.bus.producer import EventProducer
from hybridrl.config.object_store import ObjectStoreSettings
from hybridrl.models.policy_checkpoint import POLICY_METADATA_KEY, policy_checkpoint_files
from hybridrl.models.vlm import VisionLanguageModel
from hybridrl.models.vlm_config import FreezeMode
from hybridrl.rollout.policy_updates import policy_version_event
from hybridrl.store.checkpoint_manifest import FileEntry, JSONValue
from hybridrl.store.checkpoints import CheckpointRef, CheckpointStore
from hybridrl.store.uris import open_object_store

logger = logging.getLogger(__name__)

LEARNER_METADATA_KEY = "learner"
DEEPSPEED_DIRECTORY = "deepspeed"
POLICY_EVENT_KEY = "policy"
"""Key of every policy event: the compacted topic keeps the newest one."""
_RETAIN_EVERY = 20
"""Old policies are pruned every this many publications (pruning lists the whole store)."""


@dataclass(frozen=True)
class LearnerState:
    """What a resumable checkpoint records besides the weights and the optimizer.

    Attributes:
        step: learner steps completed; the resumed learner runs step ``step`` next.
        policy_version: the version of the weights saved.
        reward_shift: ``RewardShift.state_dict()`` of the MPO phase's BCO shift (eq. 4).
        ssb_offsets: the SSB store's consumer offsets at the checkpoint, as
            ``[topic, partition, offset]`` lists (empty when no snapshot was taken).
        ssb_snapshot_uri: the SSB snapshot taken just before, if any.
    """

    step: int
    policy_version: int
    reward_shift: Mapping[str, float | int | None]
    ssb_offsets: list[list[str | int]]
    ssb_snapshot_uri: str = ""

    def as_metadata(self, tag: str, world_size: int) -> dict[str, JSONValue]:
        return {
            "step": self.step,
            "policy_version": self.policy_version,
            "reward_shift": dict(self.reward_shift),
            "ssb_offsets": [list(entry) for entry in self.ssb_offsets],
            "ssb_snapshot_uri": self.ssb_snapshot_uri,
            "deepspeed_tag": tag,
            "world_size": world_size,
        }


@dataclass(frozen=True)
class Resumed:
    """A checkpoint loaded into the engine."""

    ref: CheckpointRef
    state: LearnerState


def _tag(step: int) -> str:
    return f"step-{step:09d}"


class LearnerCheckpoints:
    """Policies and resumable checkpoints of one run (see the module docstring)."""

    def __init__(
        self,
        run_uri: str,
        object_store: ObjectStoreSettings | None,
        rank: RankInfo,
        scratch: Path,
        *,
        keep_last: int,
        keep_policies: int,
    ) -> None:
        store = open_object_store(run_uri, object_store)
        self.learner_store = CheckpointStore(store, "learner")
        self.policy_store = CheckpointStore(store, "policy")
        self._rank = rank
        self._scratch = scratch / f"rank-{rank.rank}"
        self._keep_last = keep_last
        self._keep_policies = keep_policies
        self._publisher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="publish")
        self._pending: list[Future[CheckpointRef]] = []
        self._published = 0

    def newest_published_version(self) -> int | None:
        """The version of the newest policy checkpoint of the run, if any."""
        latest = self.policy_store.latest()
        return None if latest is None else latest.step

    def publish(
        self,
        model: VisionLanguageModel,
        mode: FreezeMode,
        policy_version: int,
        producer: EventProducer,
        topic: str,
    ) -> Future[CheckpointRef]:
        """Rank 0: save the policy as version ``policy_version`` and announce it.

        The weights are serialised now; the upload, the manifest and the event go out on a
        background thread, so that the learner's next step overlaps them. Publications leave
        in order (one thread); ``wait_published`` waits for all of them.
        """
        files, policy = policy_checkpoint_files(model, mode, policy_version, policy_version)

        def upload() -> CheckpointRef:
            ref = self.policy_store.save(policy_version, files, {POLICY_METADATA_KEY: policy})
            event = policy_version_event(self.policy_store, ref, mode, policy_version)
            producer.send(topic, POLICY_EVENT_KEY, event)
            producer.flush(30.0)
            self._published += 1
            if self._published % _RETAIN_EVERY == 0:
                self.policy_store.retain(self._keep_policies)
            return ref

        future = self._publisher.submit(upload)
        self._pending.append(future)
        return future

    def wait_published(self) -> list[CheckpointRef]:
        """Wait for every publication in flight; their references, in order. A failed one
        raises here."""
        pending, self._pending = self._pending, []
        return [future.result() for future in pending]

    def close(self) -> None:
        self._publisher.shutdown(wait=True)

    def save(
        self,
        engine: Any,
        model: VisionLanguageModel,
        mode: FreezeMode,
        state: LearnerState,
    ) -> CheckpointRef | None:
        """Collective: every rank uploads its DeepSpeed files; rank 0 commits. Rank 0 gets
        the reference, the other ranks None."""
        tag = _tag(state.step)
        local = self._scratch / "save"
        shutil.rmtree(local, ignore_errors=True)
        engine.save_checkpoint(str(local), tag=tag)
        entries: dict[str, FileEntry] = {}
        for path in sorted((local / tag).rglob("*")):
            if path.is_file():
                name = f"{DEEPSPEED_DIRECTORY}/{tag}/{path.relative_to(local / tag).as_posix()}"
                entries[name] = self.learner_store.write_shard(state.step, name, path)
        every_rank = gather_objects(entries)
        shutil.rmtree(local, ignore_errors=True)
        ref = None
        if self._rank.is_main:
            files, policy = policy_checkpoint_files(model, mode, state.policy_version, state.step)
            merged: dict[str, FileEntry] = {}
            for rank_entries in every_rank:
                merged.update(rank_entries)
            for name, content in files.items():
                merged[name] = self.learner_store.write_shard(state.step, name, content)
            metadata: dict[str, JSONValue] = {
                POLICY_METADATA_KEY: policy,
                LEARNER_METADATA_KEY: state.as_metadata(tag, self._rank.world_size),
            }
            ref = self.learner_store.commit(state.step, merged, metadata)
            self.learner_store.retain(self._keep_last)
            logger.info("checkpoint %s (step %d)", ref.uri, state.step)
        barrier()
        return ref

    def resume(self, engine: Any) -> Resumed | None:
        """Collective: load the newest complete checkpoint into ``engine`` on every rank."""
        ref = self.learner_store.latest()
        if ref is None:
            return None
        manifest = self.learner_store.read_manifest(ref)
        learner = manifest.metadata.get(LEARNER_METADATA_KEY)
        if not isinstance(learner, Mapping):
            raise ValueError(f"{ref.uri} is not a learner checkpoint (no {LEARNER_METADATA_KEY!r})")
        local = self._scratch / "resume"
        shutil.rmtree(local, ignore_errors=True)
        self.learner_store.download(ref, local)
        tag = str(learner["deepspeed_tag"])
        loaded, _ = engine.load_checkpoint(
            str(local / DEEPSPEED_DIRECTORY),
            tag=tag,
            load_optimizer_states=True,
            load_lr_scheduler_states=False,
        )
        if loaded is None:
            raise ValueError(f"DeepSpeed could not load {ref.uri}{DEEPSPEED_DIRECTORY}/{tag}")
        shutil.rmtree(local, ignore_errors=True)
        state = LearnerState(
            step=int(learner["step"]),
            policy_version=int(learner["policy_version"]),
            reward_shift=dict(learner["reward_shift"]),
            ssb_offsets=[list(entry) for entry in learner["ssb_offsets"]],
            ssb_snapshot_uri=str(learner["ssb_snapshot_uri"]),
        )
        logger.info("resumed from %s: step %d", ref.uri, state.step)
        return Resumed(ref, state)
