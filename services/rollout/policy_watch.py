"""Watches the compacted policy topic and hands new versions to the ``PolicyUpdater``.

Every rollout worker reads every policy event, so the watcher joins no consumer group: it
assigns itself the topic's partitions and starts at the newest event of each, so a new
worker starts on the newest policy at once. Reading and verifying the checkpoint happens on
the watcher's thread; the generation loop applies it between batches (or the watcher does,
when the worker serves gRPC only). Events that do not decode are logged and skipped: a
policy event is not a prompt, and no retry fixes it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol

from kafka import KafkaConsumer, TopicPartition  # type: ignore[import-untyped]

from hybridrl.bus import PoisonMessage, RawRecord, decode
from hybridrl.config.kafka import KafkaSettings
from hybridrl.proto.v1 import events_pb2
from hybridrl.rollout.policy_updates import PolicyUpdater

logger = logging.getLogger(__name__)


class PolicyTail(Protocol):
    """Records of the policy topic from the newest one on, outside any consumer group."""

    def poll(self, timeout_s: float) -> Sequence[RawRecord]: ...

    def caught_up(self) -> bool:
        """Whether every record that existed when reading began has been polled."""
        ...

    def close(self) -> None: ...


class KafkaPolicyTail:
    """``PolicyTail`` on Kafka: assign every partition, seek to its last record, then follow."""

    def __init__(self, settings: KafkaSettings, topic: str) -> None:
        self._topic = topic
        self._consumer: Any = KafkaConsumer(
            **settings.consumer_kwargs(), group_id=None, enable_auto_commit=False
        )
        self._assigned = False
        self._topic_missing = False
        self._ends: dict[Any, int] = {}

    def _assign(self) -> bool:
        partition_ids = self._consumer.partitions_for_topic(self._topic)
        if not partition_ids:
            self._topic_missing = True
            return False
        partitions = [TopicPartition(self._topic, index) for index in sorted(partition_ids)]
        self._consumer.assign(partitions)
        beginnings = self._consumer.beginning_offsets(partitions)
        self._ends = dict(self._consumer.end_offsets(partitions))
        for partition, end in self._ends.items():
            self._consumer.seek(partition, max(end - 1, beginnings[partition]))
        self._assigned = True
        return True

    def caught_up(self) -> bool:
        if not self._assigned:
            return self._topic_missing  # no topic yet: no policy to catch up with
        return all(self._consumer.position(tp) >= end for tp, end in self._ends.items())

    def poll(self, timeout_s: float) -> list[RawRecord]:
        if not self._assigned and not self._assign():
            # The topic does not exist yet (the chart's init job creates it); look again later.
            time.sleep(timeout_s)
            return []
        batches = self._consumer.poll(timeout_ms=int(timeout_s * 1000))
        return [
            RawRecord(
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
                key=message.key,
                value=message.value,
            )
            for messages in batches.values()
            for message in messages
        ]

    def close(self) -> None:
        self._consumer.close(autocommit=False)


class PolicyWatcher:
    """Offers the newest policy event of each poll to the updater."""

    def __init__(
        self,
        tail: PolicyTail,
        updater: PolicyUpdater,
        *,
        apply_immediately: bool,
        poll_timeout_s: float = 1.0,
    ) -> None:
        """``apply_immediately``: load verified weights at once (no prompt loop runs)."""
        self._tail = tail
        self._updater = updater
        self._apply_immediately = apply_immediately
        self._poll_timeout_s = poll_timeout_s
        self.skipped = 0

    def watch_once(self) -> int | None:
        """One poll; the version offered (and verified), if any."""
        newest: events_pb2.PolicyVersionEvent | None = None
        for record in self._tail.poll(self._poll_timeout_s):
            try:
                event = decode(record.value, events_pb2.PolicyVersionEvent)
            except PoisonMessage as error:
                self.skipped += 1
                logger.warning("skipping policy record at offset %d: %s", record.offset, error)
                continue
            if newest is None or event.policy_version > newest.policy_version:
                newest = event
        if newest is None or not self._updater.offer(newest):
            return None
        if self._apply_immediately:
            self._updater.apply_pending()
        return int(newest.policy_version)

    def catch_up(self, timeout_s: float) -> int | None:
        """Read the newest policy already announced and load it; the version loaded, if any.

        A worker calls this before it reports SERVING, so it starts on the newest policy.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            self.watch_once()
            if self._tail.caught_up():
                break
            if time.monotonic() > deadline:
                logger.warning("policy topic not read to its end within %.0f s", timeout_s)
                break
        return self._updater.apply_pending()

    def run(self, stop: threading.Event) -> None:
        """Watch until ``stop`` is set, then close the tail."""
        try:
            while not stop.is_set():
                try:
                    self.watch_once()
                except Exception:  # a broker hiccup must not end hot reload for good
                    logger.exception("policy watch failed; retrying")
                    stop.wait(self._poll_timeout_s)
        finally:
            self._tail.close()
