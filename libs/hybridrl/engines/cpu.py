"""A ``GenerationEngine`` on plain ``transformers``: the rollout engine of tests and local runs.

It samples the N responses per prompt of GRPO from a ``VisionLanguageModel`` on CPU (any torch
device works), batched: each prompt is run once through the vision encoder and the language
model (prefill, left-padded, image features at the placeholders), its key/value cache is copied
to its N responses, and all responses then advance one token per step from the cache. A
response leaves the batch when it samples the eos token or reaches ``max_new_tokens``.

Behaviour log-probs are those of ``hybridrl.engines.base`` and equal what
``VisionLanguageModel.sequence_logprobs`` recomputes for the same tokens. A response token that
happens to be the image placeholder is embedded as a plain token, as vLLM does; the learner must
then place image features at the prompt's placeholders only.

``load_weights`` swaps a policy update in between two ``generate`` calls (a lock orders them),
so every result carries the one version that produced all of its tokens.
"""

import secrets
import threading
from collections.abc import Mapping, Sequence
from typing import get_args

import torch
from transformers import DynamicCache, PreTrainedTokenizerBase

from hybridrl.engines.base import (
    MAX_SEED,
    Completion,
    FinishReason,
    GenerationRequest,
    GenerationResult,
)
from hybridrl.engines.sampling import response_seeds, sample_next_tokens
from hybridrl.models.freezing import load_trainable_state_dict, trainable_state_dict
from hybridrl.models.prompting import decode_response
from hybridrl.models.vlm import VisionLanguageModel, position_ids_from_attention_mask
from hybridrl.models.vlm_config import FreezeMode

# (request index, response index, seed of the response's generator)
_Row = tuple[int, int, int]
# (token ids, behaviour log-probs, finish reason) of one response
_Sampled = tuple[list[int], list[float], FinishReason]


