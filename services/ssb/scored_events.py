"""``ScoredEvent`` (hybridrl.scored) to the store's ``ScoredSample``: the consumer's translation.

A rollout whose tokens did not fit a Kafka message carries a claim check; by default its tokens
are fetched here (``rollout_tokens``), so the learner receives them inline. With
``fetch_offloaded=False`` the claim check is kept instead and passed on in ``GrpoSample`` /
``PairCandidate`` (``payload_uri``), and the learner fetches the tokens itself, which keeps
long responses out of the store's memory.

Errors: ``ValueError`` (a malformed event: no reward, log-probs that do not match the tokens,
an index outside the group) and a claim check that is gone or damaged (``ObjectNotFound``,
``ObjectCorrupt``) are the record's fault, and the consumer dead-letters it;
``ObjectStoreUnavailable`` is the store's, and the consumer retries the record later.
"""

from __future__ import annotations

import numpy as np

from hybridrl.algo.samples import ScoredResponse
from hybridrl.proto.v1 import events_pb2
from hybridrl.replay.records import RewardBreakdown, SamplePayload, ScoredSample
from hybridrl.store.claim_check import ClaimCheckStore
from hybridrl.store.rollout_payloads import rollout_tokens

_NO_TOKENS = np.zeros(0, dtype=np.uint32)
_NO_LOGPROBS = np.zeros(0, dtype=np.float32)


def scored_sample_from_event(
    event: events_pb2.ScoredEvent,
    claim_checks: ClaimCheckStore | None,
    *,
    fetch_offloaded: bool = True,
) -> ScoredSample:
    """The store's record of one scored rollout (the event is decoded and version-checked)."""
    rollout = event.rollout
    if not event.HasField("reward"):
        raise ValueError(f"scored event for {rollout.sample_id} has no reward")
    reward = event.reward
    parts = RewardBreakdown(
        total=reward.total, rule=reward.rule, model=reward.model, format=reward.format
    )
    images = tuple(image.SerializeToString() for image in rollout.images)
    if rollout.payload_uri and not fetch_offloaded:
        payload = SamplePayload(
            prompt_token_ids=_NO_TOKENS,
            response_token_ids=_NO_TOKENS,
            behaviour_logprobs=_NO_LOGPROBS,
            reward_parts=parts,
            images=images,
            payload_uri=rollout.payload_uri,
            payload_sha256=rollout.payload_sha256,
        )
    else:
        tokens = rollout_tokens(rollout, claim_checks)
        payload = SamplePayload(
            prompt_token_ids=np.array(tokens.prompt_token_ids, dtype=np.uint32),
            response_token_ids=np.array(tokens.response_token_ids, dtype=np.uint32),
            # A copy: the decoded array views the message's bytes, which would stay alive.
            behaviour_logprobs=np.array(tokens.behaviour_logprobs, dtype=np.float32),
            reward_parts=parts,
            images=images,
        )
    response = ScoredResponse(
        sample_id=rollout.sample_id,
        group_id=rollout.group_id,
        prompt_id=rollout.prompt_id,
        policy_version=rollout.policy_version,
        reward=reward.total,
        payload=payload,
    )
    return ScoredSample(
        response=response, sample_index=rollout.sample_index, group_size=rollout.group_size
    )
