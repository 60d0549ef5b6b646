"""From the SSB store's ``SampleResponse`` messages to the learner's batches.

The translation between ``protos/hybridrl/v1/buffer.proto`` and ``hybridrl.learner.collate``:
each ``GrpoSample`` becomes a ``ScoredResponse`` whose payload is a ``ServedTokens`` (prompt and
response tokens, the behaviour log-probs pi_old of eq. 8, the image as pixel values), each
``PreferencePair`` a ``hybridrl.algo.pairs.PreferencePair`` of two of them. Tokens that the
store left in the object store (a claim check: ``payload_uri``) are fetched and verified here;
images are decoded and laid out exactly as the rollout worker laid them out for the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray

from hybridrl.algo.pairs import PreferencePair
from hybridrl.algo.samples import ScoredResponse
from hybridrl.models.images import load_image_ref, pixel_values_from_image
from hybridrl.proto.tensor_codec import array_from_tensor
from hybridrl.proto.v1 import buffer_pb2, common_pb2, events_pb2
from hybridrl.store.claim_check import ClaimCheckStore

__all__ = ["BatchSummary", "ServedTokens", "grpo_samples", "preference_pairs"]

FetchObject = Callable[[str], bytes]
"""Reads an object-store URI (images given by reference)."""


@dataclass(frozen=True, eq=False)
class ServedTokens:
    """One served response as ``hybridrl.learner.collate.ResponseTokens``."""

    prompt_token_ids: list[int]
    response_token_ids: list[int]
    behaviour_logprobs: NDArray[np.float32]
    pixel_values: torch.Tensor | None
    reward_rule: float = 0.0
    reward_model: float = 0.0
    reward_format: float = 0.0


@dataclass(frozen=True)
class BatchSummary:
    """What the fresh rollouts behind a GRPO batch looked like (``GrpoBatch`` fields 2-5)."""

    fresh_offered: int = 0
    fresh_zero_advantage: int = 0
    reward: float = 0.0
    reward_rule: float = 0.0
    reward_model: float = 0.0
    reward_format: float = 0.0
    response_length: float = 0.0

    def merged(self, other: BatchSummary) -> BatchSummary:
        """Both summaries as one: counts added, means weighted by fresh_offered."""
        total = self.fresh_offered + other.fresh_offered
        if total == 0:
            return BatchSummary()

        def mean(name: str) -> float:
            mine, theirs = getattr(self, name), getattr(other, name)
            return float(mine * self.fresh_offered + theirs * other.fresh_offered) / total

        return BatchSummary(
            fresh_offered=total,
            fresh_zero_advantage=self.fresh_zero_advantage + other.fresh_zero_advantage,
            reward=mean("reward"),
            reward_rule=mean("reward_rule"),
            reward_model=mean("reward_model"),
            reward_format=mean("reward_format"),
            response_length=mean("response_length"),
        )

    @classmethod
    def of(cls, batch: buffer_pb2.GrpoBatch) -> BatchSummary:
        means = batch.fresh_reward_mean
        return cls(
            fresh_offered=batch.fresh_offered,
            fresh_zero_advantage=batch.fresh_zero_advantage,
            reward=means.total,
            reward_rule=means.rule,
            reward_model=means.model,
            reward_format=means.format,
            response_length=batch.fresh_response_length_mean,
        )


class ImageDecoder:
    """Pixel values of a prompt's first image at the policy's image size."""

    def __init__(self, image_size: tuple[int, int], fetch: FetchObject | None) -> None:
        self._image_size = image_size
        self._fetch = fetch

    def __call__(self, images: Sequence[common_pb2.ImageRef]) -> torch.Tensor | None:
        if not images:
            return None
        image = load_image_ref(images[0], self._read)
        return pixel_values_from_image(image, self._image_size)

    def _read(self, uri: str) -> bytes:
        if self._fetch is None:
            raise ValueError(f"image {uri!r} is in an object store, but none is configured")
        return self._fetch(uri)


def _claimed_tokens(
    uri: str, sha256: str, claim_checks: ClaimCheckStore | None
) -> events_pb2.RolloutPayload:
    if claim_checks is None:
        raise ValueError(f"tokens at {uri} were left in the object store, but none is configured")
    return events_pb2.RolloutPayload.FromString(claim_checks.fetch(uri, sha256))


def grpo_samples(
    batch: buffer_pb2.GrpoBatch,
    decode_images: Callable[[Sequence[common_pb2.ImageRef]], torch.Tensor | None],
    claim_checks: ClaimCheckStore | None = None,
) -> tuple[list[ScoredResponse[ServedTokens]], NDArray[np.float64]]:
    """The samples of a GRPO batch and their advantages (eq. 6), ``[batch]`` float64.

    Raises:
        ValueError: a sample without tokens or whose log-probs do not match its tokens.
    """
    samples: list[ScoredResponse[ServedTokens]] = []
    advantages = np.zeros(len(batch.samples), dtype=np.float64)
    for index, sample in enumerate(batch.samples):
        source: buffer_pb2.GrpoSample | events_pb2.RolloutPayload = sample
        if sample.payload_uri:
            source = _claimed_tokens(sample.payload_uri, sample.payload_sha256, claim_checks)
        logprobs = np.asarray(array_from_tensor(source.behaviour_logprobs), dtype=np.float32)
        tokens = ServedTokens(
            prompt_token_ids=list(source.prompt_token_ids),
            response_token_ids=list(source.response_token_ids),
            behaviour_logprobs=logprobs.reshape(-1),
            pixel_values=decode_images(sample.images),
            reward_rule=sample.reward_parts.rule,
            reward_model=sample.reward_parts.model,
            reward_format=sample.reward_parts.format,
        )
        if not tokens.response_token_ids or tokens.behaviour_logprobs.shape != (
            len(tokens.response_token_ids),
        ):
            raise ValueError(
                f"sample {sample.sample_id}: {tokens.behaviour_logprobs.shape} log-probs for "
                f"{len(tokens.response_token_ids)} response tokens"
            )
        samples.append(
            ScoredResponse(
                sample_id=sample.sample_id,
                group_id=sample.group_id,
                prompt_id=sample.prompt_id,
                policy_version=int(sample.policy_version),
                reward=float(sample.reward),
                payload=tokens,
            )
        )
        advantages[index] = sample.advantage
    return samples, advantages


def _candidate(
    pair: buffer_pb2.PreferencePair,
    candidate: buffer_pb2.PairCandidate,
    pixel_values: torch.Tensor | None,
    claim_checks: ClaimCheckStore | None,
) -> ScoredResponse[ServedTokens]:
    response: Sequence[int] = candidate.response_token_ids
    prompt: Sequence[int] = pair.prompt_token_ids
    if candidate.payload_uri:
        payload = _claimed_tokens(candidate.payload_uri, candidate.payload_sha256, claim_checks)
        response, prompt = payload.response_token_ids, payload.prompt_token_ids
    if not response or not prompt:
        raise ValueError(f"pair {pair.pair_id}: {candidate.sample_id} has no tokens")
    tokens = ServedTokens(
        prompt_token_ids=list(prompt),
        response_token_ids=list(response),
        # MPO needs no pi_old: eqs. 3-5 compare the policy with the frozen reference.
        behaviour_logprobs=np.zeros(len(response), dtype=np.float32),
        pixel_values=pixel_values,
    )
    return ScoredResponse(
        sample_id=candidate.sample_id,
        group_id=pair.pair_id,
        prompt_id=pair.prompt_id,
        policy_version=0,
        reward=float(candidate.reward),
        payload=tokens,
    )


def preference_pairs(
    batch: buffer_pb2.MpoPairBatch,
    decode_images: Callable[[Sequence[common_pb2.ImageRef]], torch.Tensor | None],
    claim_checks: ClaimCheckStore | None = None,
) -> list[PreferencePair[ServedTokens]]:
    """The MPO pairs of a batch, chosen and rejected sharing the prompt's image."""
    pairs = []
    for pair in batch.pairs:
        pixel_values = decode_images(pair.images)
        pairs.append(
            PreferencePair(
                chosen=_candidate(pair, pair.chosen, pixel_values, claim_checks),
                rejected=_candidate(pair, pair.rejected, pixel_values, claim_checks),
            )
        )
    return pairs
