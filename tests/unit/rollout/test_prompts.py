"""prompt_event_from_task: the synthetic task's prompts as events for the prompts topic."""

from datetime import UTC, datetime

import numpy as np
import pytest

from hybridrl.models.images import decode_image
from hybridrl.proto.schema import SCHEMA_VERSION
from hybridrl.proto.v1 import common_pb2
from hybridrl.rollout.prompts import prompt_event_from_task
from hybridrl.tasks.visual_reasoning import generate_prompts

PUBLISHED_AT = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)


def test_each_task_kind_becomes_an_event_with_its_answer_check_and_image() -> None:
    tasks = generate_prompts(4, seed=0)
    events = [prompt_event_from_task(task, 8, created_at=PUBLISHED_AT) for task in tasks]
    assert [event.task_kind for event in events] == [
        common_pb2.TASK_KIND_COUNTING,
        common_pb2.TASK_KIND_MULTIPLE_CHOICE,
        common_pb2.TASK_KIND_MULTIPLE_CHOICE,
        common_pb2.TASK_KIND_MATH,
    ]
    for task, event in zip(tasks, events, strict=True):
        assert event.schema_version == SCHEMA_VERSION
        assert event.prompt_id == task.prompt_id
        assert event.text == task.question
        assert event.reference_answer == task.answer
        assert event.group_size == 8
        assert event.dataset_name == "synthetic-visual"
        assert event.created_at.ToDatetime(tzinfo=UTC) == PUBLISHED_AT
        (image,) = event.images
        assert image.inline_image.mime_type == "image/png"
        assert np.array_equal(np.asarray(decode_image(image.inline_image.data)), task.image)


def test_group_size_out_of_range_is_refused() -> None:
    task = generate_prompts(1, seed=0)[0]
    with pytest.raises(ValueError, match=r"group_size must be in \[1, 256\], got 0"):
        prompt_event_from_task(task, 0)
    with pytest.raises(ValueError, match="got 257"):
        prompt_event_from_task(task, 257)
    with pytest.raises(ValueError, match="must be an int"):
        prompt_event_from_task(task, True)
