"""Protobuf messages to the scorer's items and back: the reward service's translation layer.

Both ways in use it: ``RolloutEvent`` records from ``hybridrl.rollouts`` (worker) and
``ScoringItem`` messages of gRPC calls (servicer). Out go ``ScoredEvent`` records and
``ScoringResult`` messages. Anything a retry cannot fix raises ValueError with the reason (an
unspecified task kind, more than one image, an image that does not decode or is not there);
an object store that stays unreachable raises ``ObjectStoreUnavailable``, so the caller can
retry later instead of rejecting the input.

Images are read only when a reward model is configured, the only part of eq. 7 that looks at
them; otherwise their references are only checked for form.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from types import MappingProxyType

from PIL import Image

from hybridrl.models.images import load_image_ref
from hybridrl.proto.schema import SCHEMA_VERSION, check_image_ref
from hybridrl.proto.v1 import common_pb2, events_pb2, reward_pb2
from hybridrl.rewards.hybrid import RewardParts
from hybridrl.rewards.scoring import (
    ScoredItem,
    ScoreStatus,
    ScoringItem,
    TaskKind,
    invalid_input_reason,
)
from hybridrl.store.object_store import ObjectNotFound

MAX_IMAGES_PER_ITEM = 1
"""The reward model places one image per item (``RewardModelInput.image``)."""

TASK_KINDS: Mapping[common_pb2.TaskKind.ValueType, TaskKind] = MappingProxyType(
    {
        common_pb2.TASK_KIND_MATH: TaskKind.MATH,
        common_pb2.TASK_KIND_MULTIPLE_CHOICE: TaskKind.MULTIPLE_CHOICE,
        common_pb2.TASK_KIND_COUNTING: TaskKind.COUNTING,
        common_pb2.TASK_KIND_OPEN: TaskKind.OPEN,
    }
)
SCORER_STATUSES: Mapping[ScoreStatus, common_pb2.ScorerStatus.ValueType] = MappingProxyType(
    {
        ScoreStatus.OK: common_pb2.SCORER_STATUS_OK,
        ScoreStatus.NO_ANSWER: common_pb2.SCORER_STATUS_NO_ANSWER,
        ScoreStatus.VERIFY_TIMEOUT: common_pb2.SCORER_STATUS_VERIFY_TIMEOUT,
        ScoreStatus.MODEL_SKIPPED: common_pb2.SCORER_STATUS_MODEL_SKIPPED,
        ScoreStatus.INVALID_INPUT: common_pb2.SCORER_STATUS_INVALID_INPUT,
    }
)


def task_kind_from_proto(value: common_pb2.TaskKind.ValueType) -> TaskKind:
    """The scorer's task kind; ValueError for TASK_KIND_UNSPECIFIED or an unknown number."""
    kind = TASK_KINDS.get(value)
    if kind is None:
        name = common_pb2.TaskKind.Name(value) if value in common_pb2.TaskKind.values() else value
        raise ValueError(
            f"task_kind {name} cannot be scored; use MATH, MULTIPLE_CHOICE, COUNTING or OPEN"
        )
    return kind


class PromptImages:
    """A prompt's image for the reward model, read from its ``ImageRef``.

    ``fetch(uri)`` reads object-store URIs whose scheme is in ``schemes``; with
    ``decode=False`` (no reward model) the references are checked and nothing is read.
    """

    def __init__(
        self,
        fetch: Callable[[str], bytes],
        *,
        decode: bool,
        schemes: Sequence[str] = ("s3",),
    ) -> None:
        self._fetch = fetch
        self._decode = decode
        self._prefixes = tuple(f"{scheme}://" for scheme in schemes)

    def image_of(self, images: Sequence[common_pb2.ImageRef]) -> Image.Image | None:
        """The decoded image (None without images or without decoding); ValueError if unusable."""
        if len(images) > MAX_IMAGES_PER_ITEM:
            raise ValueError(
                f"{len(images)} images given; the reward model takes at most "
                f"{MAX_IMAGES_PER_ITEM} per item"
            )
        for ref in images:
            check_image_ref(ref)
            if ref.WhichOneof("source") == "uri" and not ref.uri.startswith(self._prefixes):
                raise ValueError(
                    f"image URI {ref.uri!r} is not readable here; use one of {self._prefixes}"
                )
        if not images or not self._decode:
            return None
        try:
            return load_image_ref(images[0], self._fetch)
        except ObjectNotFound as error:
            raise ValueError(f"image not found: {error}") from error


def scoring_item_from_request(
    item: reward_pb2.ScoringItem, images: PromptImages, max_text_chars: int
) -> ScoringItem:
    """The scorer's item for a gRPC ``ScoringItem``; ValueError (INVALID_ARGUMENT) if invalid.

    Stricter than the rollout path: an empty response or a missing gold answer is the
    caller's mistake to hear about, not a score.
    """
    texts = {
        "prompt_text": item.prompt_text,
        "response_text": item.response_text,
        "reference_answer": item.reference_answer,
    }
    for name, text in texts.items():
        if len(text) > max_text_chars:
            raise ValueError(f"{name} has {len(text)} characters, over the limit {max_text_chars}")
    if not item.response_text.strip():
        raise ValueError("response_text is empty")
    scoring = ScoringItem(
        response=item.response_text,
        gold=item.reference_answer,
        prompt=item.prompt_text,
        image=images.image_of(item.images),
        task_kind=task_kind_from_proto(item.task_kind),
    )
    reason = invalid_input_reason(scoring)
    if reason is not None:
        raise ValueError(f"reference_answer: {reason}")
    return scoring


def scoring_item_from_rollout(
    rollout: events_pb2.RolloutEvent, images: PromptImages
) -> ScoringItem:
    """The scorer's item for a rollout; ValueError for one that cannot be scored at all.

    An empty response or a missing gold answer is scored (no answer, invalid input) rather
    than rejected, so that every response of a group reaches the buffer.
    """
    return ScoringItem(
        response=rollout.response_text,
        gold=rollout.reference_answer,
        prompt=rollout.prompt_text,
        image=images.image_of(rollout.images),
        task_kind=task_kind_from_proto(rollout.task_kind),
    )


def reward_parts_message(parts: RewardParts) -> common_pb2.RewardParts:
    return common_pb2.RewardParts(
        rule=parts.rule, model=parts.model, format=parts.format, total=parts.total
    )


def scoring_result(scored: ScoredItem) -> reward_pb2.ScoringResult:
    """The gRPC result of one scored item."""
    return reward_pb2.ScoringResult(
        reward=reward_parts_message(scored.parts),
        extracted_answer=scored.extracted_answer or "",
        status=SCORER_STATUSES[scored.status],
        status_detail=scored.detail,
    )


def scored_event(
    rollout: events_pb2.RolloutEvent, scored: ScoredItem, scored_at: datetime
) -> events_pb2.ScoredEvent:
    """The ``ScoredEvent`` of a rollout: the rollout unchanged, its reward and status."""
    event = events_pb2.ScoredEvent(
        schema_version=SCHEMA_VERSION,
        rollout=rollout,
        reward=reward_parts_message(scored.parts),
        extracted_answer=scored.extracted_answer or "",
        status=SCORER_STATUSES[scored.status],
        status_detail=scored.detail,
    )
    event.scored_at.FromDatetime(scored_at)
    return event
