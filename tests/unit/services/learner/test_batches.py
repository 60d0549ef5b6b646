"""SampleResponse messages to learner batches: tokens, pi_old, images laid out as the rollout
worker laid them out, claim-checked tokens fetched, and the fresh-rollout summaries."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hybridrl_services.learner.batches import (
    BatchSummary,
    ImageDecoder,
    grpo_samples,
    preference_pairs,
)

from hybridrl.learner.collate import collate_grpo, collate_pairs
from hybridrl.models.images import encode_png, inline_image_ref
from hybridrl.proto.schema import SCHEMA_VERSION
from hybridrl.proto.tensor_codec import tensor_from_array
from hybridrl.proto.v1 import buffer_pb2, common_pb2, events_pb2
from hybridrl.store.claim_check import ClaimCheckStore
from hybridrl.store.local_object_store import LocalObjectStore
from hybridrl.tasks.visual_reasoning import generate_prompts


def _sample(
    sample_id: str, advantage: float, response: list[int], image: common_pb2.ImageRef
) -> buffer_pb2.GrpoSample:
    logprobs = np.linspace(-1.0, -0.1, len(response)).astype(np.float32)
    return buffer_pb2.GrpoSample(
        sample_id=sample_id,
        group_id="p/v3",
        prompt_id="p",
        policy_version=3,
        prompt_token_ids=[1, 5, 6],
        response_token_ids=response,
        behaviour_logprobs=tensor_from_array(logprobs),
        advantage=advantage,
        reward=1.5,
        reward_parts=common_pb2.RewardParts(rule=1.0, model=0.0, format=0.5, total=1.5),
        images=[image],
    )


@pytest.fixture
def prompt_image() -> tuple[common_pb2.ImageRef, torch.Tensor]:
    prompt = generate_prompts(1, seed=3, kinds=("colour",))[0]
    return inline_image_ref(encode_png(prompt.image)), torch.from_numpy(prompt.pixel_values())


def test_grpo_samples_keep_tokens_logprobs_advantages_and_the_tasks_pixels(
    prompt_image: tuple[common_pb2.ImageRef, torch.Tensor],
) -> None:
    ref, pixels = prompt_image
    batch = buffer_pb2.GrpoBatch(
        samples=[_sample("p/v3/0", 0.75, [7, 8, 2], ref), _sample("p/v3/1", -0.75, [9, 2], ref)]
    )
    samples, advantages = grpo_samples(batch, ImageDecoder((32, 32), None))
    assert advantages.tolist() == [0.75, -0.75]
    first = samples[0]
    assert (first.sample_id, first.policy_version, first.reward) == ("p/v3/0", 3, 1.5)
    assert first.payload.prompt_token_ids == [1, 5, 6]
    assert first.payload.response_token_ids == [7, 8, 2]
    np.testing.assert_allclose(first.payload.behaviour_logprobs, [-1.0, -0.55, -0.1], rtol=1e-6)
    assert (first.payload.reward_rule, first.payload.reward_format) == (1.0, 0.5)
    # The PNG round trip gives back what the task's own normalisation gives.
    assert first.payload.pixel_values is not None
    torch.testing.assert_close(first.payload.pixel_values, pixels, atol=1e-6, rtol=0)
    collated = collate_grpo(samples, advantages, pad_token_id=0)
    assert collated.tokens.response_lengths.tolist() == [3, 2]
    assert collated.policy_versions.tolist() == [3, 3]


def test_claim_checked_tokens_are_fetched_and_verified(
    tmp_path: object, prompt_image: tuple[common_pb2.ImageRef, torch.Tensor]
) -> None:
    ref, _ = prompt_image
    claim_checks = ClaimCheckStore(LocalObjectStore(tmp_path), "", 0)  # type: ignore[arg-type]
    payload = events_pb2.RolloutPayload(
        schema_version=SCHEMA_VERSION,
        prompt_token_ids=[1, 4],
        response_token_ids=[5, 2],
        behaviour_logprobs=tensor_from_array(np.array([-0.5, -0.25], dtype=np.float32)),
    )
    check = claim_checks.offload(payload.SerializeToString())
    sample = buffer_pb2.GrpoSample(
        sample_id="q/v0/0",
        group_id="q/v0",
        prompt_id="q",
        advantage=1.0,
        images=[ref],
        payload_uri=check.uri,
        payload_sha256=check.sha256,
    )
    samples, _ = grpo_samples(
        buffer_pb2.GrpoBatch(samples=[sample]), ImageDecoder((32, 32), None), claim_checks
    )
    assert samples[0].payload.prompt_token_ids == [1, 4]
    assert samples[0].payload.behaviour_logprobs.tolist() == [-0.5, -0.25]
    with pytest.raises(ValueError, match="none is configured"):
        grpo_samples(buffer_pb2.GrpoBatch(samples=[sample]), ImageDecoder((32, 32), None))


def test_a_sample_whose_logprobs_do_not_match_its_tokens_is_refused(
    prompt_image: tuple[common_pb2.ImageRef, torch.Tensor],
) -> None:
    ref, _ = prompt_image
    sample = _sample("p/v3/0", 1.0, [7, 8, 2], ref)
    sample.behaviour_logprobs.CopyFrom(tensor_from_array(np.zeros(2, dtype=np.float32)))
    with pytest.raises(ValueError, match="2,\\) log-probs for 3 response tokens"):
        grpo_samples(buffer_pb2.GrpoBatch(samples=[sample]), ImageDecoder((32, 32), None))


def test_pairs_share_the_prompt_and_its_image(
    prompt_image: tuple[common_pb2.ImageRef, torch.Tensor],
) -> None:
    ref, pixels = prompt_image
    batch = buffer_pb2.MpoPairBatch(
        pairs=[
            buffer_pb2.PreferencePair(
                pair_id="pair-1",
                prompt_id="p",
                prompt_token_ids=[1, 5],
                images=[ref],
                chosen=buffer_pb2.PairCandidate(
                    sample_id="p/v0/0", response_token_ids=[7, 2], reward=2.0
                ),
                rejected=buffer_pb2.PairCandidate(
                    sample_id="p/v0/1", response_token_ids=[8, 9, 2], reward=1.0
                ),
            )
        ]
    )
    pairs = preference_pairs(batch, ImageDecoder((32, 32), None))
    assert len(pairs) == 1
    pair = pairs[0]
    assert (pair.chosen.reward, pair.rejected.reward) == (2.0, 1.0)
    assert pair.chosen.payload.prompt_token_ids == pair.rejected.payload.prompt_token_ids == [1, 5]
    assert pair.rejected.payload.behaviour_logprobs.tolist() == [0.0, 0.0, 0.0]
    assert pair.chosen.payload.pixel_values is not None
    torch.testing.assert_close(pair.chosen.payload.pixel_values, pixels, atol=1e-6, rtol=0)
    collated = collate_pairs(pairs, pad_token_id=0)
    assert collated.tokens.response_lengths.tolist() == [2, 3]


def test_summaries_merge_by_fresh_count() -> None:
    message = buffer_pb2.GrpoBatch(
        fresh_offered=8,
        fresh_zero_advantage=8,
        fresh_reward_mean=common_pb2.RewardParts(rule=0.0, format=1.0, total=1.0),
        fresh_response_length_mean=16.0,
    )
    empty_poll = BatchSummary.of(message)
    served = BatchSummary(
        fresh_offered=24,
        fresh_zero_advantage=8,
        reward=1.5,
        reward_rule=0.5,
        reward_format=1.0,
        response_length=20.0,
    )
    merged = empty_poll.merged(served)
    assert (merged.fresh_offered, merged.fresh_zero_advantage) == (32, 16)
    # (8 * 1.0 + 24 * 1.5) / 32 = 1.375; rule (0 + 12) / 32 = 0.375; length (128 + 480) / 32 = 19
    assert (merged.reward, merged.reward_rule, merged.response_length) == (1.375, 0.375, 19.0)
    assert BatchSummary().merged(BatchSummary()) == BatchSummary()