class TransformersEngine:
    """Batched sampling from a ``VisionLanguageModel`` with ``transformers``' KV cache."""

    def __init__(
        self,
        model: VisionLanguageModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        max_batch_size: int = 64,
        device: str | torch.device = "cpu",
        weight_update_mode: FreezeMode = "adapter",
        policy_version: int = 0,
        seed: int | None = None,
    ) -> None:
        """Wrap ``model`` (moved to ``device``, put in eval mode).

        Args:
            model: the policy.
            tokenizer: the one the prompts were encoded with; supplies eos, pad and the text.
            max_batch_size: responses decoded together; more are run in successive batches.
            device: where the model runs.
            weight_update_mode: the freeze mode whose ``trainable_state_dict`` a policy update
                carries; a full ``state_dict`` is accepted too.
            policy_version: the version of the weights ``model`` holds now.
            seed: draws the seeds of requests that bring none; ``None`` seeds from the OS.
        """
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no eos token: responses could never stop")
        if weight_update_mode not in get_args(FreezeMode):
            raise ValueError(f"weight_update_mode must be one of {get_args(FreezeMode)}")
        if policy_version < 0:
            raise ValueError(f"policy_version must be >= 0, got {policy_version}")
        self._device = torch.device(device)
        self._model: VisionLanguageModel | None = model.to(self._device).eval()
        self._tokenizer = tokenizer
        self._eos_id = int(tokenizer.eos_token_id)
        pad_id = tokenizer.pad_token_id
        self._pad_id = self._eos_id if pad_id is None else int(pad_id)
        self._max_batch_size = max_batch_size
        self._weight_update_mode: FreezeMode = weight_update_mode
        self._policy_version = policy_version
        self._lock = threading.Lock()
        self._seed_source = torch.Generator().manual_seed(
            secrets.randbits(63) if seed is None else seed
        )
        language_config = model.language_model.config
        self._vocab_size = int(language_config.vocab_size)
        self._max_positions: int | None = getattr(language_config, "max_position_embeddings", None)

    @property
    def policy_version(self) -> int:
        """The version of the weights that the next ``generate`` samples from."""
        return self._policy_version

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Sample ``request.sampling.n`` responses for every request (see the module docstring)."""
        requests = list(requests)
        self._check_requests(requests)
        with self._lock:
            model = self._require_model()
            version = self._policy_version
            rows = [
                (index, response, seed)
                for index, request in enumerate(requests)
                for response, seed in enumerate(
                    response_seeds(self._request_seed(request), request.sampling.n)
                )
            ]
            sampled: list[_Sampled] = []
            with torch.inference_mode():
                for start in range(0, len(rows), self._max_batch_size):
                    chunk = rows[start : start + self._max_batch_size]
                    sampled.extend(self._sample_batch(model, requests, chunk))
        completions: list[list[Completion]] = [[] for _ in requests]
        for (index, _, _), (tokens, logprobs, finish) in zip(rows, sampled, strict=True):
            text = decode_response(self._tokenizer, tokens)
            completions[index].append(Completion(tokens, logprobs, finish, text))
        return [
            GenerationResult(
                request_id=request.request_id,
                prompt_token_ids=list(request.prompt_token_ids),
                completions=completions[index],
                policy_version=version,
            )
            for index, request in enumerate(requests)
        ]

    def load_weights(self, state: Mapping[str, torch.Tensor], policy_version: int) -> None:
        """Copy a policy update into the model and adopt ``policy_version``.

        ``state`` is either the ``trainable_state_dict`` of the engine's ``weight_update_mode``
        or a full ``state_dict``. Keys, shapes, finiteness and the version (not older than the
        current one; equal is a re-delivery) are checked before any weight changes.
        """
        if isinstance(policy_version, bool) or not isinstance(policy_version, int):
            raise ValueError(f"policy_version must be an integer, got {policy_version!r}")
        with self._lock:
            model = self._require_model()
            if policy_version < self._policy_version:
                raise ValueError(
                    f"policy_version {policy_version} is older than the loaded "
                    f"{self._policy_version}"
                )
            full_state = model.state_dict()
            is_full = set(state) == set(full_state)
            expected = (
                full_state if is_full else trainable_state_dict(model, self._weight_update_mode)
            )
            _check_weights(state, expected, self._weight_update_mode)
            if is_full:
                model.load_state_dict(dict(state), strict=True)
            else:
                load_trainable_state_dict(model, state, self._weight_update_mode)
            self._policy_version = policy_version

    def close(self) -> None:
        """Drop the model; later calls raise RuntimeError."""
        with self._lock:
            self._model = None

    def _require_model(self) -> VisionLanguageModel:
        if self._model is None:
            raise RuntimeError("the engine is closed")
        return self._model

    def _request_seed(self, request: GenerationRequest) -> int:
        if request.sampling.seed is not None:
            return request.sampling.seed
        return int(torch.randint(0, MAX_SEED, (1,), generator=self._seed_source))

    def _check_requests(self, requests: Sequence[GenerationRequest]) -> None:
        if not requests:
            raise ValueError("generate needs at least one request")
        model = self._require_model()
        ids = [request.request_id for request in requests]
        if len(set(ids)) != len(ids):
            raise ValueError("request ids must be unique within a call")
        config = model.config
        image_shape = (int(config.vision_config.get("num_channels", 3)), *config.image_size)
        for request in requests:
            name = request.request_id
            if max(request.prompt_token_ids) >= self._vocab_size:
                raise ValueError(f"request {name!r}: token ids must be below {self._vocab_size}")
            placeholders = request.prompt_token_ids.count(config.image_token_id)
            if request.pixel_values is None and placeholders:
                raise ValueError(f"request {name!r}: image placeholders but no pixel_values")
            if request.pixel_values is not None:
                if placeholders != config.num_image_tokens:
                    raise ValueError(
                        f"request {name!r}: {placeholders} image placeholder tokens, the model "
                        f"needs {config.num_image_tokens}"
                    )
                if tuple(request.pixel_values.shape) != image_shape:
                    raise ValueError(
                        f"request {name!r}: pixel_values {tuple(request.pixel_values.shape)}, "
                        f"the model takes {image_shape}"
                    )
            total = len(request.prompt_token_ids) + request.sampling.max_new_tokens
            if self._max_positions is not None and total > self._max_positions:
                raise ValueError(
                    f"request {name!r}: prompt + max_new_tokens = {total} tokens, the model "
                    f"handles {self._max_positions}"
                )

    def _sample_batch(
        self, model: VisionLanguageModel, requests: Sequence[GenerationRequest], rows: list[_Row]
    ) -> list[_Sampled]:
        """Decode ``rows`` together; one (tokens, log-probs, finish reason) per row, in order."""
        device = self._device
        prompt_indices = list(dict.fromkeys(index for index, _, _ in rows))
        prompts = [requests[index] for index in prompt_indices]
        input_ids, attention_mask = _left_pad(
            [request.prompt_token_ids for request in prompts], self._pad_id, device
        )
        images = [request.pixel_values for request in prompts if request.pixel_values is not None]
        pixel_values = (
            torch.stack([image.float() for image in images]).to(device) if images else None
        )
        language_model = model.language_model
        cache = DynamicCache(config=language_model.config)
        prefill = language_model(
            inputs_embeds=model.embed_inputs(input_ids, attention_mask, pixel_values),
            attention_mask=attention_mask,
            position_ids=position_ids_from_attention_mask(attention_mask),
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        # Every response of a prompt starts from that prompt's cache: prefill once, copy N times.
        prompt_of_row = torch.tensor(
            [prompt_indices.index(index) for index, _, _ in rows], device=device
        )
        cache.batch_select_indices(prompt_of_row)
        attention_mask = attention_mask[prompt_of_row]
        logits = prefill.logits[:, -1][prompt_of_row]
        sampling = [requests[index].sampling for index, _, _ in rows]
        temperature = torch.tensor([options.temperature for options in sampling], device=device)
        top_p = torch.tensor([options.top_p for options in sampling], device=device)
        budget = [options.max_new_tokens for options in sampling]
        generators = [torch.Generator(device=device).manual_seed(seed) for _, _, seed in rows]
        tokens: list[list[int]] = [[] for _ in rows]
        logprobs: list[list[float]] = [[] for _ in rows]
        finish: list[FinishReason] = ["length"] * len(rows)
        active = list(range(len(rows)))
        while True:
            selected = torch.tensor(active, device=device)
            next_tokens, next_logprobs = sample_next_tokens(
                logits, temperature[selected], top_p[selected], [generators[r] for r in active]
            )
            still_running: list[int] = []
            for position, (row, token, logprob) in enumerate(
                zip(active, next_tokens.tolist(), next_logprobs.tolist(), strict=True)
            ):
                tokens[row].append(token)
                logprobs[row].append(logprob)
                if token == self._eos_id:
                    finish[row] = "stop"
                elif len(tokens[row]) < budget[row]:
                    still_running.append(position)
            if not still_running:
                break
            if len(still_running) < len(active):
                keep = torch.tensor(still_running, device=device)
                cache.batch_select_indices(keep)
                attention_mask = attention_mask[keep]
                next_tokens = next_tokens[keep]
                active = [active[position] for position in still_running]
            # The new token's position is the number of tokens its row attends to before it.
            position_ids = attention_mask.sum(dim=1, keepdim=True)
            attention_mask = torch.cat([attention_mask, torch.ones_like(position_ids)], dim=1)
            step = language_model(
                input_ids=next_tokens.unsqueeze(-1),
                attention_mask=attention_mask,
                position_ids=position_ids,
                cache=cache,
                use_cache=True,
            )
            logits = step.logits[:, -1]
        return [(tokens[row], logprobs[row], finish[row]) for row in range(len(rows))]


def _left_pad(
    prompts: Sequence[Sequence[int]], pad_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """``input_ids`` and ``attention_mask`` ``[prompts, longest]``, padded on the left so that
    every prompt ends in the last column, where decoding continues."""
    length = max(len(prompt) for prompt in prompts)
    input_ids = torch.full((len(prompts), length), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), length), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        input_ids[row, length - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
        attention_mask[row, length - len(prompt) :] = 1
    return input_ids.to(device), attention_mask.to(device)


def _check_weights(
    state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], mode: str
) -> None:
    if set(state) != set(expected):
        missing = sorted(set(expected) - set(state))[:5]
        extra = sorted(set(state) - set(expected))[:5]
        raise ValueError(
            f"state is neither a full state_dict nor the {mode!r} trainable weights: "
            f"missing {missing}, extra {extra}"
        )
    for name, target in expected.items():
        tensor = state[name]
        if not isinstance(tensor, torch.Tensor) or tensor.shape != target.shape:
            shape = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor)
            raise ValueError(f"{name}: got {shape}, the model has {tuple(target.shape)}")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"{name} holds NaN or infinity")
