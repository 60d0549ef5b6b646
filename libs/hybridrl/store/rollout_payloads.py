"""The claim check for rollouts: token ids and log-probs that would not fit a Kafka message.

A long response's token ids and behaviour log-probs can push a ``RolloutEvent`` over Kafka's
message limit (1 MiB by default). The rollout worker then moves them into a ``RolloutPayload``
in the object store and sends the event with ``payload_uri`` and ``payload_sha256``; whoever
needs the tokens (the SSB store, the learner) reads them back with :func:`rollout_tokens`.
The reward stage needs only the text and passes the event on unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from hybridrl.proto.schema import SCHEMA_VERSION, check_schema_version
from hybridrl.proto.tensor_codec import array_from_tensor
from hybridrl.proto.v1 import events_pb2
from hybridrl.store.claim_check import ClaimCheckStore


@dataclass(frozen=True)
class RolloutTokens:
    """The token-level part of a rollout, wherever it travelled."""

    prompt_token_ids: list[int]
    response_token_ids: list[int]
    behaviour_logprobs: npt.NDArray[np.float32]


def offload_if_too_large(
    event: events_pb2.RolloutEvent,
    fits: Callable[[events_pb2.RolloutEvent], bool],
    claim_checks: ClaimCheckStore | None,
    *,
    key_hint: str = "",
) -> events_pb2.RolloutEvent:
    """``event`` itself when ``fits(event)``; otherwise a copy whose tokens are in the store.

    ValueError when the event does not fit and no claim-check store is configured, or when it
    still does not fit after offloading (a very long text or many inline images).
    """
    if fits(event):
        return event
    if claim_checks is None:
        raise ValueError(
            f"rollout {event.sample_id} of {event.ByteSize()} bytes exceeds the message limit "
            "and no object store is configured for claim checks"
        )
    payload = events_pb2.RolloutPayload(
        schema_version=SCHEMA_VERSION,
        prompt_token_ids=event.prompt_token_ids,
        response_token_ids=event.response_token_ids,
        behaviour_logprobs=event.behaviour_logprobs,
    )
    check = claim_checks.offload(payload.SerializeToString(), key_hint=key_hint or event.sample_id)
    light = events_pb2.RolloutEvent()
    light.CopyFrom(event)
    light.ClearField("prompt_token_ids")
    light.ClearField("response_token_ids")
    light.ClearField("behaviour_logprobs")
    light.payload_uri = check.uri
    light.payload_sha256 = check.sha256
    if not fits(light):
        raise ValueError(
            f"rollout {event.sample_id} exceeds the message limit even without its tokens"
        )
    return light


def rollout_tokens(
    event: events_pb2.RolloutEvent, claim_checks: ClaimCheckStore | None
) -> RolloutTokens:
    """The token ids and behaviour log-probs of ``event``, fetched from the store if offloaded.

    ValueError when the event is offloaded and no store is configured, or the lengths disagree.
    """
    if event.payload_uri:
        if claim_checks is None:
            raise ValueError(f"rollout {event.sample_id} is offloaded but no store is configured")
        payload = events_pb2.RolloutPayload.FromString(
            claim_checks.fetch(event.payload_uri, event.payload_sha256)
        )
        check_schema_version(payload)
        prompt_ids = list(payload.prompt_token_ids)
        response_ids = list(payload.response_token_ids)
        logprobs_tensor = payload.behaviour_logprobs
    else:
        prompt_ids = list(event.prompt_token_ids)
        response_ids = list(event.response_token_ids)
        logprobs_tensor = event.behaviour_logprobs
    logprobs = np.asarray(array_from_tensor(logprobs_tensor), dtype=np.float32)
    if logprobs.shape != (len(response_ids),):
        raise ValueError(
            f"rollout {event.sample_id}: {logprobs.shape} log-probs for "
            f"{len(response_ids)} response tokens"
        )
    return RolloutTokens(prompt_ids, response_ids, logprobs)
