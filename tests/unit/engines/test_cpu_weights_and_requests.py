"""The CPU engine's hot reload (versions, checks, the lock) and the requests it refuses."""

import threading
from collections.abc import Callable
from typing import Any

import pytest
import torch
from transformers import PreTrainedTokenizerFast

from hybridrl.engines.base import GenerationRequest, SamplingOptions
from hybridrl.engines.cpu import TransformersEngine
from hybridrl.models.freezing import trainable_state_dict
from hybridrl.models.vlm import VisionLanguageModel

TaskRequests = Callable[..., list[GenerationRequest]]
ModelFactory = Callable[[int], VisionLanguageModel]
GREEDY = SamplingOptions(n=1, temperature=0.0, max_new_tokens=12)


def greedy_tokens(
    engine: TransformersEngine, tokenizer: PreTrainedTokenizerFast, task_requests: TaskRequests
) -> list[list[int]]:
    results = engine.generate(task_requests(tokenizer, GREEDY))
    return [result.completions[0].token_ids for result in results]


def adapter_of(model: VisionLanguageModel) -> dict[str, torch.Tensor]:
    return {name: tensor.clone() for name, tensor in trainable_state_dict(model, "adapter").items()}


def test_adapter_update_changes_outputs_and_the_version(
    tiny_model: ModelFactory, tokenizer: PreTrainedTokenizerFast, task_requests: TaskRequests
) -> None:
    engine = TransformersEngine(tiny_model(0), tokenizer)
    before = greedy_tokens(engine, tokenizer, task_requests)
    engine.load_weights(adapter_of(tiny_model(1)), policy_version=1)
    assert engine.policy_version == 1
    results = engine.generate(task_requests(tokenizer, GREEDY))
    assert all(result.policy_version == 1 for result in results)
    assert [r.completions[0].token_ids for r in results] != before


def test_full_state_dict_makes_the_engine_sample_like_that_model(
    tiny_model: ModelFactory, tokenizer: PreTrainedTokenizerFast, task_requests: TaskRequests
) -> None:
    source = tiny_model(2)
    engine = TransformersEngine(tiny_model(0), tokenizer)
    engine.load_weights(source.state_dict(), policy_version=4)
    reference = TransformersEngine(source, tokenizer)
    assert greedy_tokens(engine, tokenizer, task_requests) == greedy_tokens(
        reference, tokenizer, task_requests
    )
    assert engine.policy_version == 4


def test_llm_and_adapter_mode_takes_the_language_model_too(
    tiny_model: ModelFactory, tokenizer: PreTrainedTokenizerFast, task_requests: TaskRequests
) -> None:
    source = tiny_model(3)
    engine = TransformersEngine(tiny_model(0), tokenizer, weight_update_mode="llm+adapter")
    engine.load_weights(trainable_state_dict(source, "llm+adapter"), policy_version=1)
    # The vision encoders of seeds 0 and 3 differ, so images still look different to the two.
    text_requests = task_requests(tokenizer, GREEDY, with_image=False)
    reference = TransformersEngine(source, tokenizer)
    assert [r.completions[0].token_ids for r in engine.generate(text_requests)] == [
        r.completions[0].token_ids for r in reference.generate(text_requests)
    ]
    with pytest.raises(ValueError, match="llm\\+adapter"):
        engine.load_weights(adapter_of(source), policy_version=2)


def corrupt(state: dict[str, torch.Tensor], how: str) -> dict[str, torch.Tensor]:
    name = "adapter.input_projection.weight"
    if how == "missing key":
        del state[name]
    elif how == "extra key":
        state["adapter.unknown.weight"] = torch.zeros(1)
    elif how == "wrong shape":
        state[name] = torch.zeros(3, 3)
    elif how == "nan":
        state[name] = torch.full_like(state[name], float("nan"))
    return state


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("missing key", "missing \\['adapter.input_projection.weight'\\]"),
        ("extra key", "extra \\['adapter.unknown.weight'\\]"),
        ("wrong shape", "adapter.input_projection.weight: got \\(3, 3\\)"),
        ("nan", "NaN"),
    ],
)
def test_a_bad_update_raises_and_leaves_weights_and_version_alone(
    tiny_model: ModelFactory, tokenizer: PreTrainedTokenizerFast, how: str, message: str
) -> None:
    model = tiny_model(0)
    engine = TransformersEngine(model, tokenizer)
    before = adapter_of(model)
    # adapter.norm.* come before the corrupted tensor in load order: a loader that checked while
    # copying would already have changed them.
    update = corrupt(adapter_of(tiny_model(1)), how)
    with pytest.raises(ValueError, match=message):
        engine.load_weights(update, policy_version=1)
    assert engine.policy_version == 0
    for name, tensor in adapter_of(model).items():
        assert torch.equal(tensor, before[name])


