"""A ``GenerationEngine`` on vLLM, for rollout workers on GPU nodes.

A thin adapter: requests become vLLM token prompts (``{"prompt_token_ids": [...],
"multi_modal_data": {"image": PIL image}}``) and ``SamplingParams``; vLLM's ``CompletionOutput``
becomes ``Completion``. vLLM is a CUDA build, installed with the ``vllm`` extra, and is imported
only when a ``VLLMEngine`` is built, so this module imports anywhere; the mapping functions are
pure and tested without vLLM.

Behaviour log-probs (pi_old of eq. 8) follow ``hybridrl.engines.base``. vLLM returns them for
the sampled token with ``logprobs=0``; with ``logprobs_mode="processed_logprobs"`` they are
log softmax(logits / T), greedy requests at T = 1 -- the convention -- but taken after top-p
truncation, so this engine refuses top_p < 1 rather than return a pi_old the learner cannot
reproduce.

Weight reload (hot reload after a policy update) follows the RLHF frameworks (TRL's
``vllm_serve``, OpenRLHF, verl): a worker extension class is mixed into every vLLM worker, and
``LLM.collective_rpc`` calls its ``load_policy_weights`` with the new tensors, which go through
the model's own ``load_weights`` (checkpoint names, tensor-parallel sharding). The prefix cache
is then reset, since its keys and values came from the old weights. The adapter of an
adapter-only run is a few MB, small enough to pass through the RPC.
"""

import importlib
import math
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image
from transformers import PreTrainedTokenizerBase

from hybridrl.engines.base import (
    Completion,
    FinishReason,
    GenerationRequest,
    GenerationResult,
    SamplingOptions,
)
from hybridrl.models.prompting import decode_response

WORKER_EXTENSION = f"{__name__}.WeightReloadWorkerExtension"
# What the engine sets itself; ``llm_options`` may not override these.
FIXED_LLM_ARGUMENTS: Mapping[str, Any] = {
    "limit_mm_per_prompt": {"image": 1},
    "logprobs_mode": "processed_logprobs",
    "worker_extension_cls": WORKER_EXTENSION,
}


class VLLMLogprob(Protocol):
    """``vllm.logprobs.Logprob``: the part this module reads."""

    @property
    def logprob(self) -> float: ...


class VLLMCompletionOutput(Protocol):
    """``vllm.outputs.CompletionOutput``: the part this module reads."""

    @property
    def token_ids(self) -> Sequence[int]: ...

    @property
    def logprobs(self) -> Sequence[Mapping[int, VLLMLogprob]] | None: ...

    @property
    def finish_reason(self) -> str | None: ...


class VLLMRequestOutput(Protocol):
    """``vllm.outputs.RequestOutput``: the part this module reads."""

    @property
    def outputs(self) -> Sequence[VLLMCompletionOutput]: ...


def sampling_params_kwargs(options: SamplingOptions) -> dict[str, Any]:
    """Keyword arguments of ``vllm.SamplingParams`` for ``options``.

    ``logprobs=0`` asks for the sampled token's log-prob only; ``detokenize=False`` because the
    text is decoded here, with special tokens kept (``decode_response``).
    """
    if options.top_p < 1:
        raise ValueError(
            f"top_p={options.top_p}: vLLM reports log-probs after top-p truncation, which the "
            "learner cannot reproduce as pi_old; use top_p=1 with the vLLM engine"
        )
    return {
        "n": options.n,
        "temperature": float(options.temperature),
        "top_p": 1.0,
        "max_tokens": options.max_new_tokens,
        "seed": options.seed,
        "logprobs": 0,
        "detokenize": False,
    }


def pixel_values_to_image(
    pixel_values: torch.Tensor, mean: Sequence[float], std: Sequence[float]
) -> Image.Image:
    """Undo the normalisation of ``[3, H, W]`` pixel values into the RGB image vLLM's processor
    takes: pixels = (values * std + mean) * 255, rounded. Exact for images that were uint8."""
    if pixel_values.dim() != 3 or pixel_values.shape[0] != 3:
        raise ValueError(f"pixel_values must be [3, H, W], got {tuple(pixel_values.shape)}")
    if len(mean) != 3 or len(std) != 3:
        raise ValueError("mean and std need one value per channel")
    mean_tensor = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    std_tensor = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    pixels = (pixel_values.float().cpu() * std_tensor + mean_tensor) * 255.0
    array = pixels.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(np.ascontiguousarray(array))


