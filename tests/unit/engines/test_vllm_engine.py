"""The vLLM adapter's pure mappings, checked against small fakes shaped like vLLM's objects.

vLLM is a CUDA build and is not installed here: ``FakeVLLM*`` below mimic the attributes of
``vllm.outputs.CompletionOutput`` / ``RequestOutput`` and ``vllm.logprobs.Logprob`` that the
adapter reads, and ``FakeVLLMModule`` stands in for the ``vllm`` package to check the wiring.
"""

import math
import sys
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from transformers import PreTrainedTokenizerFast

from hybridrl.engines.base import GenerationEngine, GenerationRequest, SamplingOptions
from hybridrl.engines.vllm_engine import (
    WORKER_EXTENSION,
    VLLMEngine,
    completion_from_vllm,
    llm_arguments,
    pixel_values_to_image,
    renamed_weights,
    result_from_vllm,
    sampling_params_kwargs,
    tokens_prompt,
)
from hybridrl.tasks.visual_reasoning import generate_prompts

EOS, THINK, END_THINK = 2, 5, 6
HALF = (0.5, 0.5, 0.5)


@dataclass
class FakeVLLMLogprob:
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclass
class FakeVLLMCompletionOutput:
    index: int
    token_ids: list[int]
    logprobs: list[dict[int, FakeVLLMLogprob]] | None
    finish_reason: str | None
    text: str = ""


@dataclass
class FakeVLLMRequestOutput:
    request_id: str
    outputs: list[FakeVLLMCompletionOutput]


def fake_output(
    tokens: list[int], logprobs: list[float], finish: str | None
) -> FakeVLLMCompletionOutput:
    entries = [
        {token: FakeVLLMLogprob(value, rank=1)}
        for token, value in zip(tokens, logprobs, strict=True)
    ]
    return FakeVLLMCompletionOutput(0, tokens, entries, finish)


def test_sampling_options_map_to_sampling_params_kwargs() -> None:
    options = SamplingOptions(n=8, temperature=0.7, top_p=1.0, max_new_tokens=32, seed=11)
    assert sampling_params_kwargs(options) == {
        "n": 8,
        "temperature": 0.7,
        "top_p": 1.0,
        "max_tokens": 32,
        "seed": 11,
        "logprobs": 0,
        "detokenize": False,
    }
    greedy = sampling_params_kwargs(SamplingOptions(temperature=0.0, seed=None))
    assert greedy["temperature"] == 0.0
    assert greedy["seed"] is None


def test_top_p_below_one_is_refused_because_vllm_truncates_its_log_probs() -> None:
    with pytest.raises(ValueError, match=r"top_p=0\.9"):
        sampling_params_kwargs(SamplingOptions(top_p=0.9))


def test_completion_output_maps_tokens_logprobs_and_text(
    tokenizer: PreTrainedTokenizerFast,
) -> None:
    # '4' = 11, '2' = 9: "<think>42</think>" then eos.
    output = fake_output(
        [THINK, 11, 9, END_THINK, EOS], [-0.5, -1.25, -2.0, -0.125, -0.0625], "stop"
    )
    completion = completion_from_vllm(output, tokenizer)
    assert completion.token_ids == [THINK, 11, 9, END_THINK, EOS]
    assert completion.logprobs == [-0.5, -1.25, -2.0, -0.125, -0.0625]
    assert completion.finish_reason == "stop"
    assert completion.text == "<think>42</think>"


def test_logprob_entries_with_top_alternatives_use_the_sampled_token(
    tokenizer: PreTrainedTokenizerFast,
) -> None:
    # When the sampled token is not the most likely, vLLM adds the top-1 alternative too.
    entry = {17: FakeVLLMLogprob(-3.0, rank=5), 18: FakeVLLMLogprob(-0.1, rank=1)}
    output = FakeVLLMCompletionOutput(0, [17], [entry], "length")
    completion = completion_from_vllm(output, tokenizer)
    assert completion.logprobs == [-3.0]
    assert completion.finish_reason == "length"
    assert completion.text == "a"


