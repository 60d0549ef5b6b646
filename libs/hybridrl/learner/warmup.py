"""The supervised warm-up that stands in for pretraining before the RL phases.

The paper starts MPO and GRPO from a pretrained reasoning model; the tiny test model starts
from random weights and would never emit the R1 template by chance. So before RL it imitates
worked solutions (``reference_response``: ``<think>hint</think> \\boxed{answer}`` then eos) for
a fixed number of steps, with next-token cross-entropy on the response tokens only.

What the image shows during the warm-up decides what it teaches (``WarmupConfig.images``):
with ``"blank"`` every image is the empty background, so the model learns the template, the
phrases and the prior over answers but cannot learn which answer a picture calls for; its
held-out accuracy stays near chance, and any later gain is the RL phases' own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from hybridrl.config.learner import WarmupConfig, WarmupImages
from hybridrl.learner.collate import collate_responses
from hybridrl.learner.steps import token_logprobs
from hybridrl.models.freezing import apply_freeze_mode
from hybridrl.models.prompting import encode_prompt
from hybridrl.models.vlm import VisionLanguageModel
from hybridrl.tasks.visual_reasoning import VisualPrompt, reference_response

__all__ = ["ReferenceExample", "WarmupResult", "reference_examples", "supervised_warmup"]


@dataclass(frozen=True, eq=False)
class ReferenceExample:
    """A prompt and its worked solution as token ids, with the image the model is shown.

    Satisfies ``hybridrl.learner.collate.ResponseTokens``; ``behaviour_logprobs`` are zeros
    because nothing sampled these tokens.
    """

    prompt_token_ids: list[int]
    response_token_ids: list[int]
    behaviour_logprobs: list[float]
    pixel_values: torch.Tensor | None


@dataclass(frozen=True)
class WarmupResult:
    """``losses``: the mean response-token cross-entropy (nats) of each step, in order."""

    losses: list[float]


def _shown_image(prompt: VisualPrompt, other: VisualPrompt, images: WarmupImages) -> torch.Tensor:
    if images == "true":
        shown = prompt
    elif images == "shuffled":
        shown = other
    else:
        # The task's own normalisation of an all-background image: no shape, no colour, no digit.
        shown = dataclasses.replace(prompt, image=np.zeros_like(prompt.image))
    return torch.from_numpy(shown.pixel_values())


def reference_examples(
    prompts: Sequence[VisualPrompt],
    tokenizer: PreTrainedTokenizerBase,
    num_image_tokens: int,
    images: WarmupImages,
    rng: np.random.Generator,
) -> list[ReferenceExample]:
    """One ``ReferenceExample`` per prompt: ``reference_response`` followed by eos.

    With ``images="shuffled"`` each prompt is shown the image of another prompt of
    ``prompts`` (a random derangement drawn from ``rng``; a single prompt keeps its own).
    """
    if not prompts:
        raise ValueError("no prompts for the warm-up")
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no eos token")
    order = np.arange(len(prompts))
    if images == "shuffled" and len(prompts) > 1:
        # One random cycle through all prompts: nobody is shown their own image.
        cycle = rng.permutation(len(prompts))
        order[cycle] = np.roll(cycle, -1)
    examples = []
    for prompt, other_index in zip(prompts, order.tolist(), strict=True):
        response = tokenizer.encode(reference_response(prompt), add_special_tokens=False)
        response.append(int(tokenizer.eos_token_id))
        examples.append(
            ReferenceExample(
                prompt_token_ids=encode_prompt(tokenizer, prompt.question, True, num_image_tokens),
                response_token_ids=[int(token) for token in response],
                behaviour_logprobs=[0.0] * len(response),
                pixel_values=_shown_image(prompt, prompts[other_index], images),
            )
        )
    return examples


def supervised_warmup(
    model: VisionLanguageModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[VisualPrompt],
    config: WarmupConfig,
    *,
    seed: int = 0,
) -> WarmupResult:
    """Train ``model`` in place on reference responses for ``config.steps`` AdamW steps.

    Applies ``config.freeze_mode`` first (the caller sets the RL freeze mode afterwards). Step
    s trains on the ``config.batch_size`` prompts that follow step s - 1's, cycling through
    ``prompts``; ``seed`` fixes the shuffled images.
    """
    if config.steps == 0:
        return WarmupResult(losses=[])
    apply_freeze_mode(model, config.freeze_mode)
    parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate)
    rng = np.random.default_rng(seed)
    num_image_tokens = model.config.num_image_tokens
    pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
    model.train()
    losses: list[float] = []
    for step in range(config.steps):
        start = (step * config.batch_size) % len(prompts)
        chosen = [prompts[(start + i) % len(prompts)] for i in range(config.batch_size)]
        examples = reference_examples(chosen, tokenizer, num_image_tokens, config.images, rng)
        tokens = collate_responses(examples, pad_id)
        logprobs = token_logprobs(model, tokens)
        loss = -logprobs.sum() / tokens.response_mask.sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        losses.append(float(loss.detach()))
    model.eval()
    return WarmupResult(losses=losses)
