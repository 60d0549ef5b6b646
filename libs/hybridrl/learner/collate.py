"""From scored responses to the padded tensors the learner's steps take.

Where it sits: the learner receives GRPO samples (a response, its advantage of eq. 6, the
policy version that sampled it) and MPO preference pairs from the Selective Sample Buffer; the
functions here lay them out for ``VisionLanguageModel.sequence_logprobs``, one row per response:

    input_ids       [bos, <image> x 16, question..., "\\nAnswer: ", response..., eos, pad, pad]
    response_mask   [ 0 ,      0     ,     0      ,       0      ,    1    ...  1 ,  0 ,  0 ]
    behaviour_logprobs  the rollout's log-probs at the response positions, 0 elsewhere

Rows are right-padded; the model derives position ids from the attention mask, so padding never
shifts a position. Log-probs are aligned with ``input_ids`` as ``token_logprobs_from_logits``
returns them: entry t is log pi(input_ids[t] | input_ids[<t]), so the behaviour log-probs of
the rollout line up entry by entry with the recomputed pi_theta of eq. 8.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

from hybridrl.algo.pairs import PreferencePair
from hybridrl.algo.samples import ScoredResponse

__all__ = [
    "GRPOBatch",
    "PreferenceBatch",
    "ResponseTokens",
    "TokenBatch",
    "collate_grpo",
    "collate_pairs",
    "collate_responses",
]


class ResponseTokens(Protocol):
    """What the learner needs of one response: its prompt, its tokens, pi_old and its image.

    ``prompt_token_ids`` is the prompt laid out by ``hybridrl.models.prompting.encode_prompt``;
    ``behaviour_logprobs`` has one entry per response token (``hybridrl.engines.base``);
    ``pixel_values`` is the ``[C, H, W]`` image the prompt's placeholders stand for, or None.
    """

    @property
    def prompt_token_ids(self) -> Sequence[int] | NDArray[Any]: ...

    @property
    def response_token_ids(self) -> Sequence[int] | NDArray[Any]: ...

    @property
    def behaviour_logprobs(self) -> Sequence[float] | NDArray[Any]: ...

    @property
    def pixel_values(self) -> torch.Tensor | None: ...


@dataclass(frozen=True, eq=False)
class TokenBatch:
    """Responses laid out for ``sequence_logprobs`` (see the module docstring).

    Attributes:
        input_ids: ``[batch, seq]`` int64, prompt then response, right-padded.
        attention_mask: ``[batch, seq]`` int64, 1 on prompt and response tokens.
        response_mask: ``[batch, seq]`` bool, True on response tokens.
        pixel_values: ``[num_images, C, H, W]`` float32, the images of the rows that have one,
            in row order; None when no row has an image.
        behaviour_logprobs: ``[batch, seq]`` float32, pi_old of each response token, 0 elsewhere.
        response_lengths: ``[batch]`` int64, response tokens per row (|y_i| of eqs. 5 and 8).
        has_image: ``[batch]`` bool, True for the rows whose image is in ``pixel_values``.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    response_mask: torch.Tensor
    pixel_values: torch.Tensor | None
    behaviour_logprobs: torch.Tensor
    response_lengths: torch.Tensor
    has_image: torch.Tensor

    @property
    def size(self) -> int:
        """Number of rows."""
        return int(self.input_ids.shape[0])

    def select(self, rows: torch.Tensor) -> TokenBatch:
        """The rows ``rows`` (``[k]`` int64 indices, in the order wanted) with their images,
        trimmed to the longest of them."""
        if rows.dim() != 1 or rows.numel() == 0:
            raise ValueError("rows must be a non-empty 1-D index tensor")
        pixel_values = None
        if self.pixel_values is not None:
            image_index = torch.cumsum(self.has_image.long(), dim=0) - 1
            chosen = rows[self.has_image[rows]]
            if chosen.numel() > 0:
                pixel_values = self.pixel_values[image_index[chosen]]
        width = int(self.attention_mask[rows].sum(dim=1).max())
        return TokenBatch(
            input_ids=self.input_ids[rows, :width],
            attention_mask=self.attention_mask[rows, :width],
            response_mask=self.response_mask[rows, :width],
            pixel_values=pixel_values,
            behaviour_logprobs=self.behaviour_logprobs[rows, :width],
            response_lengths=self.response_lengths[rows],
            has_image=self.has_image[rows],
        )


@dataclass(frozen=True, eq=False)
class GRPOBatch:
    """A GRPO batch: the responses, their advantages (eq. 6) ``[batch]`` float32 and the
    policy version that sampled each ``[batch]`` int64."""

    tokens: TokenBatch
    advantages: torch.Tensor
    policy_versions: torch.Tensor

    def __post_init__(self) -> None:
        expected = (self.tokens.size,)
        if self.advantages.shape != expected or self.policy_versions.shape != expected:
            raise ValueError(
                f"advantages {tuple(self.advantages.shape)} and policy_versions "
                f"{tuple(self.policy_versions.shape)} must both be {expected}"
            )


