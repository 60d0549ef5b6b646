"""Generation on request: one prompt, the caller's sampling, within the caller's deadline.

The rollout service's gRPC ``Generate`` and ``GenerateStream`` calls (evaluation, clients that
want completions with their behaviour log-probs) come here; they share the worker's engine
with the prompts loop through a ``SharedEngine``. Requests are checked before any work:
ValueError for what the caller must fix, ``TimeoutError`` when the engine stays busy past the
deadline.
"""

from __future__ import annotations

from collections.abc import Sequence

from hybridrl.engines.base import GenerationRequest, GenerationResult, SamplingOptions
from hybridrl.proto.v1 import common_pb2
from hybridrl.rollout.prompt_inputs import PromptEncoder
from hybridrl.rollout.shared_engine import SharedEngine


class OnDemandGenerator:
    """Samples ``n`` responses to one prompt for a caller outside the training loop."""

    def __init__(
        self, engine: SharedEngine, encoder: PromptEncoder, *, max_new_tokens_cap: int
    ) -> None:
        """``max_new_tokens_cap`` is the longest response a caller may ask for."""
        if max_new_tokens_cap < 1:
            raise ValueError(f"max_new_tokens_cap must be >= 1, got {max_new_tokens_cap}")
        self._engine = engine
        self._encoder = encoder
        self._max_new_tokens_cap = max_new_tokens_cap

    @property
    def policy_version(self) -> int:
        return self._engine.policy_version

    def generate(
        self,
        text: str,
        images: Sequence[common_pb2.ImageRef],
        sampling: SamplingOptions,
        *,
        timeout: float | None = None,
    ) -> GenerationResult:
        """The ``sampling.n`` completions of one prompt, from one policy version.

        ``timeout`` (seconds) bounds the wait for the engine; ``TimeoutError`` past it.
        """
        if sampling.max_new_tokens > self._max_new_tokens_cap:
            raise ValueError(
                f"max_new_tokens must be at most {self._max_new_tokens_cap}, "
                f"got {sampling.max_new_tokens}"
            )
        inputs = self._encoder.encode(text, images)
        request = GenerationRequest(
            request_id="generate",
            prompt_token_ids=inputs.token_ids,
            pixel_values=inputs.pixel_values,
            sampling=sampling,
        )
        return self._engine.generate([request], timeout=timeout)[0]