@pytest.mark.parametrize(
    ("output", "message"),
    [
        (fake_output([17], [-1.0], "abort"), "'abort'"),
        (fake_output([17], [-1.0], None), "None"),
        (FakeVLLMCompletionOutput(0, [17, 18], None, "stop"), "None log-prob entries for 2"),
        (
            FakeVLLMCompletionOutput(0, [17, 18], [{17: FakeVLLMLogprob(-1.0)}], "stop"),
            "1 log-prob",
        ),
        (FakeVLLMCompletionOutput(0, [17], [{18: FakeVLLMLogprob(-1.0)}], "stop"), "token 17"),
        (fake_output([17], [-math.inf], "stop"), "-inf"),
    ],
)
def test_malformed_completion_outputs_raise_value_error(
    tokenizer: PreTrainedTokenizerFast, output: FakeVLLMCompletionOutput, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        completion_from_vllm(output, tokenizer)


def test_request_output_needs_n_completions(tokenizer: PreTrainedTokenizerFast) -> None:
    request = GenerationRequest("p-1", [1, 17], None, SamplingOptions(n=2))
    both = FakeVLLMRequestOutput("0", [fake_output([17], [-1.0], "length")] * 2)
    result = result_from_vllm(request, both, policy_version=3, tokenizer=tokenizer)
    assert result.request_id == "p-1"
    assert result.prompt_token_ids == [1, 17]
    assert result.policy_version == 3
    assert [c.token_ids for c in result.completions] == [[17], [17]]
    with pytest.raises(ValueError, match="1 completions, expected 2"):
        result_from_vllm(request, FakeVLLMRequestOutput("0", both.outputs[:1]), 3, tokenizer)


def test_pixel_values_round_trip_to_the_task_image() -> None:
    prompt = generate_prompts(1, seed=0)[0]
    image = pixel_values_to_image(torch.from_numpy(prompt.pixel_values()), HALF, HALF)
    assert image.mode == "RGB"
    assert image.size == (32, 32)
    np.testing.assert_array_equal(np.asarray(image), prompt.image)


def test_tokens_prompt_carries_the_image_only_when_there_is_one() -> None:
    prompt = generate_prompts(1, seed=0)[0]
    with_image = GenerationRequest("a", [1, 4, 17], torch.from_numpy(prompt.pixel_values()))
    built = tokens_prompt(with_image, HALF, HALF)
    assert built["prompt_token_ids"] == [1, 4, 17]
    np.testing.assert_array_equal(np.asarray(built["multi_modal_data"]["image"]), prompt.image)
    assert tokens_prompt(GenerationRequest("b", [1, 17]), HALF, HALF) == {
        "prompt_token_ids": [1, 17]
    }


def test_weights_are_renamed_by_prefix_and_checked() -> None:
    state = {"adapter.norm.weight": torch.ones(2), "adapter.output_projection.bias": torch.zeros(2)}
    renamed = renamed_weights(state, {"adapter.": "mlp1."})
    assert [name for name, _ in renamed] == ["mlp1.norm.weight", "mlp1.output_projection.bias"]
    assert [name for name, _ in renamed_weights(state, {})] == list(state)
    with pytest.raises(ValueError, match="matches none"):
        renamed_weights({"vision_encoder.x": torch.ones(1)}, {"adapter.": "mlp1."})
    with pytest.raises(ValueError, match="NaN"):
        renamed_weights({"adapter.x": torch.tensor([math.nan])}, {})
    with pytest.raises(ValueError, match="empty"):
        renamed_weights({}, {})


def test_llm_arguments_fix_what_the_engine_relies_on() -> None:
    arguments = llm_arguments("/models/r1v2", {"tensor_parallel_size": 8})
    assert arguments == {
        "model": "/models/r1v2",
        "limit_mm_per_prompt": {"image": 1},
        "logprobs_mode": "processed_logprobs",
        "worker_extension_cls": "hybridrl.engines.vllm_engine.WeightReloadWorkerExtension",
        "tensor_parallel_size": 8,
    }
    assert arguments["worker_extension_cls"] == WORKER_EXTENSION
    with pytest.raises(ValueError, match="logprobs_mode"):
        llm_arguments("/models/r1v2", {"logprobs_mode": "raw_logprobs"})


def test_missing_vllm_gives_an_install_hint(
    tokenizer: PreTrainedTokenizerFast, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(ImportError, match="install the `vllm` extra on a GPU node"):
        VLLMEngine("/models/r1v2", tokenizer)


@dataclass
class FakeVLLMLLM:
    """Records the calls ``VLLMEngine`` makes on ``vllm.LLM``."""

    arguments: dict[str, Any]
    calls: list[tuple[str, Any]] = field(default_factory=list)

    def generate(self, prompts: list[dict[str, Any]], sampling_params: Any, use_tqdm: bool) -> Any:
        self.calls.append(("generate", (prompts, sampling_params)))
        return [
            FakeVLLMRequestOutput(str(i), [fake_output([17, EOS], [-1.0, -2.0], "stop")] * p.n)
            for i, p in enumerate(sampling_params)
        ]

    def collective_rpc(self, method: str, args: tuple[Any, ...]) -> list[None]:
        self.calls.append(("collective_rpc", (method, args)))
        return [None]

    def reset_prefix_cache(self) -> bool:
        self.calls.append(("reset_prefix_cache", None))
        return True


def test_engine_wires_generate_and_reload_through_vllm(
    tokenizer: PreTrainedTokenizerFast, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[FakeVLLMLLM] = []

    def start_llm(**arguments: Any) -> FakeVLLMLLM:
        started.append(FakeVLLMLLM(arguments))
        return started[-1]

    fake_vllm_module = SimpleNamespace(LLM=start_llm, SamplingParams=SimpleNamespace)
    monkeypatch.setitem(sys.modules, "vllm", fake_vllm_module)
    engine = VLLMEngine("/models/r1v2", tokenizer, parameter_name_prefixes={"adapter.": "mlp1."})
    assert isinstance(engine, GenerationEngine)
    (llm,) = started
    assert llm.arguments["logprobs_mode"] == "processed_logprobs"

    request = GenerationRequest("p-1", [1, 17], None, SamplingOptions(n=2, seed=4))
    (result,) = engine.generate([request])
    assert [c.text for c in result.completions] == ["a", "a"]
    assert result.policy_version == 0
    _, (prompts, params) = llm.calls[0]
    assert prompts == [{"prompt_token_ids": [1, 17]}]
    assert (params[0].n, params[0].seed, params[0].logprobs) == (2, 4, 0)

    engine.load_weights({"adapter.norm.weight": torch.ones(2)}, policy_version=1)
    assert [name for name, _ in llm.calls[1:]] == ["collective_rpc", "reset_prefix_cache"]
    method, (named_tensors,) = llm.calls[1][1]
    assert method == "load_policy_weights"
    assert [name for name, _ in named_tensors] == ["mlp1.norm.weight"]
    assert engine.policy_version == 1
    with pytest.raises(ValueError, match="older"):
        engine.load_weights({"adapter.norm.weight": torch.ones(2)}, policy_version=0)
