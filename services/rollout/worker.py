"""The rollout worker's Kafka side: prompts in, rollouts out, weights swapped between batches.

``PromptHandler`` is the ``ConsumerLoop`` handler, a translation around
``hybridrl.rollout.RolloutWorker``: each prompt record becomes its group's rollout records,
keyed by group id so the N responses share a partition and labelled with the worker's id (a
header); a prompt the worker rejects is dead-lettered with the reason. ``PromptConsumer``
runs the loop in the group ``hybridrl-rollout`` (replicas share the partitions; a rebalance
moves them) and, before each batch, lets the ``PolicyUpdater`` swap in verified weights, so
no group mixes versions. Offsets are committed by the loop after the rollouts are flushed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from hybridrl.bus import (
    ConsumerLoop,
    DeliveryError,
    HandlerResult,
    OutputRecord,
    Record,
    RecordFailure,
)
from hybridrl.proto.v1 import events_pb2
from hybridrl.rollout.policy_updates import PolicyUpdater
from hybridrl.rollout.worker import RolloutWorker

logger = logging.getLogger(__name__)

INVALID_PROMPT = "InvalidPrompt"
WORKER_HEADER = "hybridrl-rollout-worker"
"""Record header naming the worker that sampled a rollout, for tracing a bad pod."""


class PromptHandler:
    """Prompt records to rollout records (and dead letters for rejected prompts)."""

    def __init__(self, worker: RolloutWorker, rollouts_topic: str, worker_id: str) -> None:
        self._worker = worker
        self._rollouts_topic = rollouts_topic
        self._headers = ((WORKER_HEADER, worker_id.encode()),)

    def __call__(self, records: Sequence[Record[events_pb2.PromptEvent]]) -> HandlerResult:
        outcomes = self._worker.rollout([record.value for record in records])
        outputs: list[OutputRecord] = []
        failures: list[RecordFailure] = []
        for record, outcome in zip(records, outcomes, strict=True):
            if outcome.rejection is not None:
                failures.append(RecordFailure(record, outcome.rejection, INVALID_PROMPT))
                continue
            outputs.extend(
                OutputRecord(self._rollouts_topic, event.group_id, event, self._headers)
                for event in outcome.rollouts
            )
        return HandlerResult(outputs, failures)


class PromptConsumer:
    """Runs the prompt loop until stopped, applying pending policy updates between batches."""

    def __init__(
        self,
        loop: ConsumerLoop[events_pb2.PromptEvent],
        updater: PolicyUpdater,
        *,
        retry_backoff_s: float = 1.0,
    ) -> None:
        self._loop = loop
        self._updater = updater
        self._retry_backoff_s = retry_backoff_s

    @property
    def loop(self) -> ConsumerLoop[events_pb2.PromptEvent]:
        return self._loop

    def run_once(self) -> None:
        """Swap in verified weights if any, then one poll-to-commit iteration."""
        self._updater.apply_pending()
        self._loop.run_once()

    def run(self, stop: threading.Event) -> None:
        """Batches until ``stop`` is set; then commits what is done and leaves the group."""
        try:
            while not stop.is_set():
                try:
                    self.run_once()
                except DeliveryError as error:
                    # The loop rewound the batch; it is read and generated again.
                    logger.error("rollouts not delivered, retrying the batch: %s", error)
                    stop.wait(self._retry_backoff_s)
        finally:
            self._loop.close()
