"""Entry point of the rollout service: build the engine, the loops and the gRPC server; run.

``serve`` is what ``python -m hybridrl serve rollout --config FILE`` calls: it parses the
settings once, builds a ``RolloutService``, reports SERVING once the policy is loaded and the
threads run, and on SIGTERM/SIGINT reports NOT_SERVING, stops the prompt loop (committing what
is done), stops the gRPC server with its grace period and closes the engine.
``build_service`` gives tests the same service without signals.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hybridrl_services.common.grpc_server import ServiceServer, run_until_signal
from hybridrl_services.rollout.policy_engine import build_policy_engine
from hybridrl_services.rollout.policy_watch import KafkaPolicyTail, PolicyWatcher
from hybridrl_services.rollout.servicer import SERVICE_NAME, RolloutServicer
from hybridrl_services.rollout.settings import RolloutSettings
from hybridrl_services.rollout.worker import PromptConsumer, PromptHandler

from hybridrl.bus import ConsumerLoop, EventProducer
from hybridrl.proto.v1 import events_pb2, rollout_pb2_grpc
from hybridrl.rollout.on_demand import OnDemandGenerator
from hybridrl.rollout.policy_updates import PolicyUpdater
from hybridrl.rollout.prompt_inputs import ObjectReader, PromptEncoder
from hybridrl.rollout.shared_engine import SharedEngine
from hybridrl.rollout.worker import RolloutWorker
from hybridrl.store.claim_check import ClaimCheckStore
from hybridrl.store.uris import open_object_store

logger = logging.getLogger(__name__)

SERVICE = "rollout"
# The claim-check threshold is unused here: offload_if_too_large decides by the message limit.
_CLAIM_CHECK_THRESHOLD_BYTES = 0


class RolloutService:
    """One rollout worker: prompt loop, policy watcher and gRPC server over one engine."""

    def __init__(self, settings: RolloutSettings) -> None:
        self._settings = settings
        built = build_policy_engine(settings)
        self._engine = SharedEngine(built.engine)
        self.updater = PolicyUpdater(self._engine, settings.object_store)
        if settings.model.initial_checkpoint_uri:
            version = self.updater.load_checkpoint(settings.model.initial_checkpoint_uri)
            logger.info("initial policy version %d loaded", version)
        fetch = ObjectReader(settings.object_store)
        encoder = PromptEncoder.for_model(built.tokenizer, built.config, fetch)
        generator = OnDemandGenerator(
            self._engine, encoder, max_new_tokens_cap=settings.sampling.max_new_tokens_cap
        )
        self._server = ServiceServer(settings.grpc, [SERVICE_NAME], self._register(generator))
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._producer: EventProducer | None = None
        self.consumer: PromptConsumer | None = None
        if settings.consume:
            self._producer = EventProducer(settings.kafka)
            worker = RolloutWorker(
                self._engine,
                encoder,
                settings.sampling.rollout_sampling(),
                fits=self._producer.fits,
                claim_checks=self._claim_checks(),
            )
            self.consumer = PromptConsumer(self._prompt_loop(worker, self._producer), self.updater)
        self.watcher: PolicyWatcher | None = None
        if settings.watch_policy:
            self.watcher = PolicyWatcher(
                KafkaPolicyTail(settings.kafka, settings.topics.policy),
                self.updater,
                apply_immediately=not settings.consume,
                poll_timeout_s=settings.poll_timeout_seconds,
            )

    @staticmethod
    def _register(generator: OnDemandGenerator) -> Callable[[Any], None]:
        def register(server: Any) -> None:
            rollout_pb2_grpc.add_RolloutServiceServicer_to_server(
                RolloutServicer(generator), server
            )

        return register

    def _claim_checks(self) -> ClaimCheckStore | None:
        uri = self._settings.resolved_claim_check_uri
        if uri is None:
            return None
        return ClaimCheckStore(
            open_object_store(uri, self._settings.object_store), "", _CLAIM_CHECK_THRESHOLD_BYTES
        )

    def _prompt_loop(
        self, worker: RolloutWorker, producer: EventProducer
    ) -> ConsumerLoop[events_pb2.PromptEvent]:
        settings = self._settings
        return ConsumerLoop.from_settings(
            settings.kafka,
            [settings.topics.prompts],
            settings.group_id,
            PromptHandler(worker, settings.topics.rollouts, settings.worker_id),
            producer,
            settings.topics.dlq,
            SERVICE,
            events_pb2.PromptEvent,
            max_poll_records=settings.max_batch_prompts,
            poll_timeout_s=settings.poll_timeout_seconds,
        )

    @property
    def port(self) -> int:
        """The bound gRPC port (after ``start``)."""
        return self._server.port

    def start(self) -> int:
        """Start gRPC, load the newest announced policy, start the threads, report SERVING.

        Returns the gRPC port.
        """
        port = self._server.start()
        if self.watcher is not None:
            version = self.watcher.catch_up(self._settings.policy_catch_up_seconds)
            if version is not None:
                logger.info("starting on announced policy version %d", version)
        runners: list[tuple[str, Callable[[threading.Event], None]]] = []
        if self.watcher is not None:
            runners.append(("policy-watch", self.watcher.run))
        if self.consumer is not None:
            runners.append(("prompt-loop", self.consumer.run))
        for name, run in runners:
            thread = threading.Thread(
                target=self._run_guarded, args=(name, run), name=name, daemon=True
            )
            thread.start()
            self._threads.append(thread)
        self._server.set_serving(True)
        logger.info("rollout service serving on port %d", port)
        return port

    def _run_guarded(self, name: str, run: Callable[[threading.Event], None]) -> None:
        """Run a thread's loop; if it dies, report NOT_SERVING so the pod gets replaced."""
        try:
            run(self._stop)
        except Exception:
            logger.exception("%s stopped on an error; reporting NOT_SERVING", name)
            self._server.set_serving(False)

    def stop(self, grace: float | None = None) -> None:
        """NOT_SERVING, finish and commit the current batch, stop gRPC, close the engine."""
        self._server.set_serving(False)
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self._server.stop(grace)
        if self._producer is not None:
            self._producer.close(self._settings.grpc.grace_seconds)
        self._engine.close()

    def wait_for_termination(self) -> None:
        self._server.wait_for_termination()


def build_service(settings: RolloutSettings) -> RolloutService:
    """The service, built but not started."""
    return RolloutService(settings)


def serve(config_file: Path | None = None, **overrides: Any) -> None:
    """Run the rollout service until SIGTERM or SIGINT."""
    settings = RolloutSettings.load(config_file, **overrides)
    service = build_service(settings)
    run_until_signal(service, "rollout")
