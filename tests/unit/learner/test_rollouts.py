"""Rollout scoring: eq. 7 without a reward model, deterministic ids, the payload the steps take."""

from collections.abc import Callable

import pytest
import torch
from transformers import PreTrainedTokenizerFast

from hybridrl.config.rewards import HybridRewardWeights
from hybridrl.engines.base import Completion, GenerationResult, SamplingOptions
from hybridrl.engines.cpu import TransformersEngine
from hybridrl.learner.rollouts import sample_groups, score_group, tiny_model_config
from hybridrl.models.vlm import VisionLanguageModel
from hybridrl.tasks.visual_reasoning import generate_prompts


def test_each_completion_is_scored_rule_plus_weighted_format_with_group_ids() -> None:
    prompt = generate_prompts(1, seed=0, kinds=["colour"])[0]
    texts = [
        f"<think>x</think> \\boxed{{{prompt.answer}}}",  # right, formatted: 1 + 0.5
        "<think>x</think> \\boxed{Z}",  # wrong, formatted: 0 + 0.5
        f"\\boxed{{{prompt.answer}}}",  # right, no template: 1 + 0
    ]
    result = GenerationResult(
        prompt.prompt_id,
        [1, 4, 4],
        [Completion([7, 8], [-0.1, -0.2], "stop", text) for text in texts],
        policy_version=3,
    )
    pixels = torch.from_numpy(prompt.pixel_values())
    group = score_group(prompt, pixels, result, HybridRewardWeights(format=0.5))
    assert [response.reward for response in group] == [1.5, 0.5, 1.0]
    assert [response.payload.reward.rule for response in group] == [1.0, 0.0, 1.0]
    assert [response.sample_id for response in group] == [
        f"{prompt.prompt_id}/v3/{index}" for index in range(3)
    ]
    assert {response.group_id for response in group} == {f"{prompt.prompt_id}/v3"}
    payload = group[0].payload
    assert payload.prompt_token_ids == [1, 4, 4]
    assert payload.response_token_ids == [7, 8]
    assert payload.behaviour_logprobs == [-0.1, -0.2]
    assert payload.pixel_values is pixels


def test_sampling_is_reproducible_for_the_same_seed(
    tiny_model: Callable[[int], VisionLanguageModel], tokenizer: PreTrainedTokenizerFast
) -> None:
    engine = TransformersEngine(tiny_model(0), tokenizer, seed=0)
    prompts = generate_prompts(2, seed=4)
    sampling = SamplingOptions(n=3, temperature=1.0, max_new_tokens=5)

    def draw(seed: tuple[int, ...]) -> list[list[int]]:
        groups = sample_groups(
            engine,
            tokenizer,
            prompts,
            num_image_tokens=16,
            sampling=sampling,
            seed=seed,
            weights=HybridRewardWeights(),
        )
        assert [len(group) for group in groups] == [3, 3]
        return [r.payload.response_token_ids for group in groups for r in group]

    assert draw((0, 0, 1)) == draw((0, 0, 1))
    assert draw((0, 0, 1)) != draw((0, 0, 2))


def test_tiny_model_config_changes_only_the_language_initialisation(
    tokenizer: PreTrainedTokenizerFast,
) -> None:
    config = tiny_model_config(tokenizer, 0.2)
    assert config.language_config["initializer_range"] == 0.2
    assert config.language_config["hidden_size"] == 64
    assert config.num_image_tokens == 16


def test_no_prompts_raise_value_error(
    tiny_model: Callable[[int], VisionLanguageModel], tokenizer: PreTrainedTokenizerFast
) -> None:
    engine = TransformersEngine(tiny_model(0), tokenizer, seed=0)
    with pytest.raises(ValueError, match="no prompts"):
        sample_groups(
            engine,
            tokenizer,
            [],
            num_image_tokens=16,
            sampling=SamplingOptions(),
            seed=(0,),
            weights=HybridRewardWeights(),
        )
