"""Entry point of the reward service: build the scorer, the rollout loop and gRPC; run.

``serve`` is what ``python -m hybridrl serve reward --config FILE`` calls: it parses the
settings once, builds a ``RewardService``, starts gRPC (NOT_SERVING), the rule scorer's worker
processes and the consumer thread, reports SERVING, and on SIGTERM/SIGINT reports
NOT_SERVING, stops the consumer (its last batch flushed and committed), stops gRPC with its
grace period and stops the workers. ``build_service`` gives tests the same service without
signals, on an in-memory bus if they pass one.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from hybridrl_services.common.grpc_server import ServiceServer, run_until_signal
from hybridrl_services.reward.messages import PromptImages
from hybridrl_services.reward.reward_model_source import load_reward_model
from hybridrl_services.reward.servicer import SERVICE_NAME, RewardServicer
from hybridrl_services.reward.settings import RewardSettings
from hybridrl_services.reward.worker import RolloutScoringHandler

from hybridrl.bus import ConsumerLoop, EventProducer, KafkaRecordSource
from hybridrl.bus.records import EventSink, RecordSource
from hybridrl.proto.v1 import events_pb2, reward_pb2_grpc
from hybridrl.rewards.scoring import HybridScorer
from hybridrl.rollout.prompt_inputs import ObjectReader
from hybridrl.store.claim_check import ClaimCheckStore
from hybridrl.store.uris import open_object_store

logger = logging.getLogger(__name__)

SERVICE = "reward"
# Unused for writing here: offload_if_too_large decides by the message limit.
_CLAIM_CHECK_THRESHOLD_BYTES = 0
# Rollouts come from inside the loop and may name local files (the local run); gRPC callers
# come from outside and may only name the object store.
_ROLLOUT_IMAGE_SCHEMES = ("s3", "file")
_REQUEST_IMAGE_SCHEMES = ("s3",)


class RewardService:
    """One reward scorer: the hybrid scorer, its rollout loop and its gRPC server."""

    def __init__(
        self,
        settings: RewardSettings,
        *,
        source: RecordSource | None = None,
        producer: EventSink | None = None,
    ) -> None:
        """``source`` and ``producer`` default to Kafka clients from ``settings.kafka``; tests
        pass in-memory ones. Neither is built when ``settings.consume`` is off."""
        self._settings = settings
        model_settings = settings.reward_model
        reward_model = load_reward_model(model_settings, settings.object_store)
        if reward_model is not None and model_settings.device == "cpu":
            torch.set_num_threads(model_settings.torch_threads)
        self.scorer = HybridScorer.with_pool(
            settings.rewards,
            reward_model=reward_model,
            model_deadline_seconds=model_settings.deadline_seconds,
        )
        fetch = ObjectReader(settings.object_store)
        decode = self.scorer.has_reward_model
        servicer = RewardServicer(
            self.scorer,
            PromptImages(fetch, decode=decode, schemes=_REQUEST_IMAGE_SCHEMES),
            max_batch_items=settings.max_batch_items,
            max_text_chars=settings.max_text_chars,
        )
        self._server = ServiceServer(settings.grpc, [SERVICE_NAME], self._register(servicer))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._producer: EventSink | None = None
        self._owns_producer = False
        self.handler: RolloutScoringHandler | None = None
        self.loop: ConsumerLoop[events_pb2.RolloutEvent] | None = None
        if settings.consume:
            self._producer = producer or EventProducer(settings.kafka)
            self._owns_producer = producer is None
            self.handler = RolloutScoringHandler(
                self.scorer,
                PromptImages(fetch, decode=decode, schemes=_ROLLOUT_IMAGE_SCHEMES),
                settings.topics.scored,
                fits=self._producer.fits,
                claim_checks=self._claim_checks(),
            )
            self.loop = ConsumerLoop(
                source
                or KafkaRecordSource(settings.kafka, [settings.topics.rollouts], settings.group_id),
                self.handler,
                self._producer,
                events_pb2.RolloutEvent,
                dlq_topic=settings.topics.dlq,
                service_name=SERVICE,
                max_poll_records=settings.max_poll_records,
                poll_timeout_s=settings.poll_timeout_seconds,
            )

    @staticmethod
    def _register(servicer: RewardServicer) -> Callable[[Any], None]:
        def register(server: Any) -> None:
            reward_pb2_grpc.add_RewardServiceServicer_to_server(servicer, server)

        return register

    def _claim_checks(self) -> ClaimCheckStore | None:
        uri = self._settings.resolved_claim_check_uri
        if uri is None:
            return None
        store = open_object_store(uri, self._settings.object_store)
        return ClaimCheckStore(store, "", _CLAIM_CHECK_THRESHOLD_BYTES)

    @property
    def port(self) -> int:
        """The bound gRPC port (after ``start``)."""
        return self._server.port

    def start(self) -> int:
        """Start gRPC, the rule scorer's workers and the consumer thread, then report
        SERVING; return the gRPC port."""
        port = self._server.start()
        with _stop_signals_ignored():
            self.scorer.start()
        if self.loop is not None:
            self._thread = threading.Thread(
                target=self._consume, args=(self.loop,), name="rollout-loop", daemon=True
            )
            self._thread.start()
        self._server.set_serving(True)
        logger.info(
            "reward service serving on port %d (reward model: %s, consuming: %s)",
            port,
            self._settings.reward_model.source,
            self._settings.consume,
        )
        return port

    def _consume(self, loop: ConsumerLoop[events_pb2.RolloutEvent]) -> None:
        """Run the loop; if it dies, report NOT_SERVING so the pod gets replaced."""
        try:
            loop.run(self._stop)
        except Exception:
            logger.exception("rollout loop stopped on an error; reporting NOT_SERVING")
            self._server.set_serving(False)

    def stop(self, grace: float | None = None) -> None:
        """NOT_SERVING, finish and commit the current batch, stop gRPC, stop the scorer."""
        self._server.set_serving(False)
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            if self.loop is not None:
                self.loop.close()
        finally:
            self._server.stop(grace)
            if self._producer is not None and self._owns_producer:
                self._producer.close(self._settings.grpc.grace_seconds)
            self.scorer.close()


@contextlib.contextmanager
def _stop_signals_ignored() -> Iterator[None]:
    """Ignore SIGINT and SIGTERM while the rule scorer's worker processes start.

    The workers (and the forkserver they are forked from) inherit an ignored disposition, so
    a Ctrl-C or a SIGTERM sent to the whole process group stops the service in order instead
    of killing the workers mid-batch, which would score the items they held as failed checks.
    A stop signal that arrives during these seconds is lost; Kubernetes then kills the pod
    after its grace period. Main thread only (elsewhere the handlers cannot be changed).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def build_service(
    settings: RewardSettings,
    *,
    source: RecordSource | None = None,
    producer: EventSink | None = None,
) -> RewardService:
    """The service, built (reward model loaded) but not started."""
    return RewardService(settings, source=source, producer=producer)


def serve(config_file: Path | None = None, **overrides: Any) -> None:
    """Run the reward service until SIGTERM or SIGINT."""
    settings = RewardSettings.load(config_file, **overrides)
    service = build_service(settings)
    run_until_signal(service, "reward")
