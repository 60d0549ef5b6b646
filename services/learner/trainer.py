"""The distributed learner's loop: batches from the SSB store, MPO then GRPO under DeepSpeed.

Each rank runs this loop; DeepSpeed averages the gradients. One learner step:

1. every rank asks the SSB store for its share of the step's batch (``Sample`` with the step,
   its rank and the world size, so shares are disjoint and a retry gets the same batch);
2. the ranks ``agree`` on the total fetched and on requests (checkpoint, stop); with nothing
   fetched anywhere they ask again;
3. the phase's step (``mpo_step``, eqs. 2-5, for the first ``run.mpo_steps`` steps, then
   ``grpo_step``, eq. 8) runs on ``run.minibatches_per_step`` interleaved minibatches, each one
   ``engine.backward`` and ``engine.step``; a rank with an empty minibatch back-propagates a
   connected zero so the gradient all-reduce never waits. Meanwhile a background thread
   already asks for the next step's batch, so that waiting for it overlaps the compute;
4. the policy version grows by one; rank 0 publishes the policy every
   ``checkpoints.publish_every_steps`` steps (the upload overlaps the next step), logs the
   step, and every
   ``checkpoints.every_steps`` steps all ranks write a resumable checkpoint.

The frozen reference pi_0 (MPO's, and the KL term's when ``run.grpo.kl_beta > 0``) is the
initial checkpoint's weights, also after a resume.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import deepspeed  # type: ignore[import-untyped]
import numpy as np
import torch
from hybridrl_services.learner.batches import (
    BatchSummary,
    ImageDecoder,
    ServedTokens,
    grpo_samples,
    preference_pairs,
)
from hybridrl_services.learner.buffer_client import BufferClient
from hybridrl_services.learner.checkpointing import LearnerCheckpoints, LearnerState
from hybridrl_services.learner.distributed import (
    DistributedRewardShift,
    RankInfo,
    agree,
    gather_objects,
)
from hybridrl_services.learner.model_setup import deepspeed_config, initial_policy, share_of
from hybridrl_services.learner.settings import LearnerSettings
from hybridrl_services.learner.status import LearnerProgress
from hybridrl_services.learner.step_log import (
    RankStep,
    append_record,
    end_cut_line,
    losses_of,
    step_record,
)
from numpy.typing import NDArray

from hybridrl.algo.pairs import PreferencePair
from hybridrl.algo.samples import ScoredResponse
from hybridrl.bus.producer import EventProducer
from hybridrl.learner.collate import collate_grpo, collate_pairs
from hybridrl.learner.schedule import phase_learning_rate
from hybridrl.learner.steps import StepOutput, grpo_step, mpo_step, zero_loss
from hybridrl.models.freezing import apply_freeze_mode
from hybridrl.models.tokenizer import build_tokenizer
from hybridrl.models.vlm import VisionLanguageModel
from hybridrl.proto.v1 import buffer_pb2
from hybridrl.store.checkpoints import CheckpointRef
from hybridrl.store.claim_check import ClaimCheckStore
from hybridrl.store.uris import open_object_store, resolve

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Fetched:
    """This rank's share of one step: GRPO samples with advantages, or MPO pairs."""

    samples: list[ScoredResponse[ServedTokens]] = field(default_factory=list)
    advantages: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    summary: BatchSummary = field(default_factory=BatchSummary)
    pairs: list[PreferencePair[ServedTokens]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.samples) + len(self.pairs)