def tokens_prompt(
    request: GenerationRequest, mean: Sequence[float], std: Sequence[float]
) -> dict[str, Any]:
    """The ``vllm.inputs.TokensPrompt`` of a request. Its ids must follow the served model's
    placeholder convention: vLLM's multi-modal processor checks or expands them."""
    prompt: dict[str, Any] = {"prompt_token_ids": list(request.prompt_token_ids)}
    if request.pixel_values is not None:
        image = pixel_values_to_image(request.pixel_values, mean, std)
        prompt["multi_modal_data"] = {"image": image}
    return prompt


def completion_from_vllm(
    output: VLLMCompletionOutput, tokenizer: PreTrainedTokenizerBase
) -> Completion:
    """A ``Completion`` from one vLLM ``CompletionOutput`` sampled with ``logprobs=0``."""
    if output.finish_reason not in ("stop", "length"):
        raise ValueError(f"vLLM finished a completion with {output.finish_reason!r}")
    token_ids = [int(token) for token in output.token_ids]
    if output.logprobs is None or len(output.logprobs) != len(token_ids):
        count = None if output.logprobs is None else len(output.logprobs)
        raise ValueError(f"vLLM returned {count} log-prob entries for {len(token_ids)} tokens")
    logprobs = []
    for position, (token, entry) in enumerate(zip(token_ids, output.logprobs, strict=True)):
        if token not in entry:
            raise ValueError(f"no log-prob for sampled token {token} at position {position}")
        value = float(entry[token].logprob)
        if not math.isfinite(value):
            raise ValueError(f"log-prob {value} for sampled token {token} at {position}")
        logprobs.append(value)
    finish_reason: FinishReason = "stop" if output.finish_reason == "stop" else "length"
    return Completion(token_ids, logprobs, finish_reason, decode_response(tokenizer, token_ids))


def result_from_vllm(
    request: GenerationRequest,
    output: VLLMRequestOutput,
    policy_version: int,
    tokenizer: PreTrainedTokenizerBase,
) -> GenerationResult:
    """The ``GenerationResult`` of ``request`` from vLLM's ``RequestOutput``."""
    if len(output.outputs) != request.sampling.n:
        raise ValueError(
            f"request {request.request_id!r}: vLLM returned {len(output.outputs)} completions, "
            f"expected {request.sampling.n}"
        )
    return GenerationResult(
        request_id=request.request_id,
        prompt_token_ids=list(request.prompt_token_ids),
        completions=[completion_from_vllm(completion, tokenizer) for completion in output.outputs],
        policy_version=policy_version,
    )


def renamed_weights(
    state: Mapping[str, torch.Tensor], prefixes: Mapping[str, str]
) -> list[tuple[str, torch.Tensor]]:
    """``(name, tensor)`` pairs with each ``VisionLanguageModel`` key renamed to the served
    checkpoint's name by the first matching prefix (``{"adapter.": "mlp1."}``); no prefixes keep
    the names. A key no prefix matches, or a non-finite tensor, is a ValueError."""
    if not state:
        raise ValueError("the weight update is empty")
    renamed = []
    for name, tensor in state.items():
        if not isinstance(tensor, torch.Tensor):
            raise ValueError(f"{name} is not a tensor")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"{name} holds NaN or infinity")
        if prefixes:
            matches = [prefix for prefix in prefixes if name.startswith(prefix)]
            if not matches:
                raise ValueError(f"{name} matches none of the prefixes {sorted(prefixes)}")
            name = prefixes[matches[0]] + name[len(matches[0]) :]
        renamed.append((name, tensor.detach().cpu()))
    return renamed


