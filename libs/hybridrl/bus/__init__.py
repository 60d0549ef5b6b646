"""The Kafka layer between the stages of the training loop.

Topics (``topics``), protobuf events on the wire (``codec``), an idempotent producer
(``producer``), the poll-decode-handle-produce-commit loop every consuming service runs
(``consumer``), dead letters for what cannot be processed (``dead_letters``), tools that read
topics and group lag (``reader``), and an in-memory backend with the same interfaces for unit
tests (``memory``). Services pick a backend through ``BusBackend``.
"""

from hybridrl.bus.backend import BusBackend, KafkaBackend
from hybridrl.bus.codec import PoisonMessage, decode, encode
from hybridrl.bus.consumer import BatchHandler, BatchOutcome, ConsumerLoop, LoopCounters
from hybridrl.bus.kafka_source import KafkaRecordSource
from hybridrl.bus.memory import InMemoryBroker, InMemoryProducer, InMemoryRecordSource
from hybridrl.bus.producer import EventProducer
from hybridrl.bus.reader import consumer_lag, read_all
from hybridrl.bus.records import (
    CommitFailedError,
    Delivery,
    DeliveryError,
    EventSink,
    HandlerResult,
    MessageTooLargeError,
    OutputRecord,
    Partition,
    RawRecord,
    Record,
    RecordFailure,
    RecordSource,
)
from hybridrl.bus.topics import (
    TopicDescription,
    Topics,
    TopicSpec,
    create_topics,
    default_topic_specs,
    describe_topics,
    list_topics,
)

__all__ = [
    "BatchHandler",
    "BatchOutcome",
    "BusBackend",
    "CommitFailedError",
    "ConsumerLoop",
    "Delivery",
    "DeliveryError",
    "EventProducer",
    "EventSink",
    "HandlerResult",
    "InMemoryBroker",
    "InMemoryProducer",
    "InMemoryRecordSource",
    "KafkaBackend",
    "KafkaRecordSource",
    "LoopCounters",
    "MessageTooLargeError",
    "OutputRecord",
    "Partition",
    "PoisonMessage",
    "RawRecord",
    "Record",
    "RecordFailure",
    "RecordSource",
    "TopicDescription",
    "TopicSpec",
    "Topics",
    "consumer_lag",
    "create_topics",
    "decode",
    "default_topic_specs",
    "describe_topics",
    "encode",
    "list_topics",
    "read_all",
]