@dataclass(frozen=True, eq=False)
class PreferenceBatch:
    """MPO pairs in one ``TokenBatch`` of ``2 * pairs`` rows: chosen responses first (rows
    ``0 .. pairs - 1``), then the rejected ones in the same order, so one forward pass scores
    both sides of eq. 3."""

    tokens: TokenBatch
    pairs: int

    def __post_init__(self) -> None:
        if self.pairs < 1 or self.tokens.size != 2 * self.pairs:
            raise ValueError(f"{self.tokens.size} rows cannot hold {self.pairs} pairs")


def _as_int_list(name: str, values: Sequence[int] | NDArray[Any]) -> list[int]:
    array = np.asarray(values)
    if array.ndim != 1 or (array.size and not np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"{name} must be a 1-D sequence of integers, got {array.dtype}")
    if array.size and int(array.min()) < 0:
        raise ValueError(f"{name} must hold non-negative token ids")
    return [int(token) for token in array.tolist()]


def collate_responses(responses: Sequence[ResponseTokens], pad_token_id: int) -> TokenBatch:
    """Lay out ``responses`` as one right-padded ``TokenBatch`` (see the module docstring).

    Raises:
        ValueError: no responses, an empty prompt or response, log-probs that do not match the
            response tokens or are not finite, images of different shapes, a negative pad id.
    """
    if not responses:
        raise ValueError("no responses to collate")
    if pad_token_id < 0:
        raise ValueError(f"pad_token_id must be >= 0, got {pad_token_id}")
    rows: list[tuple[list[int], list[int], NDArray[np.float32]]] = []
    images: list[torch.Tensor] = []
    for index, response in enumerate(responses):
        prompt = _as_int_list("prompt_token_ids", response.prompt_token_ids)
        tokens = _as_int_list("response_token_ids", response.response_token_ids)
        logprobs = np.asarray(response.behaviour_logprobs, dtype=np.float32)
        if not prompt or not tokens:
            raise ValueError(f"response {index}: prompt and response must both be non-empty")
        if logprobs.shape != (len(tokens),):
            raise ValueError(
                f"response {index}: {logprobs.shape} behaviour log-probs for {len(tokens)} tokens"
            )
        if not np.isfinite(logprobs).all():
            raise ValueError(f"response {index}: behaviour log-probs must be finite")
        rows.append((prompt, tokens, logprobs))
        if response.pixel_values is not None:
            images.append(response.pixel_values.float())
    if images and len({tuple(image.shape) for image in images}) != 1:
        raise ValueError("images of one batch must share one [C, H, W] shape")
    width = max(len(prompt) + len(tokens) for prompt, tokens, _ in rows)
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    response_mask = torch.zeros((len(rows), width), dtype=torch.bool)
    behaviour = torch.zeros((len(rows), width), dtype=torch.float32)
    for row, (prompt, tokens, logprobs) in enumerate(rows):
        start, end = len(prompt), len(prompt) + len(tokens)
        input_ids[row, :end] = torch.tensor(prompt + tokens, dtype=torch.long)
        attention_mask[row, :end] = 1
        response_mask[row, start:end] = True
        behaviour[row, start:end] = torch.from_numpy(logprobs)
    return TokenBatch(
        input_ids=input_ids,
        attention_mask=attention_mask,
        response_mask=response_mask,
        pixel_values=torch.stack(images) if images else None,
        behaviour_logprobs=behaviour,
        response_lengths=response_mask.sum(dim=1),
        has_image=torch.tensor([r.pixel_values is not None for r in responses], dtype=torch.bool),
    )


def collate_grpo(
    samples: Sequence[ScoredResponse[Any]],
    advantages: ArrayLike,
    pad_token_id: int,
) -> GRPOBatch:
    """A ``GRPOBatch`` of ``samples`` (payloads are ``ResponseTokens``) with their ``[batch]``
    ``advantages``, e.g. a ``ComposedBatch``'s samples and advantages.

    Raises:
        ValueError: as ``collate_responses``, or advantages that are not ``[batch]`` and finite.
    """
    values = np.asarray(advantages, dtype=np.float64)
    if values.shape != (len(samples),):
        raise ValueError(f"expected {len(samples)} advantages, got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("advantages must be finite")
    tokens = collate_responses([sample.payload for sample in samples], pad_token_id)
    return GRPOBatch(
        tokens=tokens,
        advantages=torch.from_numpy(values.astype(np.float32)),
        policy_versions=torch.tensor([s.policy_version for s in samples], dtype=torch.long),
    )


def collate_pairs(pairs: Sequence[PreferencePair[Any]], pad_token_id: int) -> PreferenceBatch:
    """A ``PreferenceBatch``: the chosen responses of ``pairs``, then the rejected ones.

    Raises:
        ValueError: no pairs, or as ``collate_responses``.
    """
    if not pairs:
        raise ValueError("no preference pairs to collate")
    responses = [pair.chosen.payload for pair in pairs] + [pair.rejected.payload for pair in pairs]
    return PreferenceBatch(tokens=collate_responses(responses, pad_token_id), pairs=len(pairs))
