"""gRPC ``BufferService``: ``Sample``, ``Stats`` and ``Snapshot`` over one ``ReplayShard``.

A translation between ``protos/hybridrl/v1/buffer.proto`` and ``hybridrl.replay``:

- ``Sample`` waits for enough fresh samples (pairs) up to ``max_wait_s`` and never past the
  call's deadline, then returns what is ready, possibly fewer than asked (the learner polls
  again); a retry for the same (learner_step, learner_rank) gets the same batch. A GRPO batch
  also says what the fresh rollouts it consumed looked like (``GrpoBatch`` fields 2-5), the
  zero-advantage ones the learner never receives included.
- Bad requests answer INVALID_ARGUMENT: another schema version, an unset kind, batch_size 0 or
  above ``max_batch_size``, learner_rank >= learner_world_size, a retry with another size.
- ``Snapshot`` asks the consumer thread for a snapshot and waits for it within the deadline:
  FAILED_PRECONDITION without a snapshot location, DEADLINE_EXCEEDED when it takes too long,
  UNAVAILABLE when the object store or the consumer is down.

``StatsResponse.effective_sample_ratio`` is the ratio over the sliding window of groups
(``SampleStoreConfig.effective_window_groups``), the trend the paper watched fall from 60% to
40%; staleness is measured against the newest policy version seen.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import grpc
from hybridrl_services.common.grpc_server import abort
from hybridrl_services.ssb.worker import SnapshotsDisabledError

from hybridrl.algo.pairs import PreferencePair
from hybridrl.algo.samples import ScoredResponse
from hybridrl.proto.schema import SCHEMA_VERSION, check_schema_version
from hybridrl.proto.tensor_codec import tensor_from_array
from hybridrl.proto.v1 import buffer_pb2, buffer_pb2_grpc, common_pb2
from hybridrl.replay.records import (
    GrpoBatch,
    RewardBreakdown,
    SamplePayload,
    ServedSample,
    pair_id_for,
)
from hybridrl.replay.shard import ReplayShard
from hybridrl.replay.snapshots import SavedSnapshot
from hybridrl.store.object_store import ObjectStoreError

logger = logging.getLogger(__name__)

SERVICE_NAME = buffer_pb2.DESCRIPTOR.services_by_name["BufferService"].full_name

SnapshotRequester = Callable[[float | None], SavedSnapshot]
"""Takes a snapshot within the given seconds (None: no limit) and returns where it is."""


_ORIGIN_BUFFER = buffer_pb2.SAMPLE_ORIGIN_BUFFER
_ORIGIN_FRESH = buffer_pb2.SAMPLE_ORIGIN_FRESH


def _images(payload: SamplePayload) -> list[common_pb2.ImageRef]:
    return [common_pb2.ImageRef.FromString(image) for image in payload.images]


def reward_parts_message(parts: RewardBreakdown) -> common_pb2.RewardParts:
    """The parts of eq. (7) as the proto carries them."""
    return common_pb2.RewardParts(
        rule=parts.rule, model=parts.model, format=parts.format, total=parts.total
    )


def grpo_sample_message(served: ServedSample) -> buffer_pb2.GrpoSample:
    """One served sample as the learner receives it."""
    response = served.response
    payload = response.payload
    message = buffer_pb2.GrpoSample(
        sample_id=response.sample_id,
        group_id=response.group_id,
        prompt_id=response.prompt_id,
        policy_version=response.policy_version,
        prompt_token_ids=payload.prompt_token_ids.tolist(),
        response_token_ids=payload.response_token_ids.tolist(),
        advantage=served.advantage,
        reward=response.reward,
        images=_images(payload),
        origin=(
            buffer_pb2.SAMPLE_ORIGIN_BUFFER
            if served.from_buffer
            else buffer_pb2.SAMPLE_ORIGIN_FRESH
        ),
        payload_uri=payload.payload_uri,
        payload_sha256=payload.payload_sha256,
        reward_parts=reward_parts_message(payload.reward_parts),
    )
    if not payload.payload_uri:
        message.behaviour_logprobs.CopyFrom(tensor_from_array(payload.behaviour_logprobs))
    return message


def grpo_batch_message(batch: GrpoBatch) -> buffer_pb2.GrpoBatch:
    """The served samples and what the fresh rollouts the batch consumed looked like."""
    return buffer_pb2.GrpoBatch(
        samples=[grpo_sample_message(served) for served in batch.samples],
        fresh_offered=batch.fresh_offered,
        fresh_zero_advantage=batch.fresh_zero_advantage,
        fresh_reward_mean=reward_parts_message(batch.fresh_reward_mean),
        fresh_response_length_mean=batch.fresh_response_length_mean,
    )


def _candidate(response: ScoredResponse[SamplePayload]) -> buffer_pb2.PairCandidate:
    payload = response.payload
    return buffer_pb2.PairCandidate(
        sample_id=response.sample_id,
        response_token_ids=payload.response_token_ids.tolist(),
        reward=response.reward,
        payload_uri=payload.payload_uri,
        payload_sha256=payload.payload_sha256,
    )


def pair_message(pair: PreferencePair[SamplePayload]) -> buffer_pb2.PreferencePair:
    """One MPO pair; the prompt's tokens and images are those of the chosen response."""
    chosen = pair.chosen.payload
    return buffer_pb2.PreferencePair(
        pair_id=pair_id_for(pair),
        prompt_id=pair.chosen.prompt_id,
        prompt_token_ids=chosen.prompt_token_ids.tolist(),
        images=_images(chosen),
        chosen=_candidate(pair.chosen),
        rejected=_candidate(pair.rejected),
    )


