"""The supervised warm-up: reference examples, what the image shows, a falling loss."""

from collections.abc import Callable

import numpy as np
import pytest
import torch
from transformers import PreTrainedTokenizerFast

from hybridrl.config.learner import WarmupConfig
from hybridrl.learner.warmup import reference_examples, supervised_warmup
from hybridrl.models.prompting import decode_response
from hybridrl.models.vlm import VisionLanguageModel
from hybridrl.tasks.visual_reasoning import generate_prompts, reference_response


def test_reference_example_is_the_prompt_then_the_worked_solution_and_eos(
    tokenizer: PreTrainedTokenizerFast,
) -> None:
    prompt = generate_prompts(1, seed=0, kinds=["colour"])[0]
    example = reference_examples([prompt], tokenizer, 16, "true", np.random.default_rng(0))[0]
    assert example.response_token_ids[-1] == tokenizer.eos_token_id
    assert decode_response(tokenizer, example.response_token_ids) == reference_response(prompt)
    assert example.prompt_token_ids[1:17] == [tokenizer.convert_tokens_to_ids("<image>")] * 16
    assert len(example.behaviour_logprobs) == len(example.response_token_ids)
    assert example.pixel_values is not None
    np.testing.assert_array_equal(example.pixel_values.numpy(), prompt.pixel_values())


def test_blank_images_show_only_the_background(tokenizer: PreTrainedTokenizerFast) -> None:
    prompts = generate_prompts(3, seed=1)
    examples = reference_examples(prompts, tokenizer, 16, "blank", np.random.default_rng(0))
    for example in examples:
        assert example.pixel_values is not None
        assert torch.equal(example.pixel_values, torch.full((3, 32, 32), -1.0))


def test_shuffled_images_never_show_a_prompt_its_own_image(
    tokenizer: PreTrainedTokenizerFast,
) -> None:
    prompts = generate_prompts(6, seed=2, kinds=["counting"])
    examples = reference_examples(prompts, tokenizer, 16, "shuffled", np.random.default_rng(4))
    own = [torch.from_numpy(p.pixel_values()) for p in prompts]
    shown = [e.pixel_values for e in examples]
    assert all(s is not None for s in shown)
    for index, image in enumerate(shown):
        assert image is not None
        matches = [j for j, candidate in enumerate(own) if torch.equal(candidate, image)]
        assert matches
        assert index not in matches
    assert sorted(j for image in shown for j, c in enumerate(own) if torch.equal(c, image)) == (
        list(range(6))
    )


def test_warmup_lowers_the_cross_entropy_and_trains_only_its_freeze_mode(
    tiny_model: Callable[[int], VisionLanguageModel], tokenizer: PreTrainedTokenizerFast
) -> None:
    model = tiny_model(0)
    vision_before = [p.detach().clone() for p in model.vision_encoder.parameters()]
    config = WarmupConfig(steps=6, batch_size=4, learning_rate=3e-3, freeze_mode="llm+adapter")
    result = supervised_warmup(model, tokenizer, generate_prompts(8, seed=5), config, seed=0)
    assert len(result.losses) == 6
    assert result.losses[-1] < result.losses[0] - 1.0
    for before, after in zip(vision_before, model.vision_encoder.parameters(), strict=True):
        assert torch.equal(before, after)


def test_zero_steps_leave_the_model_alone(
    tiny_model: Callable[[int], VisionLanguageModel], tokenizer: PreTrainedTokenizerFast
) -> None:
    model = tiny_model(0)
    before = [p.detach().clone() for p in model.parameters()]
    result = supervised_warmup(model, tokenizer, generate_prompts(2, seed=5), WarmupConfig(steps=0))
    assert result.losses == []
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_no_prompts_raise_value_error(tokenizer: PreTrainedTokenizerFast) -> None:
    with pytest.raises(ValueError, match="no prompts"):
        reference_examples([], tokenizer, 16, "blank", np.random.default_rng(0))
