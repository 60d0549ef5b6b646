"""The one interface every generation engine implements, and the records it takes and returns.

Rollout workers sample N responses per prompt from the current policy and tag each group with
the policy version that produced it; the learner later uses the behaviour log-probs returned here
as pi_old in the ratio of eq. (8). The rollout service and the gRPC ``Generate`` handler talk to
a ``GenerationEngine`` only, so the CPU engine (``hybridrl.engines.cpu``, tests and local runs)
and the vLLM engine (``hybridrl.engines.vllm_engine``, GPU nodes) are interchangeable.

Log-prob convention (both engines): each entry of ``Completion.logprobs`` is
log softmax(logits / T)[token] in float32, with T = ``SamplingOptions.logprob_temperature``: the
sampling temperature, or 1 for greedy decoding, taken *before* top-p truncation. The learner
recomputes pi_theta with ``VisionLanguageModel.sequence_logprobs(..., temperature=T)`` on the
prompt followed by ``Completion.token_ids``. A completion that stops at the end-of-sequence token
includes that token and its log-prob, so the decision to stop is trained like any other.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import torch

MAX_RESPONSES_PER_PROMPT = 256
"""Upper bound on ``SamplingOptions.n``: GRPO groups are 4-64 responses; more is a mistake."""

MAX_SEED = 2**63 - 1

FinishReason = Literal["stop", "length"]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class SamplingOptions:
    """How to sample the responses to one prompt.

    Attributes:
        n: responses per prompt (the group size N of eq. 6), 1 to ``MAX_RESPONSES_PER_PROMPT``.
        temperature: logits are divided by it; 0 means greedy decoding.
        top_p: nucleus sampling keeps the smallest set of tokens whose probability reaches
            ``top_p``; 1 keeps the whole vocabulary. In (0, 1].
        max_new_tokens: the most tokens a response may have, end-of-sequence token included.
        seed: makes the n responses reproducible; ``None`` draws a fresh seed.
    """

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    seed: int | None = None

    def __post_init__(self) -> None:
        if not _is_int(self.n) or not 1 <= self.n <= MAX_RESPONSES_PER_PROMPT:
            raise ValueError(
                f"n must be an integer in [1, {MAX_RESPONSES_PER_PROMPT}], got {self.n}"
            )
        if not _is_real(self.temperature) or not math.isfinite(self.temperature):
            raise ValueError(f"temperature must be a finite number, got {self.temperature}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0 means greedy), got {self.temperature}")
        if not _is_real(self.top_p) or not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if not _is_int(self.max_new_tokens) or self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be an integer >= 1, got {self.max_new_tokens}")
        if self.seed is not None and (not _is_int(self.seed) or not 0 <= self.seed <= MAX_SEED):
            raise ValueError(f"seed must be None or an integer in [0, 2**63 - 1], got {self.seed}")

    @property
    def greedy(self) -> bool:
        """True when decoding takes the most likely token at every step."""
        return self.temperature == 0

    @property
    def logprob_temperature(self) -> float:
        """The T of the behaviour log-probs log softmax(logits / T): 1 for greedy decoding."""
        return 1.0 if self.greedy else float(self.temperature)


@dataclass(frozen=True, eq=False)
class GenerationRequest:
    """One prompt to sample ``sampling.n`` responses for.

    Attributes:
        request_id: the caller's id, echoed in the result (for example the prompt id).
        prompt_token_ids: the laid-out prompt (see ``hybridrl.models.prompting``), image
            placeholders included; stored as a tuple.
        pixel_values: ``[channels, height, width]`` float image the placeholders stand for, or
            ``None`` for a text-only prompt.
        sampling: how to sample.
    """

    request_id: str
    prompt_token_ids: Sequence[int]
    pixel_values: torch.Tensor | None = None
    sampling: SamplingOptions = SamplingOptions()

    def __post_init__(self) -> None:
        if not isinstance(self.request_id, str) or not self.request_id:
            raise ValueError("request_id must be a non-empty string")
        ids = tuple(self.prompt_token_ids)
        if not ids:
            raise ValueError(f"request {self.request_id!r}: prompt_token_ids is empty")
        if not all(_is_int(token) and token >= 0 for token in ids):
            raise ValueError(
                f"request {self.request_id!r}: prompt_token_ids must be non-negative integers"
            )
        object.__setattr__(self, "prompt_token_ids", ids)
        if self.pixel_values is not None:
            pixels = self.pixel_values
            if not isinstance(pixels, torch.Tensor) or pixels.dim() != 3:
                raise ValueError(f"request {self.request_id!r}: pixel_values must be [C, H, W]")
            if not pixels.is_floating_point() or not bool(torch.isfinite(pixels).all()):
                raise ValueError(f"request {self.request_id!r}: pixel_values must be finite floats")
        if not isinstance(self.sampling, SamplingOptions):
            raise ValueError(f"request {self.request_id!r}: sampling must be SamplingOptions")


@dataclass(frozen=True)
class Completion:
    """One sampled response.

    Attributes:
        token_ids: the response tokens, the end-of-sequence token included when it stopped there.
        logprobs: behaviour log-prob of each token (see the module docstring), same length.
        finish_reason: ``"stop"`` at the end-of-sequence token, ``"length"`` at
            ``max_new_tokens``.
        text: the response decoded by ``hybridrl.models.prompting.decode_response``.
    """

    token_ids: list[int]
    logprobs: list[float]
    finish_reason: FinishReason
    text: str

    def __post_init__(self) -> None:
        if len(self.token_ids) != len(self.logprobs):
            raise ValueError(f"{len(self.token_ids)} token ids but {len(self.logprobs)} log-probs")
        if self.finish_reason not in ("stop", "length"):
            raise ValueError(
                f"finish_reason must be 'stop' or 'length', got {self.finish_reason!r}"
            )


@dataclass(frozen=True)
class GenerationResult:
    """The ``n`` completions of one request, and the policy version that sampled all of them."""

    request_id: str
    prompt_token_ids: list[int]
    completions: list[Completion]
    policy_version: int


@runtime_checkable
class GenerationEngine(Protocol):
    """Samples completions from the current policy; swaps in new weights between batches."""

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """One result per request, in the order given, all from one policy version.

        Invalid requests (bad sampling options, prompts the model cannot take) raise
        ValueError before any work is done.
        """
        ...

    def load_weights(self, state: Mapping[str, torch.Tensor], policy_version: int) -> None:
        """Swap in a policy update (hot reload): waits for a running ``generate`` to finish, so
        every result comes from one version. Wrong keys or shapes raise ValueError and leave
        the weights untouched."""
        ...

    @property
    def policy_version(self) -> int:
        """The version of the weights that the next ``generate`` samples from."""
        ...

    def close(self) -> None:
        """Release the model and its memory; the engine cannot generate afterwards."""
        ...
