"""Scored events, an in-memory bus and a snapshot directory for the ssb service tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from hybridrl.algo.samples import group_id_for, sample_id_for
from hybridrl.bus.memory import InMemoryBroker
from hybridrl.bus.topics import Topics, TopicSpec
from hybridrl.proto.schema import SCHEMA_VERSION
from hybridrl.proto.tensor_codec import tensor_from_array
from hybridrl.proto.v1 import common_pb2, events_pb2

EventFactory = Callable[..., events_pb2.ScoredEvent]
TOPICS = Topics("test.")


def scored_event(
    prompt: str = "p", version: int = 0, index: int = 0, size: int = 4, reward: float = 0.0
) -> events_pb2.ScoredEvent:
    """Response ``index`` of group (prompt, version): tokens [1, 2, 3] -> [10 + i, 20 + i]."""
    rollout = events_pb2.RolloutEvent(
        schema_version=SCHEMA_VERSION,
        sample_id=sample_id_for(prompt, version, index),
        group_id=group_id_for(prompt, version),
        prompt_id=prompt,
        sample_index=index,
        group_size=size,
        policy_version=version,
        prompt_token_ids=[1, 2, 3],
        response_token_ids=[10 + index, 20 + index],
        behaviour_logprobs=tensor_from_array(np.array([-0.5, -0.25], dtype=np.float32)),
        response_text=f"answer {index}",
        images=[common_pb2.ImageRef(uri="s3://images/cat.png")],
    )
    return events_pb2.ScoredEvent(
        schema_version=SCHEMA_VERSION,
        rollout=rollout,
        reward=common_pb2.RewardParts(rule=reward, total=reward),
        status=common_pb2.SCORER_STATUS_OK,
    )


@pytest.fixture
def make_event() -> EventFactory:
    return scored_event


@pytest.fixture
def broker() -> InMemoryBroker:
    """The loop's scored topic with two partitions and a dead-letter topic."""
    memory = InMemoryBroker()
    memory.create_topics([TopicSpec(TOPICS.scored, 2), TopicSpec(TOPICS.dlq, 1)])
    return memory
