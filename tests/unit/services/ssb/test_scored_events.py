"""ScoredEvent -> ScoredSample: inline tokens, claim checks fetched or kept, bad events refused."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hybridrl_services.ssb.scored_events import scored_sample_from_event

from hybridrl.proto.v1 import common_pb2, events_pb2
from hybridrl.store.claim_check import ClaimCheckStore
from hybridrl.store.local_object_store import LocalObjectStore
from hybridrl.store.object_store import ObjectNotFound
from hybridrl.store.rollout_payloads import offload_if_too_large

EventFactory = Callable[..., events_pb2.ScoredEvent]


def offloaded(event: events_pb2.ScoredEvent, checks: ClaimCheckStore) -> events_pb2.ScoredEvent:
    light = events_pb2.ScoredEvent()
    light.CopyFrom(event)
    # "Fits" only without tokens, so that the tokens are moved to the claim-check store.
    light.rollout.CopyFrom(
        offload_if_too_large(event.rollout, lambda rollout: not rollout.response_token_ids, checks)
    )
    return light


def test_inline_event_becomes_a_sample_with_its_tokens_and_reward(
    make_event: EventFactory,
) -> None:
    event = make_event("geo-1", 3, 2, 4, reward=1.5)
    event.reward.format = 0.5
    sample = scored_sample_from_event(event, None)
    response = sample.response
    assert (response.sample_id, response.group_id, response.prompt_id) == (
        "geo-1/v3/2",
        "geo-1/v3",
        "geo-1",
    )
    assert (sample.sample_index, sample.group_size, response.policy_version) == (2, 4, 3)
    assert response.reward == 1.5
    assert response.payload.reward_parts.format == 0.5
    assert response.payload.prompt_token_ids.tolist() == [1, 2, 3]
    assert response.payload.response_token_ids.tolist() == [12, 22]
    assert response.payload.behaviour_logprobs.tolist() == [-0.5, -0.25]
    assert [common_pb2.ImageRef.FromString(i).uri for i in response.payload.images] == [
        "s3://images/cat.png"
    ]


def test_offloaded_tokens_are_fetched_from_the_claim_check(
    make_event: EventFactory, tmp_path: Path
) -> None:
    checks = ClaimCheckStore(LocalObjectStore(tmp_path), "claims", 0)
    event = offloaded(make_event("p", 0, 1, 2, reward=1.0), checks)
    assert event.rollout.payload_uri
    assert list(event.rollout.response_token_ids) == []
    payload = scored_sample_from_event(event, checks).response.payload
    assert payload.response_token_ids.tolist() == [11, 21]
    assert payload.behaviour_logprobs.dtype == np.float32
    assert payload.payload_uri == ""


def test_offloaded_tokens_can_be_left_for_the_learner(
    make_event: EventFactory, tmp_path: Path
) -> None:
    checks = ClaimCheckStore(LocalObjectStore(tmp_path), "claims", 0)
    event = offloaded(make_event("p", 0, 1, 2), checks)
    payload = scored_sample_from_event(event, None, fetch_offloaded=False).response.payload
    assert payload.payload_uri == event.rollout.payload_uri
    assert payload.payload_sha256 == event.rollout.payload_sha256
    assert len(payload.response_token_ids) == 0


def test_missing_claim_check_object_is_an_error_of_the_record(
    make_event: EventFactory, tmp_path: Path
) -> None:
    checks = ClaimCheckStore(LocalObjectStore(tmp_path), "claims", 0)
    event = offloaded(make_event(), checks)
    for path in (tmp_path / "claims").rglob("*"):
        if path.is_file():
            path.unlink()
    with pytest.raises(ObjectNotFound):
        scored_sample_from_event(event, checks)


def test_event_without_reward_is_refused(make_event: EventFactory) -> None:
    event = make_event()
    event.ClearField("reward")
    with pytest.raises(ValueError, match="no reward"):
        scored_sample_from_event(event, None)


def test_logprobs_that_do_not_match_the_tokens_are_refused(make_event: EventFactory) -> None:
    event = make_event()
    event.rollout.response_token_ids.append(99)
    with pytest.raises(ValueError, match="log-probs"):
        scored_sample_from_event(event, None)


def test_index_outside_the_group_is_refused(make_event: EventFactory) -> None:
    with pytest.raises(ValueError, match="outside"):
        scored_sample_from_event(make_event("p", 0, 4, 4), None)
