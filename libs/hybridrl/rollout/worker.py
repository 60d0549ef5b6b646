"""The rollout worker: prompts in, N sampled responses per prompt out, tagged with the policy.

A batch of ``PromptEvent``s read from ``hybridrl.prompts`` becomes one ``RolloutEvent`` per
sampled response for ``hybridrl.rollouts``: the GRPO group of eq. (6), all from one policy
version, each with its behaviour log-probs (pi_old of eq. 8). The reward service scores them
next; the SSB assembles the groups by ``group_id``.

Redelivery reproduces a group exactly: ids are ``sample_id_for(prompt, version, i)`` and
``group_id_for(prompt, version)``, and the sampling seed is derived from the run seed, the
prompt id and the policy version (``rollout_seed``), so a prompt delivered twice under the
same weights yields the same ids and tokens, and the buffer drops the second copy. (Redelivered
in a batch of other prompts, its log-probs may differ in the last float bits: the padding
changes the prefill's arithmetic.)

A prompt that cannot be rolled out (too many images, an image that does not decode, a group
size out of range, a prompt the model cannot take) is returned as rejected with its reason;
the others in the batch go through. Events too large for a Kafka message move their tokens
to the object store (``offload_if_too_large``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from hybridrl.algo.samples import group_id_for, sample_id_for
from hybridrl.engines.base import (
    MAX_RESPONSES_PER_PROMPT,
    MAX_SEED,
    FinishReason,
    GenerationEngine,
    GenerationRequest,
    GenerationResult,
    SamplingOptions,
)
from hybridrl.proto.schema import SCHEMA_VERSION
from hybridrl.proto.tensor_codec import tensor_from_array
from hybridrl.proto.v1 import common_pb2, events_pb2
from hybridrl.rollout.prompt_inputs import PromptEncoder, PromptInputs
from hybridrl.store.claim_check import ClaimCheckStore
from hybridrl.store.rollout_payloads import offload_if_too_large

logger = logging.getLogger(__name__)

FINISH_REASONS: dict[FinishReason, common_pb2.FinishReason.ValueType] = {
    "stop": common_pb2.FINISH_REASON_STOP,
    "length": common_pb2.FINISH_REASON_LENGTH,
}

_VERSION_ATTEMPTS = 3

FitsMessage = Callable[[events_pb2.RolloutEvent, str], bool]
"""``fits(event, key)``: whether the event under its Kafka key fits one message
(``EventSink.fits``)."""


def rollout_seed(run_seed: int, prompt_id: str, policy_version: int) -> int:
    """The sampling seed of a prompt's group: a hash of the run seed and the group id."""
    group = group_id_for(prompt_id, policy_version)
    digest = hashlib.sha256(f"{run_seed}:{group}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & MAX_SEED


@dataclass(frozen=True)
class RolloutSampling:
    """How the responses to prompts from the prompts topic are sampled (N is the prompt's).

    Attributes:
        temperature: logits are divided by it; 0 is greedy (every response then equal).
        top_p: nucleus mass in (0, 1].
        max_new_tokens: the longest response, end-of-sequence token included.
        run_seed: mixed into every group's seed; change it to draw other samples.
    """

    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    run_seed: int = 0

    def __post_init__(self) -> None:
        self.options(n=1, seed=self.run_seed)  # the engine's own checks, once, up front

    def options(self, n: int, seed: int) -> SamplingOptions:
        """The engine's ``SamplingOptions`` for a group of ``n`` responses."""
        return SamplingOptions(
            n=n,
            temperature=self.temperature,
            top_p=self.top_p,
            max_new_tokens=self.max_new_tokens,
            seed=seed,
        )


@dataclass(frozen=True)
class PromptOutcome:
    """What became of one prompt: its group's events, or the reason it was rejected."""

    prompt_id: str
    rollouts: tuple[events_pb2.RolloutEvent, ...] = ()
    rejection: str | None = None

    @property
    def group_id(self) -> str:
        """The group id (the Kafka key of the rollouts); empty when rejected."""
        return self.rollouts[0].group_id if self.rollouts else ""


@dataclass(frozen=True, eq=False)
class _Prepared:
    index: int
    prompt: events_pb2.PromptEvent
    inputs: PromptInputs = field(repr=False)


class RolloutWorker:
    """Turns batches of prompt events into rollout events with one engine."""

    def __init__(
        self,
        engine: GenerationEngine,
        encoder: PromptEncoder,
        sampling: RolloutSampling,
        *,
        fits: FitsMessage,
        claim_checks: ClaimCheckStore | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """
        Args:
            engine: the policy's engine (a ``SharedEngine`` when gRPC calls share it).
            encoder: lays out prompts for the engine's policy.
            sampling: temperature, top-p, length limit and run seed.
            fits: whether an event fits one Kafka message under its key.
            claim_checks: where the tokens of events that do not fit go; without it such a
                prompt is rejected.
            clock: gives the events' ``created_at``.
        """
        self._engine = engine
        self._encoder = encoder
        self._sampling = sampling
        self._fits = fits
        self._claim_checks = claim_checks
        self._clock = clock

    def rollout(self, prompts: Sequence[events_pb2.PromptEvent]) -> list[PromptOutcome]:
        """One outcome per prompt, in order; one ``generate`` call for the whole batch."""
        outcomes: list[PromptOutcome | None] = [None] * len(prompts)
        prepared: list[_Prepared] = []
        for index, prompt in enumerate(prompts):
            try:
                prepared.append(_Prepared(index, prompt, self._prepare(prompt)))
            except ValueError as error:
                outcomes[index] = PromptOutcome(prompt.prompt_id, rejection=str(error))
        results = self._sample(prepared) if prepared else {}
        finished_at = self._clock()
        for item in prepared:
            result = results[item.index]
            prompt_id = item.prompt.prompt_id
            if isinstance(result, str):
                outcomes[item.index] = PromptOutcome(prompt_id, rejection=result)
                continue
            try:
                events = self._events(item.prompt, result, finished_at)
            except ValueError as error:
                outcomes[item.index] = PromptOutcome(prompt_id, rejection=str(error))
            else:
                outcomes[item.index] = PromptOutcome(prompt_id, tuple(events))
        return [outcome for outcome in outcomes if outcome is not None]

    def _prepare(self, prompt: events_pb2.PromptEvent) -> PromptInputs:
        if not prompt.prompt_id:
            raise ValueError("prompt_id is empty")
        if not 1 <= prompt.group_size <= MAX_RESPONSES_PER_PROMPT:
            raise ValueError(
                f"group_size must be in [1, {MAX_RESPONSES_PER_PROMPT}], got {prompt.group_size}"
            )
        return self._encoder.encode(prompt.text, prompt.images)

    def _request(self, item: _Prepared, policy_version: int) -> GenerationRequest:
        seed = rollout_seed(self._sampling.run_seed, item.prompt.prompt_id, policy_version)
        return GenerationRequest(
            request_id=str(item.index),
            prompt_token_ids=item.inputs.token_ids,
            pixel_values=item.inputs.pixel_values,
            sampling=self._sampling.options(n=item.prompt.group_size, seed=seed),
        )

    def _sample(self, items: Sequence[_Prepared]) -> dict[int, GenerationResult | str]:
        """Generate for ``items``: a result per index, or the reason the engine refused it.

        Seeds depend on the policy version, so a batch that ran on other weights than the ones
        its seeds were drawn for is sampled again.
        """
        for _ in range(_VERSION_ATTEMPTS):
            version = self._engine.policy_version
            try:
                results = self._engine.generate([self._request(item, version) for item in items])
            except ValueError as error:
                # The engines check every request before any work, so isolating is cheap.
                if len(items) == 1:
                    return {items[0].index: f"the engine refused the prompt: {error}"}
                isolated: dict[int, GenerationResult | str] = {}
                for item in items:
                    isolated.update(self._sample([item]))
                return isolated
            if all(result.policy_version == version for result in results):
                return {item.index: result for item, result in zip(items, results, strict=True)}
            logger.info("weights changed from version %d during a batch; sampling again", version)
        raise RuntimeError(f"policy weights changed during {_VERSION_ATTEMPTS} batches in a row")

    def _events(
        self,
        prompt: events_pb2.PromptEvent,
        result: GenerationResult,
        finished_at: datetime,
    ) -> list[events_pb2.RolloutEvent]:
        version = result.policy_version
        group_id = group_id_for(prompt.prompt_id, version)
        events = []
        for index, completion in enumerate(result.completions):
            sample_id = sample_id_for(prompt.prompt_id, version, index)
            event = events_pb2.RolloutEvent(
                schema_version=SCHEMA_VERSION,
                sample_id=sample_id,
                group_id=group_id,
                prompt_id=prompt.prompt_id,
                sample_index=index,
                group_size=prompt.group_size,
                policy_version=version,
                prompt_token_ids=result.prompt_token_ids,
                response_token_ids=completion.token_ids,
                behaviour_logprobs=tensor_from_array(
                    np.asarray(completion.logprobs, dtype=np.float32)
                ),
                response_text=completion.text,
                finish_reason=FINISH_REASONS[completion.finish_reason],
                prompt_text=prompt.text,
                reference_answer=prompt.reference_answer,
                images=prompt.images,
                task_kind=prompt.task_kind,
            )
            event.created_at.FromDatetime(finished_at)
            events.append(
                offload_if_too_large(
                    event,
                    lambda message: self._fits(message, group_id),
                    self._claim_checks,
                    key_hint=sample_id,
                )
            )
        return events
