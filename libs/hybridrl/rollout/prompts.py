"""Prompt events for the prompts topic, built from the synthetic visual task.

The local run's prompt publisher and the tests put ``PromptEvent``s on ``hybridrl.prompts``;
rollout workers read them, sample a group of N responses each and emit ``RolloutEvent``s.
Images travel inline as PNG (the task's 32x32 images are a few hundred bytes).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType

from hybridrl.engines.base import MAX_RESPONSES_PER_PROMPT
from hybridrl.models.images import encode_png, inline_image_ref
from hybridrl.proto.schema import SCHEMA_VERSION
from hybridrl.proto.v1 import common_pb2, events_pb2
from hybridrl.tasks.visual_reasoning import TaskKind, VisualPrompt

SYNTHETIC_DATASET_NAME = "synthetic-visual"

TASK_KIND_OF: Mapping[TaskKind, common_pb2.TaskKind.ValueType] = MappingProxyType(
    {
        "counting": common_pb2.TASK_KIND_COUNTING,
        # The colour answer is an option letter; left/right is a label out of a fixed set.
        "colour": common_pb2.TASK_KIND_MULTIPLE_CHOICE,
        "position": common_pb2.TASK_KIND_MULTIPLE_CHOICE,
        "digit_sum": common_pb2.TASK_KIND_MATH,
    }
)
"""How the rule reward checks each synthetic task's answer."""


def prompt_event_from_task(
    prompt: VisualPrompt,
    group_size: int,
    *,
    dataset_name: str = SYNTHETIC_DATASET_NAME,
    created_at: datetime | None = None,
) -> events_pb2.PromptEvent:
    """The ``PromptEvent`` of one synthetic task prompt, its image inline as PNG.

    Args:
        prompt: from ``hybridrl.tasks.generate_prompts``.
        group_size: responses to sample (GRPO's N), 1 to ``MAX_RESPONSES_PER_PROMPT``.
        dataset_name: recorded for metrics by source.
        created_at: publication time; now (UTC) when omitted.
    """
    if isinstance(group_size, bool) or not isinstance(group_size, int):
        raise ValueError(f"group_size must be an int, got {group_size!r}")
    if not 1 <= group_size <= MAX_RESPONSES_PER_PROMPT:
        raise ValueError(f"group_size must be in [1, {MAX_RESPONSES_PER_PROMPT}], got {group_size}")
    event = events_pb2.PromptEvent(
        schema_version=SCHEMA_VERSION,
        prompt_id=prompt.prompt_id,
        text=prompt.question,
        images=[inline_image_ref(encode_png(prompt.image))],
        reference_answer=prompt.answer,
        task_kind=TASK_KIND_OF[prompt.kind],
        group_size=group_size,
        dataset_name=dataset_name,
    )
    event.created_at.FromDatetime(created_at or datetime.now(UTC))
    return event
