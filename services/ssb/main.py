"""Entry point of the SSB store service: restore the shard, start the consumer and gRPC; run.

``serve`` is what ``python -m hybridrl serve ssb --config FILE`` calls: it parses the settings
once, builds an ``SSBService`` (restoring the newest snapshot of its shard), starts gRPC and
the consumer thread, reports SERVING, and on SIGTERM/SIGINT reports NOT_SERVING, stops gRPC
with its grace period, then stops the consumer (final snapshot, offsets committed) and returns.
The consumer stops last, unlike in the rollout service, so that the final snapshot includes the
batches that ``Sample`` calls in flight handed out during the grace period.
``build_service`` gives tests the same service without signals.

Each ``Sample`` call may hold a gRPC worker thread while it waits for samples; give
``grpc.max_workers`` at least the number of learner ranks plus a few for ``Stats``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hybridrl_services.common.grpc_server import ServiceServer, run_until_signal
from hybridrl_services.ssb.servicer import SERVICE_NAME, BufferServicer
from hybridrl_services.ssb.settings import SSBSettings
from hybridrl_services.ssb.worker import ScoredEventConsumer

from hybridrl.bus.kafka_source import KafkaRecordSource
from hybridrl.bus.producer import EventProducer
from hybridrl.bus.records import EventSink, RecordSource
from hybridrl.proto.v1 import buffer_pb2_grpc
from hybridrl.replay.shard import ReplayShard
from hybridrl.replay.snapshots import SavedSnapshot, ShardSnapshots
from hybridrl.store.claim_check import ClaimCheckStore
from hybridrl.store.uris import open_object_store

logger = logging.getLogger(__name__)

# Unused for reading: a claim check is fetched whatever its size.
_CLAIM_CHECK_THRESHOLD_BYTES = 0


class SSBService:
    """One SSB shard: the restored state, its consumer thread and its gRPC server."""

    def __init__(
        self,
        settings: SSBSettings,
        *,
        source: RecordSource | None = None,
        producer: EventSink | None = None,
    ) -> None:
        """``source`` and ``producer`` default to Kafka clients from ``settings.kafka``; tests
        pass in-memory ones."""
        self._settings = settings
        self.snapshots = self._open_snapshots()
        shard, last = self._restore()
        self.shard = shard
        self._producer = producer or EventProducer(settings.kafka)
        self._owns_producer = producer is None
        self.consumer = ScoredEventConsumer(
            source
            or KafkaRecordSource(settings.kafka, [settings.topics.scored], settings.group_id),
            self._producer,
            shard,
            self.snapshots,
            dlq_topic=settings.topics.dlq,
            claim_checks=self._claim_checks(),
            fetch_offloaded=settings.fetch_offloaded_payloads,
            last_snapshot=last,
            max_poll_records=settings.max_poll_records,
            poll_timeout_s=settings.poll_timeout_seconds,
            snapshot_interval_s=settings.snapshots.interval_seconds,
            snapshot_every_records=settings.snapshots.every_records,
            retry_backoff_s=settings.retry_backoff_seconds,
        )
        servicer = BufferServicer(
            shard,
            self.consumer.request_snapshot if self.snapshots is not None else None,
            max_batch_size=settings.max_batch_size,
            max_wait_s=settings.max_sample_wait_seconds,
        )
        self._server = ServiceServer(settings.grpc, [SERVICE_NAME], self._register(servicer))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _open_snapshots(self) -> ShardSnapshots | None:
        uri = self._settings.resolved_snapshot_uri
        if uri is None:
            logger.warning("no snapshot location: the state is not durable")
            return None
        store = open_object_store(uri, self._settings.object_store)
        return ShardSnapshots.for_shard(
            store, self._settings.shard, keep_last=self._settings.snapshots.keep_last
        )

    def _restore(self) -> tuple[ReplayShard, SavedSnapshot | None]:
        shard_settings = self._settings.shard_settings()
        restored = self.snapshots.restore_latest(shard_settings) if self.snapshots else None
        if restored is None:
            logger.info("shard %s starts empty", self._settings.shard)
            return ReplayShard(shard_settings), None
        logger.info(
            "shard %s restored from %s; offsets %s",
            self._settings.shard,
            restored.snapshot.uri,
            restored.offsets,
        )
        return restored.shard, restored.snapshot

    def _claim_checks(self) -> ClaimCheckStore | None:
        uri = self._settings.resolved_claim_check_uri
        if uri is None:
            return None
        store = open_object_store(uri, self._settings.object_store)
        return ClaimCheckStore(store, "", _CLAIM_CHECK_THRESHOLD_BYTES)

    @staticmethod
    def _register(servicer: BufferServicer) -> Callable[[Any], None]:
        def register(server: Any) -> None:
            buffer_pb2_grpc.add_BufferServiceServicer_to_server(servicer, server)

        return register

    @property
    def port(self) -> int:
        """The bound gRPC port (after ``start``)."""
        return self._server.port

    def start(self) -> int:
        """Start gRPC and the consumer thread, then report SERVING; return the gRPC port."""
        port = self._server.start()
        self._thread = threading.Thread(
            target=self.consumer.run, args=(self._stop,), name="ssb-consumer", daemon=True
        )
        self._thread.start()
        self._server.set_serving(True)
        logger.info("ssb shard %s serving on port %d", self._settings.shard, port)
        return port

    def stop(self, grace: float | None = None) -> None:
        """NOT_SERVING, stop gRPC (calls in flight finish), then the consumer: its final
        snapshot comes last, so it includes every batch served, and its offsets are committed.
        """
        self._server.stop(grace)
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self.consumer.close()
        finally:
            if self._owns_producer:
                self._producer.close(self._settings.grpc.grace_seconds)


def build_service(
    settings: SSBSettings,
    *,
    source: RecordSource | None = None,
    producer: EventSink | None = None,
) -> SSBService:
    """The service, built (and restored from its newest snapshot) but not started."""
    return SSBService(settings, source=source, producer=producer)


def serve(config_file: Path | None = None, **overrides: Any) -> None:
    """Run the SSB store service until SIGTERM or SIGINT."""
    settings = SSBSettings.load(config_file, **overrides)
    service = build_service(settings)
    run_until_signal(service, "ssb")
