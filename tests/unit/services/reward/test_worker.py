"""RolloutScoringHandler: rollout records to scored events, dead letters, claim checks."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from google.protobuf.message import Message
from hybridrl_services.reward.messages import PromptImages
from hybridrl_services.reward.worker import (
    SCORED_TOO_LARGE,
    UNSCORABLE_ROLLOUT,
    RolloutScoringHandler,
)

from hybridrl.bus import Record
from hybridrl.models.images import decode_image
from hybridrl.proto.v1 import common_pb2, events_pb2
from hybridrl.rewards.reward_model import RewardModelInput, RewardModelScorer
from hybridrl.rewards.rule import RuleResult, RuleStatus
from hybridrl.rewards.scoring import HybridScorer, ScoreStatus
from hybridrl.store.claim_check import ClaimCheckStore
from hybridrl.store.local_object_store import LocalObjectStore
from hybridrl.store.rollout_payloads import rollout_tokens

SCORED = "test.scored"
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
WRONG = "<think>a guess</think> \\boxed{6}"
BROKEN_IMAGE = common_pb2.ImageRef(
    inline_image=common_pb2.InlineImage(data=b"not an image", mime_type="image/png")
)


def records(*events: events_pb2.RolloutEvent) -> list[Record[events_pb2.RolloutEvent]]:
    return [
        Record("test.rollouts", 0, offset, event.group_id, event)
        for offset, event in enumerate(events)
    ]


def fits_all(message: Message, key: str) -> bool:
    return True


def handler(scorer: HybridScorer, **options: Any) -> RolloutScoringHandler:
    images = PromptImages(lambda uri: b"", decode=scorer.has_reward_model)
    options.setdefault("fits", fits_all)
    return RolloutScoringHandler(scorer, images, SCORED, clock=lambda: NOW, **options)


def test_rollouts_become_scored_events_keyed_by_group_id(
    in_thread_rules: Any, make_rollout: Any
) -> None:
    right, wrong = make_rollout(index=0), make_rollout(index=1, response=WRONG)
    other = make_rollout(prompt="p2", gold="")
    with HybridScorer(in_thread_rules) as scorer:
        score = handler(scorer)
        result = score(records(right, wrong, other))
    assert result.failures == []
    assert [(output.topic, output.key) for output in result.outputs] == [
        (SCORED, right.group_id),
        (SCORED, right.group_id),
        (SCORED, other.group_id),
    ]
    events = [output.message for output in result.outputs]
    assert all(isinstance(event, events_pb2.ScoredEvent) for event in events)
    first, second, third = events
    assert isinstance(first, events_pb2.ScoredEvent)
    assert isinstance(second, events_pb2.ScoredEvent)
    assert isinstance(third, events_pb2.ScoredEvent)
    assert first.rollout == right
    assert (first.reward.rule, first.reward.model, first.reward.format, first.reward.total) == (
        1.0,
        0.0,
        1.0,
        2.0,
    )
    assert (first.extracted_answer, first.status) == ("5", common_pb2.SCORER_STATUS_MODEL_SKIPPED)
    assert first.status_detail == "no reward model configured"
    assert first.scored_at.ToDatetime(tzinfo=UTC) == NOW
    assert (second.reward.rule, second.reward.total, second.extracted_answer) == (0.0, 1.0, "6")
    assert (third.reward.total, third.status) == (0.0, common_pb2.SCORER_STATUS_INVALID_INPUT)
    assert in_thread_rules.calls == 1  # one scorer batch per poll
    assert score.statuses == {ScoreStatus.MODEL_SKIPPED: 2, ScoreStatus.INVALID_INPUT: 1}


def test_with_a_model_images_are_decoded_and_an_undecodable_one_is_dead_lettered(
    in_thread_rules: Any,
    make_rollout: Any,
    tiny_model: RewardModelScorer,
    inline_png: common_pb2.ImageRef,
    png: bytes,
) -> None:
    good = make_rollout(images=[inline_png])
    broken = make_rollout(prompt="p2", images=[BROKEN_IMAGE])
    unspecified = make_rollout(prompt="p3", task_kind=common_pb2.TASK_KIND_UNSPECIFIED)
    batch = records(good, broken, unspecified)
    with HybridScorer(in_thread_rules, reward_model=tiny_model) as scorer:
        result = handler(scorer)(batch)
    assert [(failure.record, failure.error_class) for failure in result.failures] == [
        (batch[1], UNSCORABLE_ROLLOUT),
        (batch[2], UNSCORABLE_ROLLOUT),
    ]
    assert result.failures[0].reason.startswith("image does not decode")
    assert result.failures[1].reason.startswith("task_kind TASK_KIND_UNSPECIFIED cannot be")
    (output,) = result.outputs
    assert isinstance(output.message, events_pb2.ScoredEvent)
    expected = tiny_model.score(
        [RewardModelInput("What is 2+3?", good.response_text, decode_image(png))]
    )[0]
    assert output.message.reward.model == expected
    assert output.message.status == common_pb2.SCORER_STATUS_OK


def test_without_a_model_images_are_not_read(in_thread_rules: Any, make_rollout: Any) -> None:
    broken = make_rollout(images=[BROKEN_IMAGE])
    with HybridScorer(in_thread_rules) as scorer:
        result = handler(scorer)(records(broken))
    assert result.failures == []
    (output,) = result.outputs
    assert isinstance(output.message, events_pb2.ScoredEvent)
    assert output.message.reward.rule == 1.0


def test_scored_event_over_the_limit_moves_the_tokens_to_a_claim_check(
    in_thread_rules: Any, make_rollout: Any, tmp_path: Path
) -> None:
    rollout = make_rollout()
    claim_checks = ClaimCheckStore(LocalObjectStore(tmp_path), "claims", 0)

    def without_tokens(message: Message, key: str) -> bool:
        return isinstance(message, events_pb2.ScoredEvent) and not message.rollout.prompt_token_ids

    with HybridScorer(in_thread_rules) as scorer:
        result = handler(scorer, fits=without_tokens, claim_checks=claim_checks)(records(rollout))
    (output,) = result.outputs
    assert isinstance(output.message, events_pb2.ScoredEvent)
    light = output.message.rollout
    assert light.payload_uri.startswith(f"file://{tmp_path}/claims/")
    assert list(light.response_token_ids) == []
    tokens = rollout_tokens(light, claim_checks)
    assert (tokens.prompt_token_ids, tokens.response_token_ids) == ([1, 2, 3], [10, 20])
    assert tokens.behaviour_logprobs.tolist() == [-0.5, -0.25]


def test_scored_event_over_the_limit_without_a_store_is_dead_lettered(
    in_thread_rules: Any, make_rollout: Any
) -> None:
    batch = records(make_rollout())
    with HybridScorer(in_thread_rules) as scorer:
        result = handler(scorer, fits=lambda message, key: False)(batch)
    assert result.outputs == []
    (failure,) = result.failures
    assert (failure.record, failure.error_class) == (batch[0], SCORED_TOO_LARGE)
    assert "no object store is configured for claim checks" in failure.reason


class TimedOutRules:
    """A rule scorer whose every check ran past its deadline, as the pool reports it."""

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[RuleResult]:
        return [RuleResult(0.0, "5", RuleStatus.TIMEOUT, "deadline exceeded") for _ in pairs]


def test_a_rule_timeout_is_an_ordinary_scored_event_with_rule_zero(make_rollout: Any) -> None:
    rollout = make_rollout()
    with HybridScorer(TimedOutRules()) as scorer:
        result = handler(scorer)(records(rollout))
    assert result.failures == []
    (output,) = result.outputs
    event = output.message
    assert isinstance(event, events_pb2.ScoredEvent)
    assert (output.key, event.rollout) == (rollout.group_id, rollout)
    assert (event.reward.rule, event.reward.format, event.reward.total) == (0.0, 1.0, 1.0)
    assert event.status == common_pb2.SCORER_STATUS_VERIFY_TIMEOUT
    assert event.status_detail == (
        "answer check timed out: deadline exceeded; no reward model configured"
    )