class DistributedLearner:
    """One rank of the learner job (see the module docstring)."""

    def __init__(
        self,
        settings: LearnerSettings,
        rank: RankInfo,
        *,
        progress: LearnerProgress | None = None,
        producer: EventProducer | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        """``progress`` and ``producer`` on rank 0 only; ``stop`` ends the run at a step
        boundary (with a checkpoint)."""
        self.settings = settings
        self.rank = rank
        self._progress = progress
        self._producer = producer
        self._stop = stop or threading.Event()
        run = settings.run
        torch.set_num_threads(run.torch_threads)
        model, self.policy_version = initial_policy(settings)
        self._reference: VisionLanguageModel | None = None
        if run.mpo_steps > 0 or run.grpo.kl_beta > 0.0:
            self._reference = copy.deepcopy(model).eval().requires_grad_(False)
        apply_freeze_mode(model, run.freeze_mode)
        learning_rate = run.mpo_learning_rate if run.mpo_steps else run.grpo_learning_rate
        self.engine, *_ = deepspeed.initialize(
            model=model,
            model_parameters=[p for p in model.parameters() if p.requires_grad],
            config=deepspeed_config(settings, learning_rate),
        )
        self.model: VisionLanguageModel = self.engine.module
        self.checkpoints = LearnerCheckpoints(
            settings.run_uri,
            settings.object_store,
            rank,
            settings.checkpoints.local_directory,
            keep_last=settings.checkpoints.keep_last,
            keep_policies=settings.checkpoints.keep_policies,
        )
        self.buffer = BufferClient(
            settings.ssb_address, timeout_s=settings.sample_timeout_seconds, stop=self._stop
        )
        fetch = self._object_reader()
        self._decode = ImageDecoder(self.model.config.image_size, fetch)
        claim_uri = settings.resolved_claim_check_uri
        self._claim_checks = (
            ClaimCheckStore(open_object_store(claim_uri, settings.object_store), "", 0)
            if claim_uri is not None
            else None
        )
        self.shift = DistributedRewardShift(run.mpo.shift_decay)
        self.step = 0
        self._pad_id = int(build_tokenizer().pad_token_id or 0)
        self._last_checkpoint_step = -1
        self._published_version = -1
        self._last_publication: Future[CheckpointRef] | None = None
        # One batch ahead: the next step's Sample call overlaps this step's compute.
        self._fetcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch")
        self._ahead: tuple[int, Future[Fetched]] | None = None
        self._started = time.monotonic()
        self._unlogged = BatchSummary()

    def _object_reader(self) -> Callable[[str], bytes] | None:
        if self.settings.object_store is None:
            return None
        settings = self.settings.object_store

        def read(uri: str) -> bytes:
            store, key = resolve(uri, settings)
            return store.get_bytes(key)

        return read

    @property
    def total_steps(self) -> int:
        return self.settings.run.mpo_steps + self.settings.run.grpo_steps

    def phase(self, step: int) -> str:
        return "mpo" if step < self.settings.run.mpo_steps else "grpo"

    def start(self) -> None:
        """Resume from the newest checkpoint if there is one; publish the starting policy.

        The first publication of a learner process carries full weights, so a rollout worker
        that never saw the initial checkpoint still ends up on the learner's model.
        """
        resumed = self.checkpoints.resume(self.engine)
        if resumed is not None:
            self.step = resumed.state.step
            self.policy_version = resumed.state.policy_version
            self.shift.load_state_dict(resumed.state.reward_shift)
            self._last_checkpoint_step = self.step
        newest = self.checkpoints.newest_published_version()
        if newest is not None and newest >= self.policy_version:
            self.policy_version = newest + 1
        if self.step < self.total_steps:
            self._set_learning_rate(self.step)
        if self.rank.is_main:
            if self.settings.metrics_file is not None:
                end_cut_line(self.settings.metrics_file)
            self._publish(full=True)
            self.checkpoints.wait_published()
            if resumed is not None and self._progress is not None:
                sha = self.checkpoints.learner_store.manifest_sha256(resumed.ref)
                self._progress.checkpointed(resumed.ref.uri, resumed.state.step, sha)
        self._update_progress({})

    def _set_learning_rate(self, step: int) -> None:
        """The rate of ``step`` by the run's schedule (``phase_learning_rate``)."""
        run = self.settings.run
        if self.phase(step) == "mpo":
            base, phase_step, steps = run.mpo_learning_rate, step, run.mpo_steps
        else:
            base, phase_step, steps = run.grpo_learning_rate, step - run.mpo_steps, run.grpo_steps
        rate = phase_learning_rate(base, phase_step, steps, run.lr_schedule, run.min_lr_ratio)
        for group in self.engine.optimizer.param_groups:
            group["lr"] = rate

    def run(self) -> None:
        """Train until every step is done or a stop is agreed; checkpoint at the end."""
        self._started = time.monotonic()
        while self.step < self.total_steps:
            phase = self.phase(self.step)
            self._set_learning_rate(self.step)
            started = time.monotonic()
            fetched = self._take_batch(self.step)
            asked = self._progress is not None and self._progress.take_checkpoint_request()
            agreement = agree(fetched.count, asked, self._stop.is_set())
            if agreement.checkpoint_requested:
                self.checkpoint()
            if agreement.stop_requested:
                logger.info("stop requested at step %d", self.step)
                break
            if agreement.items == 0:
                # Fresh samples without signal were consumed all the same: count them.
                self._unlogged = self._unlogged.merged(fetched.summary)
                continue
            self._prefetch(self.step + 1)
            busy = time.monotonic()
            metrics = self._train(phase, fetched)
            record = RankStep(
                items=fetched.count,
                busy_seconds=time.monotonic() - busy,
                metrics=metrics,
                summary=self._unlogged.merged(fetched.summary),
            )
            self._unlogged = BatchSummary()
            self.step += 1
            self.policy_version += 1
            if self.rank.is_main and self.step % self.settings.checkpoints.publish_every_steps == 0:
                self._publish(full=False)
            self._log(phase, gather_objects(record), time.monotonic() - started)
            if self.step % self.settings.checkpoints.every_steps == 0:
                self.checkpoint()
        if self._last_checkpoint_step != self.step:
            self.checkpoint()
        if self.rank.is_main:
            if self._published_version != self.policy_version:
                self._publish(full=False)
            self.checkpoints.wait_published()
        if self._progress is not None:
            self._progress.update(finished=True)

    def _take_batch(self, step: int) -> Fetched:
        """The batch of ``step``: the one fetched in the background during the previous
        step, or a fetch now."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] == step:
            return ahead[1].result()
        return self._fetch(step, self.policy_version)

    def _prefetch(self, step: int) -> None:
        """Ask for ``step``'s batch while this step trains, as the version it will train."""
        if step < self.total_steps:
            version = self.policy_version + 1
            self._ahead = (step, self._fetcher.submit(self._fetch, step, version))

    def _fetch(self, step: int, policy_version: int) -> Fetched:
        phase = self.phase(step)
        run = self.settings.run
        if phase == "grpo":
            kind, total = buffer_pb2.BATCH_KIND_GRPO, run.grpo_batch_places
        else:
            kind, total = buffer_pb2.BATCH_KIND_MPO_PAIRS, run.mpo_batch_pairs
        response = self.buffer.sample(
            kind,
            max(share_of(total, self.rank), 1),
            policy_version=policy_version,
            max_staleness=run.max_staleness,
            rank=self.rank.rank,
            world_size=self.rank.world_size,
            step=step,
        )
        if phase == "grpo":
            samples, advantages = grpo_samples(response.grpo, self._decode, self._claim_checks)
            return Fetched(samples, advantages, BatchSummary.of(response.grpo))
        return Fetched(pairs=preference_pairs(response.mpo_pairs, self._decode, self._claim_checks))

    def _minibatches(self, size: int) -> list[list[int]]:
        count = self.settings.run.minibatches_per_step
        return [list(range(start, size, count)) for start in range(count)]

    def _train(self, phase: str, fetched: Fetched) -> dict[str, float]:
        collected: list[dict[str, float]] = []
        self.engine.train()
        for rows in self._minibatches(fetched.count):
            output = self._minibatch_loss(phase, fetched, rows)
            self.engine.backward(output.loss)
            self.engine.step()
            if rows:
                collected.append(output.metrics)
        if not collected:
            return {}
        keys = set.intersection(*(set(metrics) for metrics in collected))
        return {key: float(np.mean([m[key] for m in collected])) for key in sorted(keys)}

    def _minibatch_loss(self, phase: str, fetched: Fetched, rows: list[int]) -> StepOutput:
        run = self.settings.run
        if phase == "grpo":
            if not rows:
                return StepOutput(zero_loss(self.model), {})
            batch = collate_grpo(
                [fetched.samples[i] for i in rows], fetched.advantages[rows], self._pad_id
            )
            return grpo_step(
                self.model,
                self._reference,
                batch,
                run.grpo,
                current_policy_version=self.policy_version,
                max_staleness=run.max_staleness,
                temperature=run.temperature,
            )
        if not rows:
            self.shift.skip()
            return StepOutput(zero_loss(self.model), {})
        assert self._reference is not None  # built whenever mpo_steps > 0
        pairs = collate_pairs([fetched.pairs[i] for i in rows], self._pad_id)
        return mpo_step(self.model, self._reference, pairs, run.mpo, self.shift)

    def checkpoint(self) -> None:
        """Collective: a resumable checkpoint of the current step, SSB offsets first."""
        offsets: list[list[str | int]] = []
        snapshot_uri = ""
        if self.rank.is_main:
            snapshot = self.buffer.snapshot()
            if snapshot is not None:
                snapshot_uri = snapshot.snapshot_uri
                offsets = [[o.topic, o.partition, o.offset] for o in snapshot.consumer_offsets]
        state = LearnerState(
            step=self.step,
            policy_version=self.policy_version,
            reward_shift=self.shift.state_dict(),
            ssb_offsets=offsets,
            ssb_snapshot_uri=snapshot_uri,
        )
        ref = self.checkpoints.save(self.engine, self.model, self.settings.run.freeze_mode, state)
        self._last_checkpoint_step = self.step
        if ref is not None and self._progress is not None:
            sha = self.checkpoints.learner_store.manifest_sha256(ref)
            self._progress.checkpointed(ref.uri, self.step, sha)

    def _publish(self, *, full: bool) -> None:
        if self._producer is None:
            raise RuntimeError("rank 0 needs a producer to publish policies")
        mode = "full" if full else self.settings.run.freeze_mode
        previous = self._last_publication
        if previous is not None and previous.done():
            previous.result()  # a failed publication stops the run here, not silently
        self._last_publication = self.checkpoints.publish(
            self.model, mode, self.policy_version, self._producer, self.settings.topics.policy
        )
        self._published_version = self.policy_version

    def _log(self, phase: str, ranks: list[RankStep], seconds: float) -> None:
        if not self.rank.is_main:
            return
        run = self.settings.run
        record = step_record(
            ranks,
            step=self.step - 1,
            phase=phase,
            phase_step=self.step - 1 - (run.mpo_steps if phase == "grpo" else 0),
            policy_version=self.policy_version,
            elapsed=time.monotonic() - self._started,
            seconds=seconds,
            places=run.grpo_batch_places if phase == "grpo" else run.mpo_batch_pairs,
        )
        stats = self.buffer.stats()
        if stats is not None:
            record["buffer_size"] = stats.buffer_size
            record["ssb_effective_ratio"] = stats.effective_sample_ratio
        if self.settings.metrics_file is not None:
            append_record(self.settings.metrics_file, record)
        self._update_progress(record)

    def _update_progress(self, record: dict[str, Any]) -> None:
        if self._progress is None:
            return
        self._progress.update(
            step=self.step,
            phase=self.phase(min(self.step, max(self.total_steps - 1, 0))),
            policy_version=self.policy_version,
            losses=losses_of(record),
            samples_per_second=float(record.get("samples_per_second", 0.0)),
        )

    def close(self) -> None:
        self._fetcher.shutdown(wait=True)
        self.buffer.close()
        self.checkpoints.close()
