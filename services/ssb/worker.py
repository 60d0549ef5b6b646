"""The SSB shard's Kafka side: scored events in, durable snapshots, offsets committed with them.

The store keeps its state in memory, so a Kafka commit must never run ahead of a snapshot: a
record whose offset is committed but whose effect lives only in memory would be lost by a
crash. ``ConsumerLoop`` commits after every batch, so this module drives the ``RecordSource``
itself (poll, decode with ``hybridrl.bus.codec``, dead-letter with
``hybridrl.bus.dead_letters``) and commits **only at snapshot time**, exactly the offsets the
snapshot reflects:

1. flush the producer, so every dead letter the state counts as done is stored;
2. take the shard's snapshot (state + offsets, consistent under its lock) and write it to the
   object store (state file first, manifest last);
3. commit those offsets for the partitions this member still owns.

A snapshot is taken every ``snapshot_interval_s`` or ``snapshot_every_records`` records (when
the state changed), on a ``Snapshot`` RPC, before partitions are revoked (rebalance or close)
and on a graceful stop. On start the newest snapshot is restored and reading goes on from the
group's committed offsets, which are the snapshot's; no seek is needed. Two cases differ, and
both stay correct: if the process died between writing a snapshot and committing it, the
records in between are read again and dropped (and counted) as duplicates by the restored
assembler; if
another member took a partition over while this one was down, it committed past the snapshot,
and reading on from its commit keeps its records from being served twice.

Caveat with kafka-python 3: it calls rebalance callbacks on its IO thread, where a blocking
``commit`` fails ("Cannot block on net.run() from the IO thread"); the snapshot at revocation
is then written but not committed, and the new owner re-reads the records since the last
commit. A graceful stop is not affected (it commits before leaving the group).

Without a snapshot location nothing is ever committed: a restart rebuilds the state from the
retained topic. The state's samples of a partition that moves to another member stay here and
are served from here; the new owner reads on from the commit made at the revocation.

Records from the object store that cannot be fetched right now (``ObjectStoreUnavailable``)
are not the record's fault: the partition is rewound to that record and retried after a pause.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime

from google.protobuf.message import DecodeError
from hybridrl_services.ssb.scored_events import scored_sample_from_event

from hybridrl.bus.codec import PoisonMessage, decode
from hybridrl.bus.dead_letters import dead_letter_event
from hybridrl.bus.records import (
    CommitFailedError,
    DeliveryError,
    EventSink,
    Partition,
    RawRecord,
    RecordSource,
)
from hybridrl.proto.v1 import events_pb2
from hybridrl.replay.shard import ReplayShard
from hybridrl.replay.snapshots import SavedSnapshot, ShardSnapshots
from hybridrl.store.claim_check import ClaimCheckStore
from hybridrl.store.object_store import ObjectStoreError, ObjectStoreUnavailable

logger = logging.getLogger(__name__)

SERVICE_NAME = "ssb"


class SnapshotsDisabledError(RuntimeError):
    """No snapshot location is configured."""


class ScoredEventConsumer:
    """Feeds one ``ReplayShard`` from ``hybridrl.scored`` and makes it durable."""

    def __init__(
        self,
        source: RecordSource,
        producer: EventSink,
        shard: ReplayShard,
        snapshots: ShardSnapshots | None,
        *,
        dlq_topic: str,
        claim_checks: ClaimCheckStore | None = None,
        fetch_offloaded: bool = True,
        last_snapshot: SavedSnapshot | None = None,
        max_poll_records: int = 500,
        poll_timeout_s: float = 0.5,
        snapshot_interval_s: float = 60.0,
        snapshot_every_records: int = 20_000,
        retry_backoff_s: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._producer = producer
        self._shard = shard
        self._snapshots = snapshots
        self._dlq_topic = dlq_topic
        self._claim_checks = claim_checks
        self._fetch_offloaded = fetch_offloaded
        self._max_poll_records = max_poll_records
        self._poll_timeout_s = poll_timeout_s
        self._snapshot_interval_s = snapshot_interval_s
        self._snapshot_every_records = snapshot_every_records
        self._retry_backoff_s = retry_backoff_s
        self._monotonic = monotonic
        self._last_snapshot = last_snapshot
        self._last_snapshot_at = monotonic()
        self._records_since_snapshot = 0
        self._requests: list[Future[SavedSnapshot]] = []
        self._requests_lock = threading.Lock()
        self._closed = False
        self.dead_lettered = 0
        source.set_rebalance_callbacks(self._on_revoked, self._on_assigned)

    @property
    def last_snapshot(self) -> SavedSnapshot | None:
        return self._last_snapshot

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set; failures of the store or the broker pause and retry."""
        while not stop.is_set():
            try:
                self.run_once()
            except (DeliveryError, ObjectStoreError) as error:
                logger.error("ssb: %s: %s; retrying", type(error).__name__, error)
                stop.wait(self._retry_backoff_s)
            except Exception:
                # The shard must keep consuming; a failure that repeats shows in the log.
                logger.exception("ssb: consumer iteration failed; retrying")
                stop.wait(self._retry_backoff_s)

    def run_once(self) -> int:
        """Serve snapshot requests, poll and apply one batch, snapshot if due; return how many
        records were applied or dead-lettered."""
        self._serve_snapshot_requests()
        raw_records = self._source.poll(self._max_poll_records, self._poll_timeout_s)
        done = self._apply(raw_records)
        self._records_since_snapshot += done
        if self._snapshot_due():
            self.snapshot_and_commit()
        self._serve_snapshot_requests()
        return done

    def _apply(self, raw_records: list[RawRecord]) -> int:
        rewind: dict[Partition, int] = {}
        unavailable: ObjectStoreUnavailable | None = None
        done = 0
        for raw in raw_records:
            partition = raw.source_partition
            if partition in rewind:
                continue
            try:
                event = decode(raw.value, events_pb2.ScoredEvent)
                sample = scored_sample_from_event(
                    event, self._claim_checks, fetch_offloaded=self._fetch_offloaded
                )
                self._shard.apply(
                    sample, raw.topic, raw.partition, raw.offset, raw.timestamp_ms / 1e3
                )
            except PoisonMessage as poison:
                self._dead_letter(raw, poison.reason, poison.error_class)
            except ObjectStoreUnavailable as error:
                logger.warning(
                    "ssb: payload of %s@%d unavailable: %s", partition, raw.offset, error
                )
                rewind[partition] = raw.offset
                unavailable = error
                continue
            except (ValueError, DecodeError, ObjectStoreError) as error:
                self._dead_letter(raw, str(error), type(error).__name__)
            done += 1
        if unavailable is not None:
            self._source.seek(rewind)
            self._records_since_snapshot += done
            raise unavailable
        return done

    def _dead_letter(self, raw: RawRecord, reason: str, error_class: str) -> None:
        logger.warning(
            "ssb: dead-lettering %s[%d]@%d: %s", raw.topic, raw.partition, raw.offset, reason
        )
        event = dead_letter_event(
            raw,
            reason=reason,
            error_class=error_class,
            service_name=SERVICE_NAME,
            dead_lettered_at=datetime.now(UTC),
            max_message_bytes=self._producer.max_message_bytes,
        )
        self._producer.send_raw(self._dlq_topic, raw.key, event.SerializeToString())
        self._shard.skip(raw.topic, raw.partition, raw.offset)
        self.dead_lettered += 1

    def _snapshot_due(self) -> bool:
        if self._snapshots is None or not self._changed_since_snapshot():
            return False
        if self._records_since_snapshot >= self._snapshot_every_records:
            return True
        return self._monotonic() - self._last_snapshot_at >= self._snapshot_interval_s

    def _changed_since_snapshot(self) -> bool:
        last = self._last_snapshot
        return last is None or last.revision != self._shard.revision

    def snapshot_and_commit(self) -> SavedSnapshot:
        """Flush dead letters, write a snapshot (unless nothing changed), commit its offsets.

        Consumer thread only: the Kafka client is not thread-safe. Other threads call
        ``request_snapshot``.
        """
        if self._snapshots is None:
            raise SnapshotsDisabledError("no snapshot location is configured")
        self._producer.flush()
        saved = self._last_snapshot
        if saved is None or saved.revision != self._shard.revision:
            saved = self._snapshots.save(self._shard.snapshot())
            self._last_snapshot = saved
        self._last_snapshot_at = self._monotonic()
        self._records_since_snapshot = 0
        self._commit(saved)
        return saved

    def _commit(self, saved: SavedSnapshot) -> None:
        owned = self._source.assignment()
        offsets = {
            Partition(topic, partition): offset
            for (topic, partition), offset in saved.offsets.items()
            if Partition(topic, partition) in owned
        }
        if not offsets:
            return
        try:
            self._source.commit(offsets)
        except CommitFailedError as error:
            logger.warning("ssb: commit rejected after a rebalance: %s", error)
        except Exception as error:
            # The snapshot holds the state; the next snapshot commits again.
            logger.warning("ssb: commit failed, next snapshot retries: %s", error)

    def request_snapshot(self, timeout_s: float | None) -> SavedSnapshot:
        """Ask the consumer thread for a snapshot and wait for it (any thread).

        Raises ``SnapshotsDisabledError``, ``TimeoutError``, or what the snapshot raised.
        """
        if self._snapshots is None:
            raise SnapshotsDisabledError("no snapshot location is configured")
        future: Future[SavedSnapshot] = Future()
        with self._requests_lock:
            if self._closed:
                raise RuntimeError("the consumer is stopped")
            self._requests.append(future)
        return future.result(timeout_s)

    def _serve_snapshot_requests(self) -> None:
        with self._requests_lock:
            requests, self._requests = self._requests, []
        if not requests:
            return
        try:
            saved = self.snapshot_and_commit()
        except Exception as error:
            for future in requests:
                future.set_exception(error)
            raise
        for future in requests:
            future.set_result(saved)

    def _on_revoked(self, partitions: set[Partition]) -> None:
        if self._snapshots is None or not partitions or self._closed:
            return
        logger.info("ssb: partitions %s revoked: snapshot and commit", sorted(partitions))
        try:
            self.snapshot_and_commit()
        except (DeliveryError, ObjectStoreError) as error:
            # The new owner re-reads from the last commit; this shard keeps its samples.
            logger.error("ssb: snapshot before revocation failed: %s", error)

    def _on_assigned(self, partitions: set[Partition]) -> None:
        logger.info("ssb: assigned %s", sorted(partitions))

    def close(self) -> None:
        """Final snapshot and commit (when snapshots are on), then leave the group."""
        with self._requests_lock:
            self._closed = True
            pending, self._requests = self._requests, []
        try:
            if self._snapshots is not None:
                saved = self.snapshot_and_commit()
                for future in pending:
                    future.set_result(saved)
        finally:
            for future in pending:
                if not future.done():
                    future.set_exception(RuntimeError("the consumer stopped"))
            self._source.close()