class BufferServicer(buffer_pb2_grpc.BufferServiceServicer):
    """Serves ``BufferService`` from a ``ReplayShard``."""

    def __init__(
        self,
        shard: ReplayShard,
        request_snapshot: SnapshotRequester | None,
        *,
        max_batch_size: int,
        max_wait_s: float,
    ) -> None:
        self._shard = shard
        self._request_snapshot = request_snapshot
        self._max_batch_size = max_batch_size
        self._max_wait_s = max_wait_s

    def Sample(  # noqa: N802 - the RPC's name
        self, request: buffer_pb2.SampleRequest, context: Any
    ) -> buffer_pb2.SampleResponse:
        try:
            check_schema_version(request)
            self._check(request)
            arguments = (
                request.batch_size,
                request.current_policy_version,
                request.max_staleness,
                request.learner_rank,
                request.learner_world_size,
                request.learner_step,
            )
            wait_s = self._wait_s(context)
            if request.kind == buffer_pb2.BATCH_KIND_GRPO:
                batch = self._shard.next_grpo_batch(*arguments, wait_s=wait_s)
                return buffer_pb2.SampleResponse(
                    schema_version=SCHEMA_VERSION, grpo=grpo_batch_message(batch)
                )
            pairs = self._shard.next_mpo_batch(*arguments, wait_s=wait_s)
            return buffer_pb2.SampleResponse(
                schema_version=SCHEMA_VERSION,
                mpo_pairs=buffer_pb2.MpoPairBatch(pairs=[pair_message(p) for p in pairs.pairs]),
            )
        except ValueError as error:
            abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(error))

    def _check(self, request: buffer_pb2.SampleRequest) -> None:
        if request.kind not in (buffer_pb2.BATCH_KIND_GRPO, buffer_pb2.BATCH_KIND_MPO_PAIRS):
            raise ValueError(
                f"kind must be BATCH_KIND_GRPO or BATCH_KIND_MPO_PAIRS, got {request.kind}"
            )
        if not 1 <= request.batch_size <= self._max_batch_size:
            raise ValueError(
                f"batch_size must be in [1, {self._max_batch_size}], got {request.batch_size}"
            )
        if not request.learner_rank < request.learner_world_size:
            raise ValueError(
                f"learner_rank ({request.learner_rank}) must be below learner_world_size "
                f"({request.learner_world_size})"
            )

    def _wait_s(self, context: Any) -> float:
        """What the call may wait: the cap, less than its remaining deadline by a margin for
        building and sending the answer."""
        remaining: float | None = context.time_remaining()
        if remaining is None:
            return self._max_wait_s
        return max(0.0, min(self._max_wait_s, remaining - max(0.1, 0.1 * remaining)))

    def Stats(  # noqa: N802 - the RPC's name
        self, request: buffer_pb2.StatsRequest, context: Any
    ) -> buffer_pb2.StatsResponse:
        try:
            check_schema_version(request)
        except ValueError as error:
            abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(error))
        stats = self._shard.stats()
        staleness = stats.staleness_range() or (0, 0)
        buffer = stats.buffer
        return buffer_pb2.StatsResponse(
            schema_version=SCHEMA_VERSION,
            effective_sample_ratio=stats.effective_ratio_window or 0.0,
            buffer_size=buffer.size if buffer is not None else 0,
            buffer_capacity=buffer.capacity if buffer is not None else 0,
            staleness_min=staleness[0],
            staleness_max=staleness[1],
            groups_seen=stats.groups_completed,
            groups_dropped_zero_variance=stats.groups_zero_variance,
            duplicates_dropped=stats.duplicates_dropped,
            newest_policy_version=max(stats.newest_policy_version or 0, 0),
        )

    def Snapshot(  # noqa: N802 - the RPC's name
        self, request: buffer_pb2.SnapshotRequest, context: Any
    ) -> buffer_pb2.SnapshotResponse:
        try:
            check_schema_version(request)
        except ValueError as error:
            abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(error))
        requester = self._request_snapshot
        if requester is None:
            abort(context, grpc.StatusCode.FAILED_PRECONDITION, "snapshots are not configured")
        try:
            saved = requester(context.time_remaining())
        except SnapshotsDisabledError as error:
            abort(context, grpc.StatusCode.FAILED_PRECONDITION, str(error))
        except TimeoutError:
            abort(context, grpc.StatusCode.DEADLINE_EXCEEDED, "the snapshot did not finish in time")
        except (ObjectStoreError, RuntimeError) as error:
            logger.error("Snapshot failed: %s", error)
            abort(context, grpc.StatusCode.UNAVAILABLE, f"{type(error).__name__}: {error}")
        response = buffer_pb2.SnapshotResponse(
            schema_version=SCHEMA_VERSION,
            snapshot_uri=saved.uri,
            consumer_offsets=[
                buffer_pb2.ConsumerOffset(topic=topic, partition=partition, offset=offset)
                for (topic, partition), offset in sorted(saved.offsets.items())
            ],
            buffer_size=saved.buffer_size,
        )
        response.created_at.FromDatetime(saved.created_at)
        return response
