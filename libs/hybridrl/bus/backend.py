"""One facade over the two bus backends: Kafka for deployments, memory for unit tests.

A service builds its producer and its consumer loop's source from a ``BusBackend`` chosen at
start-up (``KafkaBackend(settings)`` in a pod, ``InMemoryBroker()`` in a unit test), so the
same wiring runs against both, like the contract tests do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from hybridrl.bus.kafka_source import KafkaRecordSource
from hybridrl.bus.producer import EventProducer
from hybridrl.bus.reader import consumer_lag, read_all
from hybridrl.bus.records import EventSink, RawRecord, RecordSource
from hybridrl.bus.topics import TopicSpec, create_topics
from hybridrl.config.kafka import KafkaSettings


class BusBackend(Protocol):
    """What a service needs from the bus: topics, a producer, group members, inspection."""

    def create_topics(self, specs: Sequence[TopicSpec]) -> list[str]: ...

    def producer(self) -> EventSink: ...

    def source(self, topics: Sequence[str], group_id: str) -> RecordSource: ...

    def read_all(self, topic: str) -> list[RawRecord]: ...

    def consumer_lag(self, group_id: str, topic: str) -> dict[int, int]: ...


class KafkaBackend:
    """``BusBackend`` on a Kafka cluster described by ``settings``."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings

    def create_topics(self, specs: Sequence[TopicSpec]) -> list[str]:
        return create_topics(self.settings, specs)

    def producer(self) -> EventProducer:
        return EventProducer(self.settings)

    def source(self, topics: Sequence[str], group_id: str) -> KafkaRecordSource:
        return KafkaRecordSource(self.settings, topics, group_id)

    def read_all(self, topic: str) -> list[RawRecord]:
        return read_all(self.settings, topic)

    def consumer_lag(self, group_id: str, topic: str) -> dict[int, int]:
        return consumer_lag(self.settings, group_id, topic)
