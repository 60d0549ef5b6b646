"""Sending the loop's events to Kafka: acks from all replicas, no duplicates from retries.

Every service that emits events (the rollout worker's rollouts, the reward service's scored
events, the learner's policy versions, any consumer's dead letters) sends them through one
``EventProducer``. kafka-python retries retriable errors with back-off until
``delivery_timeout_ms``; on top of that this class re-sends, on a fresh client, records that
failed because the client lost its producer state (a broker that came back empty fences the
idempotent producer for good), so a broker outage costs time but no records. Records larger
than ``max_message_bytes`` are refused before they leave: the caller stores the payload in the
object store and sends its URI (claim check).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import Message
from kafka import KafkaProducer  # type: ignore[import-untyped]
from kafka.errors import KafkaError, KafkaTimeoutError  # type: ignore[import-untyped]

from hybridrl.bus.codec import encode
from hybridrl.bus.records import Delivery, DeliveryError, Headers, check_record_size, record_size
from hybridrl.config.kafka import KafkaSettings

logger = logging.getLogger(__name__)


@dataclass
class _PendingRecord:
    """A record not yet acknowledged, kept so that it can be sent again on a new client."""

    topic: str
    key: bytes | None
    value: bytes
    headers: Headers
    result: Future[Delivery] = field(default_factory=Future)
    resends: int = 0


class EventProducer:
    """An idempotent Kafka producer (``acks=all``) for protobuf events, keyed by group id.

    ``send`` returns at once with a future; ``flush`` blocks until everything sent is stored
    and raises DeliveryError for records that failed, which the caller must not treat as done
    (the consumer loop then does not commit its input). Thread-safe.
    """

    def __init__(self, settings: KafkaSettings, *, max_resends: int = 3) -> None:
        if max_resends < 0:
            raise ValueError(f"max_resends must be >= 0, got {max_resends}")
        self._settings = settings
        self._max_resends = max_resends
        self._lock = threading.Condition()
        self._outstanding = 0
        self._to_resend: list[_PendingRecord] = []
        self._failures: list[BaseException] = []
        self._closed = False
        self._client = self._new_client()

    def _new_client(self) -> Any:
        # retries stays at kafka-python's default (unbounded): delivery_timeout_ms bounds the
        # time a record is retried, which is the knob Kafka recommends turning.
        return KafkaProducer(
            **self._settings.producer_kwargs(), acks="all", enable_idempotence=True
        )

    @property
    def max_message_bytes(self) -> int:
        return self._settings.max_message_bytes

    def fits(self, message: Message, key: str = "") -> bool:
        """Whether ``message`` under ``key`` is within ``max_message_bytes`` with framing."""
        size = record_size(key.encode(), b"", ()) + message.ByteSize()
        return size <= self.max_message_bytes

    def send(
        self, topic: str, key: str, message: Message, headers: Headers = ()
    ) -> Future[Delivery]:
        """Encode and send one event under ``key`` (the group id).

        Raises ValueError if the event lacks its schema version or identity fields, and
        MessageTooLargeError if it does not fit in ``max_message_bytes``.
        """
        value = encode(message)
        what = message.DESCRIPTOR.name
        check_record_size(topic, key.encode(), value, headers, self.max_message_bytes, what)
        return self._enqueue(topic, key.encode(), value, headers)

    def send_raw(
        self, topic: str, key: bytes | None, value: bytes, headers: Headers = ()
    ) -> Future[Delivery]:
        """Send bytes as they are: dead letters and replays of dead-lettered records."""
        check_record_size(topic, key, value, headers, self.max_message_bytes, "record")
        return self._enqueue(topic, key, value, headers)

    def _enqueue(
        self, topic: str, key: bytes | None, value: bytes, headers: Headers
    ) -> Future[Delivery]:
        pending = _PendingRecord(topic, key, value, headers)
        with self._lock:
            self._outstanding += 1
        if self._to_resend:  # read without the lock: a miss is caught by the next send or flush
            self._resend_failed()
        self._submit(pending)
        return pending.result

    def _submit(self, pending: _PendingRecord) -> None:
        try:
            future = self._client.send(
                pending.topic, value=pending.value, key=pending.key, headers=list(pending.headers)
            )
        except KafkaError as error:
            # A client in a fatal state refuses new records at once; they take the resend path.
            self._on_error(pending, error)
            return
        future.add_callback(self._on_success, pending)
        future.add_errback(self._on_error, pending)

    def _on_success(self, pending: _PendingRecord, metadata: Any) -> None:
        pending.result.set_result(Delivery(metadata.topic, metadata.partition, metadata.offset))
        with self._lock:
            self._outstanding -= 1
            self._lock.notify_all()

    def _on_error(self, pending: _PendingRecord, error: BaseException) -> None:
        # kafka-python has already retried retriable errors until delivery_timeout_ms; what
        # arrives here is a timeout (the broker stayed away too long: give up), a lost producer
        # state (broker restarted empty: a new client fixes it) or a permanent error (which a
        # few resends confirm cheaply).
        with self._lock:
            if not isinstance(error, KafkaTimeoutError) and pending.resends < self._max_resends:
                logger.warning(
                    "record for %s failed (%s: %s); it will be sent again on a new client",
                    pending.topic,
                    type(error).__name__,
                    error,
                )
                self._to_resend.append(pending)
            else:
                self._outstanding -= 1
                self._failures.append(error)
                pending.result.set_exception(error)
            self._lock.notify_all()

    def _resend_failed(self) -> None:
        """Replace the client and send again the records that failed on the old one."""
        with self._lock:
            batch, self._to_resend = self._to_resend, []
        if not batch:
            return
        old_client, self._client = self._client, self._new_client()
        old_client.close(timeout=0)
        for pending in batch:
            pending.resends += 1
            self._submit(pending)

    def flush(self, timeout_s: float | None = None) -> None:
        """Block until every record sent so far is stored or has failed for good.

        Raises DeliveryError naming the first failure if any record failed since the last
        flush, or if records are still unacknowledged after ``timeout_s`` (default:
        ``delivery_timeout_ms``).
        """
        limit = self._settings.delivery_timeout_ms / 1000 if timeout_s is None else timeout_s
        deadline = time.monotonic() + limit
        backoff = self._settings.retry_backoff_ms / 1000
        while True:
            self._resend_failed()
            # The wait below decides; a flush timeout only means records are still pending.
            with contextlib.suppress(KafkaTimeoutError):
                self._client.flush(timeout=max(deadline - time.monotonic(), 0.0))
            with self._lock:
                self._lock.wait_for(
                    lambda: self._outstanding == len(self._to_resend),
                    timeout=max(deadline - time.monotonic(), 0.0),
                )
                if self._outstanding == 0:
                    break
                if time.monotonic() >= deadline:
                    raise DeliveryError(
                        f"{self._outstanding} records not acknowledged after {limit:.1f} s"
                    )
            time.sleep(min(backoff, max(deadline - time.monotonic(), 0.0)))
            backoff = min(backoff * 2, self._settings.reconnect_backoff_max_ms / 1000)
        with self._lock:
            failures, self._failures = self._failures, []
        if failures:
            first = failures[0]
            raise DeliveryError(
                f"{len(failures)} records failed to deliver; first: {type(first).__name__}: {first}"
            ) from first

    def close(self, timeout_s: float | None = None) -> None:
        """Flush within ``timeout_s`` (logging what could not be delivered) and disconnect.

        Closing again does nothing."""
        if self._closed:
            return
        self._closed = True
        try:
            self.flush(timeout_s)
        except DeliveryError as error:
            logger.error("closing the producer with undelivered records: %s", error)
            timeout_s = 0.0  # what could not be flushed is dropped rather than waited for
        finally:
            self._client.close(timeout=timeout_s)