def llm_arguments(model_path: str, llm_options: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments of ``vllm.LLM``: the engine's fixed ones plus ``llm_options``
    (``tensor_parallel_size``, ``dtype``, ``gpu_memory_utilization``, ...)."""
    clashes = sorted(set(llm_options) & {"model", *FIXED_LLM_ARGUMENTS})
    if clashes:
        raise ValueError(f"the engine sets {clashes} itself")
    return {"model": model_path, **FIXED_LLM_ARGUMENTS, **llm_options}


class WeightReloadWorkerExtension:
    """Mixed into every vLLM worker (``worker_extension_cls``); runs in the worker process."""

    model_runner: Any
    device: torch.device

    def load_policy_weights(self, named_tensors: list[tuple[str, torch.Tensor]]) -> None:
        """Copy the tensors into the served model through its ``load_weights``."""
        weights = [(name, tensor.to(self.device)) for name, tensor in named_tensors]
        self.model_runner.model.load_weights(weights=weights)


class VLLMEngine:
    """``GenerationEngine`` over ``vllm.LLM`` (offline, in-process engine)."""

    def __init__(
        self,
        model_path: str,
        tokenizer: PreTrainedTokenizerBase,
        *,
        policy_version: int = 0,
        parameter_name_prefixes: Mapping[str, str] | None = None,
        image_mean: Sequence[float] = (0.5, 0.5, 0.5),
        image_std: Sequence[float] = (0.5, 0.5, 0.5),
        **llm_options: Any,
    ) -> None:
        """Start vLLM on the checkpoint at ``model_path`` (a local directory).

        Args:
            model_path: a checkpoint vLLM can serve.
            tokenizer: the one the prompts were encoded with; decodes the responses.
            policy_version: the version of the weights at ``model_path``.
            parameter_name_prefixes: renames policy-update keys to the checkpoint's names.
            image_mean, image_std: the normalisation of ``GenerationRequest.pixel_values``,
                undone before vLLM's own image processor runs ([-1, 1] by default, as
                ``VisualPrompt.pixel_values`` makes them).
            llm_options: more ``vllm.LLM`` arguments.
        """
        if isinstance(policy_version, bool) or not isinstance(policy_version, int):
            raise ValueError(f"policy_version must be an integer, got {policy_version!r}")
        if policy_version < 0:
            raise ValueError(f"policy_version must be >= 0, got {policy_version}")
        arguments = llm_arguments(model_path, llm_options)
        try:
            vllm = importlib.import_module("vllm")
        except ImportError as error:
            raise ImportError(
                "VLLMEngine needs vLLM: install the `vllm` extra on a GPU node "
                "(pip install 'hybridrl[vllm]'), or use the CPU TransformersEngine"
            ) from error
        self._sampling_params = vllm.SamplingParams
        self._llm: Any = vllm.LLM(**arguments)
        self._tokenizer = tokenizer
        self._policy_version = policy_version
        self._prefixes = dict(parameter_name_prefixes or {})
        self._image_mean = tuple(image_mean)
        self._image_std = tuple(image_std)
        self._lock = threading.Lock()

    @property
    def policy_version(self) -> int:
        """The version of the weights that the next ``generate`` samples from."""
        return self._policy_version

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """One vLLM ``generate`` call for all requests; results in request order."""
        requests = list(requests)
        if not requests:
            raise ValueError("generate needs at least one request")
        if len({request.request_id for request in requests}) != len(requests):
            raise ValueError("request ids must be unique within a call")
        params = [
            self._sampling_params(**sampling_params_kwargs(request.sampling))
            for request in requests
        ]
        prompts = [tokens_prompt(r, self._image_mean, self._image_std) for r in requests]
        with self._lock:
            llm = self._require_llm()
            version = self._policy_version
            outputs = llm.generate(prompts, sampling_params=params, use_tqdm=False)
        if len(outputs) != len(requests):
            raise RuntimeError(f"vLLM returned {len(outputs)} outputs for {len(requests)} prompts")
        return [
            result_from_vllm(request, output, version, self._tokenizer)
            for request, output in zip(requests, outputs, strict=True)
        ]

    def load_weights(self, state: Mapping[str, torch.Tensor], policy_version: int) -> None:
        """Send the update to every worker, then drop the prefix cache of the old weights."""
        if isinstance(policy_version, bool) or not isinstance(policy_version, int):
            raise ValueError(f"policy_version must be an integer, got {policy_version!r}")
        named_tensors = renamed_weights(state, self._prefixes)
        with self._lock:
            llm = self._require_llm()
            if policy_version < self._policy_version:
                raise ValueError(
                    f"policy_version {policy_version} is older than the loaded "
                    f"{self._policy_version}"
                )
            llm.collective_rpc("load_policy_weights", args=(named_tensors,))
            llm.reset_prefix_cache()
            self._policy_version = policy_version

    def close(self) -> None:
        """Drop the ``vllm.LLM``; its engine processes exit when it is collected."""
        with self._lock:
            self._llm = None

    def _require_llm(self) -> Any:
        if self._llm is None:
            raise RuntimeError("the engine is closed")
        return self._llm
