"""Rollouts too large for a Kafka message travel with their tokens in the object store."""

from pathlib import Path

import numpy as np
import pytest

from hybridrl.proto.schema import SCHEMA_VERSION
from hybridrl.proto.tensor_codec import tensor_from_array
from hybridrl.proto.v1 import events_pb2
from hybridrl.store.claim_check import ClaimCheckStore
from hybridrl.store.local_object_store import LocalObjectStore
from hybridrl.store.rollout_payloads import offload_if_too_large, rollout_tokens


def rollout(tokens: int) -> events_pb2.RolloutEvent:
    return events_pb2.RolloutEvent(
        schema_version=SCHEMA_VERSION,
        sample_id="p/v0/0",
        group_id="p/v0",
        prompt_id="p",
        prompt_token_ids=[1, 4, 4, 9],
        response_token_ids=list(range(7, 7 + tokens)),
        behaviour_logprobs=tensor_from_array(-np.linspace(0.1, 2.0, tokens, dtype=np.float32)),
        response_text="x" * 10,
    )


def under(limit: int):  # type: ignore[no-untyped-def]
    return lambda event: event.ByteSize() <= limit


def test_small_rollout_is_sent_as_it_is(tmp_path: Path) -> None:
    event = rollout(10)
    claim_checks = ClaimCheckStore(LocalObjectStore(tmp_path), "claims", 0)
    assert offload_if_too_large(event, under(10_000), claim_checks) is event
    tokens = rollout_tokens(event, None)
    assert tokens.response_token_ids == list(range(7, 17))
    assert tokens.prompt_token_ids == [1, 4, 4, 9]


def test_large_rollout_carries_a_uri_and_reads_back_identical_tokens(tmp_path: Path) -> None:
    event = rollout(5_000)
    claim_checks = ClaimCheckStore(LocalObjectStore(tmp_path), "claims", 0)
    light = offload_if_too_large(event, under(2_000), claim_checks)
    assert light.payload_uri
    assert len(light.response_token_ids) == 0
    assert light.ByteSize() <= 2_000
    assert light.response_text == event.response_text
    tokens = rollout_tokens(light, claim_checks)
    assert tokens.response_token_ids == list(event.response_token_ids)
    np.testing.assert_array_equal(
        tokens.behaviour_logprobs, -np.linspace(0.1, 2.0, 5_000, dtype=np.float32)
    )


def test_large_rollout_without_a_store_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no object store"):
        offload_if_too_large(rollout(5_000), under(2_000), None)


def test_offloaded_rollout_without_a_store_cannot_be_read(tmp_path: Path) -> None:
    claim_checks = ClaimCheckStore(LocalObjectStore(tmp_path), "claims", 0)
    light = offload_if_too_large(rollout(5_000), under(2_000), claim_checks)
    with pytest.raises(ValueError, match="offloaded"):
        rollout_tokens(light, None)


def test_length_mismatch_between_tokens_and_logprobs_is_refused() -> None:
    event = rollout(4)
    event.response_token_ids.append(99)
    with pytest.raises(ValueError, match="log-probs"):
        rollout_tokens(event, None)
