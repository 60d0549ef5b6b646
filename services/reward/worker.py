"""The reward service's Kafka side: rollouts in, scored rollouts out, one scorer batch per poll.

``RolloutScoringHandler`` is the ``ConsumerLoop`` handler, a translation around
``HybridScorer``: each polled batch of ``RolloutEvent`` records is scored in one call and
becomes ``ScoredEvent`` records on ``hybridrl.scored``, keyed by the group id like the rollouts,
so the N responses of a group stay in one partition for one SSB shard. The loop (group
``hybridrl-reward``; replicas share the partitions) commits the batch's offsets only after the
scored events are flushed.

A rollout that cannot be scored at all (an unspecified task kind, an image that does not
decode) is dead-lettered with the reason. Everything else is scored: a rule check past its
deadline is an ordinary scored event with status VERIFY_TIMEOUT and r_rule = 0, a missing
gold answer one with status INVALID_INPUT and all parts 0. Scoring is deterministic, so a
batch delivered again after a crash gives the same events, which the SSB drops by sample id.
A scored event over the Kafka limit has its rollout's tokens moved to the object store
(claim check), as the rollout worker does.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from google.protobuf.message import Message
from hybridrl_services.reward.messages import PromptImages, scored_event, scoring_item_from_rollout

from hybridrl.bus import HandlerResult, OutputRecord, Record, RecordFailure
from hybridrl.proto.v1 import events_pb2
from hybridrl.rewards.scoring import HybridScorer, ScoreStatus, ScoringItem
from hybridrl.store.claim_check import ClaimCheckStore
from hybridrl.store.rollout_payloads import offload_if_too_large

logger = logging.getLogger(__name__)

UNSCORABLE_ROLLOUT = "UnscorableRollout"
SCORED_TOO_LARGE = "ScoredEventTooLarge"

Fits = Callable[[Message, str], bool]
"""Whether a message fits one record under a key (``EventSink.fits``)."""


class RolloutScoringHandler:
    """Rollout records to scored-event records (and dead letters for unscorable rollouts)."""

    def __init__(
        self,
        scorer: HybridScorer,
        images: PromptImages,
        scored_topic: str,
        *,
        fits: Fits,
        claim_checks: ClaimCheckStore | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._scorer = scorer
        self._images = images
        self._scored_topic = scored_topic
        self._fits = fits
        self._claim_checks = claim_checks
        self._clock = clock
        self.statuses: collections.Counter[ScoreStatus] = collections.Counter()

    def __call__(self, records: Sequence[Record[events_pb2.RolloutEvent]]) -> HandlerResult:
        accepted: list[Record[events_pb2.RolloutEvent]] = []
        items: list[ScoringItem] = []
        failures: list[RecordFailure] = []
        for record in records:
            try:
                items.append(scoring_item_from_rollout(record.value, self._images))
            except ValueError as error:
                failures.append(RecordFailure(record, str(error), UNSCORABLE_ROLLOUT))
                continue
            accepted.append(record)
        if not items:
            return HandlerResult((), failures)
        scored = self._scorer.score(items)
        scored_at = self._clock()
        outputs: list[OutputRecord] = []
        for record, result in zip(accepted, scored, strict=True):
            group_id = record.value.group_id
            try:
                event = self._fitting(scored_event(record.value, result, scored_at), group_id)
            except ValueError as error:
                failures.append(RecordFailure(record, str(error), SCORED_TOO_LARGE))
                continue
            outputs.append(OutputRecord(self._scored_topic, group_id, event))
            self.statuses[result.status] += 1
        logger.debug("scored %d rollouts, rejected %d", len(outputs), len(failures))
        return HandlerResult(outputs, failures)

    def _fitting(self, event: events_pb2.ScoredEvent, key: str) -> events_pb2.ScoredEvent:
        """``event``, or with its rollout's tokens in the object store if it is too large."""

        def scored_fits(rollout: events_pb2.RolloutEvent) -> bool:
            candidate = events_pb2.ScoredEvent()
            candidate.CopyFrom(event)
            candidate.rollout.CopyFrom(rollout)
            return self._fits(candidate, key)

        if self._fits(event, key):
            return event
        light = offload_if_too_large(event.rollout, scored_fits, self._claim_checks)
        event.rollout.CopyFrom(light)
        return event
