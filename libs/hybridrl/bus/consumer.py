"""The consumer loop every stage of the training loop runs: poll, decode, handle, produce, commit.

The reward service turns rollouts into scored events, the SSB reads scored events, the rollout
worker reads prompts; each wraps its logic in a handler and runs it in a ``ConsumerLoop``. One
iteration is a chain of small steps with explicit backpressure (at most ``max_poll_records``
records in flight):

    poll -> decode (poison -> dead letter) -> handle -> encode outputs -> produce -> flush
         -> commit the batch's offsets

Offsets are committed only after the outputs and dead letters are flushed, so a pod that dies
anywhere in between has its batch delivered again (at-least-once; consumers drop duplicates by
the events' deterministic ids). A bad record never stops the loop:

- bytes that do not decode, a wrong schema version, missing identity fields: dead-lettered;
- a ``RecordFailure`` returned by the handler: that record is dead-lettered;
- a handler exception (or an output that cannot be encoded or is too large): the whole batch
  is tried ``handler_attempts`` times, then each record alone once; only the records that still
  fail are dead-lettered, with the exception as the reason, and the others go through.

A handler that fails on every record therefore dead-letters every record: watch the
``dead_lettered`` counter. Delivery failures (broker gone past the delivery timeout) are not
the records' fault: the batch is rewound and retried, nothing is committed or dead-lettered.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Generic, Self

from hybridrl.bus.codec import MessageT
from hybridrl.bus.dead_letters import dead_letter_event
from hybridrl.bus.kafka_source import KafkaRecordSource
from hybridrl.bus.records import (
    CommitFailedError,
    DeliveryError,
    EventSink,
    HandlerResult,
    Partition,
    RawRecord,
    Record,
    RecordSource,
)
from hybridrl.bus.steps import (
    Outgoing,
    RecordPosition,
    Rejection,
    decode_records,
    encode_result,
    first_offsets,
    next_offsets,
    position,
)
from hybridrl.config.kafka import KafkaSettings

logger = logging.getLogger(__name__)

BatchHandler = Callable[[Sequence[Record[MessageT]]], HandlerResult]
"""Turns a batch of decoded records into outputs and per-record failures. Must be idempotent:
a batch may be delivered again after a crash or a rebalance."""


@dataclasses.dataclass
class LoopCounters:
    """Running totals of one loop, for metrics."""

    consumed: int = 0
    produced: int = 0
    dead_lettered: int = 0
    commits: int = 0
    commit_failures: int = 0
    handler_errors: int = 0
    delivery_failures: int = 0


@dataclasses.dataclass(frozen=True)
class BatchOutcome:
    """What one ``run_once`` did."""

    consumed: int = 0
    produced: int = 0
    dead_lettered: int = 0
    committed: dict[Partition, int] = dataclasses.field(default_factory=dict)


class ConsumerLoop(Generic[MessageT]):
    """Consumes ``message_type`` events from a source, runs ``handler``, produces its outputs.

    The loop owns its source (it leaves the group on ``close``) but not the producer, which
    several loops of one service may share.
    """

    def __init__(
        self,
        source: RecordSource,
        handler: BatchHandler[MessageT],
        producer: EventSink,
        message_type: type[MessageT],
        *,
        dlq_topic: str,
        service_name: str,
        max_poll_records: int = 100,
        poll_timeout_s: float = 1.0,
        flush_timeout_s: float | None = None,
        handler_attempts: int = 2,
        retry_backoff_s: float = 1.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if max_poll_records < 1:
            raise ValueError(f"max_poll_records must be >= 1, got {max_poll_records}")
        if handler_attempts < 1:
            raise ValueError(f"handler_attempts must be >= 1, got {handler_attempts}")
        if poll_timeout_s < 0 or retry_backoff_s < 0:
            raise ValueError("poll_timeout_s and retry_backoff_s must be >= 0")
        self._source = source
        self._handler = handler
        self._producer = producer
        self._message_type = message_type
        self._dlq_topic = dlq_topic
        self._service_name = service_name
        self._max_poll_records = max_poll_records
        self._poll_timeout_s = poll_timeout_s
        self._flush_timeout_s = flush_timeout_s
        self._handler_attempts = handler_attempts
        self._retry_backoff_s = retry_backoff_s
        self._clock = clock
        self._counters = LoopCounters()
        # Offsets processed and flushed whose commit has not succeeded yet.
        self._uncommitted: dict[Partition, int] = {}
        source.set_rebalance_callbacks(self._on_revoked, self._on_assigned)

    @classmethod
    def from_settings(
        cls,
        settings: KafkaSettings,
        topics: Sequence[str],
        group_id: str,
        handler: BatchHandler[MessageT],
        producer: EventSink,
        dlq_topic: str,
        service_name: str,
        message_type: type[MessageT],
        **options: Any,
    ) -> ConsumerLoop[MessageT]:
        """A loop whose source is a member of ``group_id`` on the Kafka cluster of
        ``settings``; ``options`` are the keyword arguments of the constructor."""
        source = KafkaRecordSource(settings, topics, group_id)
        return cls(
            source,
            handler,
            producer,
            message_type,
            dlq_topic=dlq_topic,
            service_name=service_name,
            **options,
        )

    @property
    def counters(self) -> LoopCounters:
        """A snapshot of the running totals."""
        return dataclasses.replace(self._counters)

    def assignment(self) -> set[Partition]:
        """The partitions this loop's group member owns now (for status pages and tests)."""
        return self._source.assignment()

    def run(self, stop_event: threading.Event) -> None:
        """Run batches until ``stop_event`` is set; waits out delivery failures and retries."""
        while not stop_event.is_set():
            try:
                self.run_once()
            except DeliveryError as error:
                logger.error("%s: batch not delivered, retrying: %s", self._service_name, error)
                stop_event.wait(self._retry_backoff_s)

    def run_once(self) -> BatchOutcome:
        """One poll-to-commit iteration; raises DeliveryError (batch rewound) if not flushed."""
        self._commit_uncommitted()
        raw_records = self._source.poll(self._max_poll_records, self._poll_timeout_s)
        if not raw_records:
            return BatchOutcome()
        self._counters.consumed += len(raw_records)
        records, rejections = decode_records(raw_records, self._message_type)
        outputs, rejected = self._handle(records, {position(r): r for r in raw_records})
        dead_letters = [self._dead_letter(rejection) for rejection in [*rejections, *rejected]]
        self._deliver([*outputs, *dead_letters], raw_records)
        self._counters.produced += len(outputs)
        self._counters.dead_lettered += len(dead_letters)
        offsets = next_offsets(raw_records)
        for partition, offset in offsets.items():
            self._uncommitted[partition] = max(self._uncommitted.get(partition, 0), offset)
        self._commit_uncommitted()
        return BatchOutcome(len(raw_records), len(outputs), len(dead_letters), offsets)

    def _handle(
        self, records: Sequence[Record[MessageT]], raw_by_position: dict[RecordPosition, RawRecord]
    ) -> tuple[list[Outgoing], list[Rejection]]:
        """The handler step: whole batch first, then record by record if the batch keeps failing."""
        if not records:
            return [], []
        whole_batch = self._try_handler(records, raw_by_position, self._handler_attempts)
        if not isinstance(whole_batch, Exception):
            return whole_batch
        if len(records) == 1:
            return [], [self._rejection_for(records[0], raw_by_position, whole_batch)]
        outputs: list[Outgoing] = []
        rejections: list[Rejection] = []
        for record in records:
            alone = self._try_handler([record], raw_by_position, attempts=1)
            if isinstance(alone, Exception):
                rejections.append(self._rejection_for(record, raw_by_position, alone))
            else:
                outputs.extend(alone[0])
                rejections.extend(alone[1])
        return outputs, rejections

    def _try_handler(
        self,
        records: Sequence[Record[MessageT]],
        raw_by_position: dict[RecordPosition, RawRecord],
        attempts: int,
    ) -> tuple[list[Outgoing], list[Rejection]] | Exception:
        """The handler's encoded result, or the exception of its last failed attempt."""
        failure: Exception | None = None
        for attempt in range(1, attempts + 1):
            try:
                result = self._handler(records)
                return encode_result(result, raw_by_position, self._producer.max_message_bytes)
            except Exception as error:
                failure = error
                self._counters.handler_errors += 1
                logger.warning(
                    "%s: handler failed on %d records (attempt %d of %d): %s: %s",
                    self._service_name,
                    len(records),
                    attempt,
                    attempts,
                    type(error).__name__,
                    error,
                )
        assert failure is not None
        return failure

    @staticmethod
    def _rejection_for(
        record: Record[MessageT],
        raw_by_position: dict[RecordPosition, RawRecord],
        error: Exception,
    ) -> Rejection:
        reason = f"handler raised {type(error).__name__}: {error}"
        return Rejection(raw_by_position[position(record)], reason, type(error).__name__)

    def _dead_letter(self, rejection: Rejection) -> Outgoing:
        raw = rejection.record
        logger.warning(
            "%s: dead-lettering %s[%d]@%d: %s",
            self._service_name,
            raw.topic,
            raw.partition,
            raw.offset,
            rejection.reason,
        )
        event = dead_letter_event(
            raw,
            reason=rejection.reason,
            error_class=rejection.error_class,
            service_name=self._service_name,
            dead_lettered_at=self._clock(),
            max_message_bytes=self._producer.max_message_bytes,
        )
        return Outgoing(self._dlq_topic, raw.key, event.SerializeToString())

    def _deliver(self, outgoing: Sequence[Outgoing], batch: Sequence[RawRecord]) -> None:
        """Produce and flush; on failure rewind the source so the batch is read again."""
        try:
            for record in outgoing:
                self._producer.send_raw(record.topic, record.key, record.value, record.headers)
            self._producer.flush(self._flush_timeout_s)
        except DeliveryError:
            self._counters.delivery_failures += 1
            self._source.seek(first_offsets(batch))
            raise

    def _commit_uncommitted(self, only: set[Partition] | None = None) -> None:
        offsets = {
            partition: offset
            for partition, offset in self._uncommitted.items()
            if only is None or partition in only
        }
        if not offsets:
            return
        try:
            self._source.commit(offsets)
        except CommitFailedError as error:
            # The partitions went to another member, which re-reads from the last commit.
            self._counters.commit_failures += 1
            logger.warning("%s: commit rejected after a rebalance: %s", self._service_name, error)
        except Exception as error:
            # A transient failure (coordinator moving, timeout): keep the offsets and retry at
            # the next batch, the next rebalance or close.
            self._counters.commit_failures += 1
            logger.warning("%s: commit failed, will retry: %s", self._service_name, error)
            return
        else:
            self._counters.commits += 1
        for partition in offsets:
            del self._uncommitted[partition]

    def _on_revoked(self, partitions: set[Partition]) -> None:
        # Every batch is flushed before the next poll, so what is done only awaits its commit.
        self._commit_uncommitted(only=partitions)
        for partition in partitions:
            self._uncommitted.pop(partition, None)

    def _on_assigned(self, partitions: set[Partition]) -> None:
        logger.info("%s: assigned %s", self._service_name, sorted(partitions))

    def close(self) -> None:
        """Commit what is processed and not yet committed, then leave the group."""
        try:
            self._commit_uncommitted()
        finally:
            self._source.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