def test_an_older_version_is_refused_and_the_same_one_reloads(
    tiny_model: ModelFactory, tokenizer: PreTrainedTokenizerFast
) -> None:
    engine = TransformersEngine(tiny_model(0), tokenizer, policy_version=5)
    with pytest.raises(ValueError, match="older than the loaded 5"):
        engine.load_weights(adapter_of(tiny_model(1)), policy_version=4)
    engine.load_weights(adapter_of(tiny_model(1)), policy_version=5)
    assert engine.policy_version == 5


def test_a_reload_waits_for_the_running_generate(
    tiny_model: ModelFactory,
    tokenizer: PreTrainedTokenizerFast,
    task_requests: TaskRequests,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = tiny_model(0)
    engine = TransformersEngine(model, tokenizer)
    update = adapter_of(tiny_model(1))
    reloader = threading.Thread(target=engine.load_weights, args=(update, 1))
    blocked_during_generate: list[bool] = []
    forward = model.language_model.forward

    def forward_that_starts_a_reload(*args: Any, **kwargs: Any) -> Any:
        if not blocked_during_generate:
            reloader.start()
            reloader.join(timeout=0.2)
            blocked_during_generate.append(reloader.is_alive())
        return forward(*args, **kwargs)

    monkeypatch.setattr(model.language_model, "forward", forward_that_starts_a_reload)
    results = engine.generate(task_requests(tokenizer, GREEDY))
    reloader.join(timeout=30)
    assert blocked_during_generate == [True]
    assert all(result.policy_version == 0 for result in results)
    assert engine.policy_version == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"prompt_token_ids": [1, 4, 17]}, "1 image placeholder tokens, the model needs 16"),
        ({"pixel_values": None}, "image placeholders but no pixel_values"),
        ({"pixel_values": torch.zeros(3, 16, 16)}, "pixel_values \\(3, 16, 16\\)"),
        ({"prompt_token_ids": [1] + [4] * 16 + [114]}, "below 114"),
        ({"sampling": SamplingOptions(max_new_tokens=500)}, "the model handles 512"),
    ],
)
def test_requests_the_model_cannot_take_raise_value_error(
    tiny_model: ModelFactory,
    tokenizer: PreTrainedTokenizerFast,
    task_requests: TaskRequests,
    change: dict[str, Any],
    message: str,
) -> None:
    request = task_requests(tokenizer, GREEDY, count=1)[0]
    fields = {
        "request_id": "bad",
        "prompt_token_ids": request.prompt_token_ids,
        "pixel_values": request.pixel_values,
        "sampling": request.sampling,
    }
    bad = GenerationRequest(**(fields | change))
    with pytest.raises(ValueError, match=message):
        TransformersEngine(tiny_model(0), tokenizer).generate([request, bad])


def test_empty_batches_duplicate_ids_and_closed_engines_are_refused(
    tiny_model: ModelFactory, tokenizer: PreTrainedTokenizerFast, task_requests: TaskRequests
) -> None:
    engine = TransformersEngine(tiny_model(0), tokenizer)
    request = task_requests(tokenizer, GREEDY, count=1)[0]
    with pytest.raises(ValueError, match="at least one request"):
        engine.generate([])
    with pytest.raises(ValueError, match="unique"):
        engine.generate([request, request])
    engine.close()
    with pytest.raises(RuntimeError, match="closed"):
        engine.generate([request])
