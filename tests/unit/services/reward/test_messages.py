"""Translation between the reward service's protobuf messages and the scorer's items."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hybridrl_services.reward.messages import (
    SCORER_STATUSES,
    TASK_KINDS,
    PromptImages,
    scored_event,
    scoring_item_from_rollout,
    scoring_result,
    task_kind_from_proto,
)

from hybridrl.proto.schema import SCHEMA_VERSION
from hybridrl.proto.v1 import common_pb2
from hybridrl.rewards.hybrid import RewardParts
from hybridrl.rewards.scoring import ScoredItem, ScoreStatus, TaskKind
from hybridrl.store.object_store import ObjectNotFound


def test_every_task_kind_and_status_maps_to_its_proto_value() -> None:
    assert {common_pb2.TaskKind.Name(value): kind.name for value, kind in TASK_KINDS.items()} == {
        f"TASK_KIND_{kind.name}": kind.name for kind in TaskKind
    }
    assert {
        status.name: common_pb2.ScorerStatus.Name(v) for status, v in SCORER_STATUSES.items()
    } == {status.name: f"SCORER_STATUS_{status.name}" for status in ScoreStatus}


def test_unspecified_or_unknown_task_kind_is_refused() -> None:
    assert task_kind_from_proto(common_pb2.TASK_KIND_COUNTING) is TaskKind.COUNTING
    with pytest.raises(ValueError, match="task_kind TASK_KIND_UNSPECIFIED cannot be scored"):
        task_kind_from_proto(common_pb2.TASK_KIND_UNSPECIFIED)
    with pytest.raises(ValueError, match="task_kind 42 cannot be scored"):
        task_kind_from_proto(42)  # type: ignore[arg-type]


def test_images_are_read_only_for_a_model_and_only_from_allowed_schemes(png: bytes) -> None:
    objects = {"s3://images/cat.png": png}

    def fetch(uri: str) -> bytes:
        if uri not in objects:
            raise ObjectNotFound(uri)
        return objects[uri]

    by_uri = common_pb2.ImageRef(uri="s3://images/cat.png")
    image = PromptImages(fetch, decode=True).image_of([by_uri])
    assert image is not None
    assert (image.size, image.getpixel((0, 0)), image.getpixel((31, 0))) == (
        (32, 32),
        (200, 10, 30),
        (10, 30, 200),
    )
    assert PromptImages(fetch, decode=False).image_of([by_uri]) is None
    assert PromptImages(fetch, decode=True).image_of([]) is None
    missing = common_pb2.ImageRef(uri="s3://images/dog.png")
    with pytest.raises(ValueError, match="image not found"):
        PromptImages(fetch, decode=True).image_of([missing])
    local = common_pb2.ImageRef(uri="file:///tmp/cat.png")
    with pytest.raises(ValueError, match="not readable here"):
        PromptImages(fetch, decode=False).image_of([local])
    with pytest.raises(ValueError, match="2 images given"):
        PromptImages(fetch, decode=False).image_of([by_uri, by_uri])
    with pytest.raises(ValueError, match="neither uri nor inline_image"):
        PromptImages(fetch, decode=False).image_of([common_pb2.ImageRef()])


def test_rollout_fields_become_the_scoring_item(make_rollout: Any) -> None:
    rollout = make_rollout(task_kind=common_pb2.TASK_KIND_OPEN, gold="")
    item = scoring_item_from_rollout(rollout, PromptImages(lambda uri: b"", decode=False))
    assert (item.response, item.gold, item.prompt, item.image, item.task_kind) == (
        rollout.response_text,
        "",
        "What is 2+3?",
        None,
        TaskKind.OPEN,
    )


def test_scored_items_become_results_and_events(make_rollout: Any) -> None:
    scored = ScoredItem(
        RewardParts(rule=1.0, model=0.25, format=0.0, total=1.25), None, ScoreStatus.OK
    )
    result = scoring_result(scored)
    assert (result.reward.rule, result.reward.model, result.reward.format) == (1.0, 0.25, 0.0)
    assert (result.reward.total, result.extracted_answer, result.status) == (
        1.25,
        "",
        common_pb2.SCORER_STATUS_OK,
    )
    rollout = make_rollout()
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    event = scored_event(rollout, scored, at)
    assert (event.schema_version, event.rollout, event.reward) == (
        SCHEMA_VERSION,
        rollout,
        result.reward,
    )
    assert event.scored_at.ToDatetime(tzinfo=UTC) == at
