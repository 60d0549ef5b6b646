"""gRPC ``RewardService``: ``Score`` and ``ScoreBatch`` over the service's ``HybridScorer``.

A translation between ``protos/hybridrl/v1/reward.proto`` and ``hybridrl.rewards.scoring``:

- a request this code cannot read (schema version), an empty or oversized field, a missing
  gold answer for a rule-checked task, an unspecified task kind, an image that does not
  decode, an empty batch or one over ``max_batch_items``: INVALID_ARGUMENT with the reason;
- a request whose deadline has passed by the time it would be scored: DEADLINE_EXCEEDED,
  without scoring it. Nine tenths of the caller's remaining time also bound the wait for the
  reward model, so a late model gives an answer with r_theta = 0 (status model_skipped) in
  time rather than no answer;
- an object store that stays unreachable (images by URI) or a scorer that is shutting down:
  UNAVAILABLE, which clients may retry;
- a request over ``grpc.max_message_bytes``: RESOURCE_EXHAUSTED, answered by gRPC itself.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import grpc
from hybridrl_services.common.grpc_server import abort
from hybridrl_services.reward.messages import (
    PromptImages,
    scoring_item_from_request,
    scoring_result,
)

from hybridrl.proto.schema import SCHEMA_VERSION, check_schema_version
from hybridrl.proto.v1 import reward_pb2, reward_pb2_grpc
from hybridrl.rewards.scoring import HybridScorer, ScoringItem
from hybridrl.store.object_store import ObjectStoreUnavailable

logger = logging.getLogger(__name__)

_ANSWER_TIME_FRACTION = 0.1
SERVICE_NAME = reward_pb2.DESCRIPTOR.services_by_name["RewardService"].full_name


class RewardServicer(reward_pb2_grpc.RewardServiceServicer):
    """Serves ``RewardService`` with a ``HybridScorer``."""

    def __init__(
        self,
        scorer: HybridScorer,
        images: PromptImages,
        *,
        max_batch_items: int,
        max_text_chars: int,
    ) -> None:
        if max_batch_items < 1 or max_text_chars < 1:
            raise ValueError("max_batch_items and max_text_chars must be >= 1")
        self._scorer = scorer
        self._images = images
        self._max_batch_items = max_batch_items
        self._max_text_chars = max_text_chars

    def Score(  # noqa: N802 - the RPC's name
        self, request: reward_pb2.ScoreRequest, context: Any
    ) -> reward_pb2.ScoreResponse:
        items = [request.item] if request.HasField("item") else []
        (result,) = self._score(request, items, context, single=True)
        return reward_pb2.ScoreResponse(schema_version=SCHEMA_VERSION, result=result)

    def ScoreBatch(  # noqa: N802 - the RPC's name
        self, request: reward_pb2.ScoreBatchRequest, context: Any
    ) -> reward_pb2.ScoreBatchResponse:
        results = self._score(request, request.items, context, single=False)
        return reward_pb2.ScoreBatchResponse(schema_version=SCHEMA_VERSION, results=results)

    def _score(
        self,
        request: reward_pb2.ScoreRequest | reward_pb2.ScoreBatchRequest,
        messages: Sequence[reward_pb2.ScoringItem],
        context: Any,
        *,
        single: bool,
    ) -> list[reward_pb2.ScoringResult]:
        try:
            check_schema_version(request)
            items = self._items(messages, single=single)
        except ValueError as error:
            abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(error))
        except ObjectStoreUnavailable as error:
            abort(context, grpc.StatusCode.UNAVAILABLE, f"image store unavailable: {error}")
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            abort(context, grpc.StatusCode.DEADLINE_EXCEEDED, "deadline passed before scoring")
        try:
            # Leave part of the caller's time for the answer: a model running late then costs
            # r_theta (status model_skipped), not the whole call.
            budget = None if remaining is None else remaining * (1 - _ANSWER_TIME_FRACTION)
            scored = self._scorer.score(items, timeout_seconds=budget)
        except RuntimeError as error:  # closed while stopping, or the rule pool failed
            logger.warning("scoring failed: %s", error)
            abort(context, grpc.StatusCode.UNAVAILABLE, f"scorer unavailable: {error}")
        return [scoring_result(item) for item in scored]

    def _items(
        self, messages: Sequence[reward_pb2.ScoringItem], *, single: bool
    ) -> list[ScoringItem]:
        if not messages:
            raise ValueError("item is missing" if single else "items is empty")
        if len(messages) > self._max_batch_items:
            raise ValueError(
                f"{len(messages)} items, over the limit of {self._max_batch_items} per call"
            )
        items = []
        for position, message in enumerate(messages):
            try:
                items.append(scoring_item_from_request(message, self._images, self._max_text_chars))
            except ValueError as error:
                raise ValueError(
                    f"{'item' if single else f'items[{position}]'}: {error}"
                ) from error
        return items
