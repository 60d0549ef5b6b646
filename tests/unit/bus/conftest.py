"""Events and an in-memory bus shared by the hybridrl.bus unit tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from hybridrl.bus.memory import InMemoryBroker
from hybridrl.bus.topics import TopicSpec
from hybridrl.proto.schema import SCHEMA_VERSION
from hybridrl.proto.v1 import events_pb2

RolloutFactory = Callable[..., events_pb2.RolloutEvent]


@pytest.fixture
def make_rollout() -> RolloutFactory:
    """Builds a valid RolloutEvent; keyword arguments override fields."""

    def build(group: str = "p1@v0", index: int = 0, **fields: object) -> events_pb2.RolloutEvent:
        values: dict[str, object] = {
            "schema_version": SCHEMA_VERSION,
            "sample_id": f"{group}#{index}",
            "group_id": group,
            "prompt_id": group.split("@")[0],
            "sample_index": index,
            "group_size": 4,
            "response_text": f"answer {index}",
        }
        values.update(fields)
        return events_pb2.RolloutEvent(**values)  # type: ignore[arg-type]

    return build


@pytest.fixture
def broker() -> InMemoryBroker:
    """An in-memory broker with rollouts (4 partitions), scored (4) and dlq (1)."""
    memory = InMemoryBroker()
    memory.create_topics([TopicSpec("rollouts", 4), TopicSpec("scored", 4), TopicSpec("dlq", 1)])
    return memory
