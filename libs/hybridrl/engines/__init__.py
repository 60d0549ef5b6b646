"""Generation engines for rollout workers: one interface, a CPU engine and a vLLM engine.

``hybridrl.engines.base`` holds the interface and its records (importing it is cheap);
``hybridrl.engines.cpu.TransformersEngine`` runs on ``transformers`` for tests and local runs;
``hybridrl.engines.vllm_engine.VLLMEngine`` runs on vLLM on GPU nodes (the ``vllm`` extra).
"""

from hybridrl.engines.base import (
    MAX_RESPONSES_PER_PROMPT,
    Completion,
    FinishReason,
    GenerationEngine,
    GenerationRequest,
    GenerationResult,
    SamplingOptions,
)

__all__ = [
    "MAX_RESPONSES_PER_PROMPT",
    "Completion",
    "FinishReason",
    "GenerationEngine",
    "GenerationRequest",
    "GenerationResult",
    "SamplingOptions",
]
