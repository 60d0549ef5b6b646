"""Shared fixtures for the engine tests: the tiny policy, its tokenizer and task requests."""

from collections.abc import Callable, Iterator

import pytest
import torch
from transformers import PreTrainedTokenizerFast

from hybridrl.engines.base import GenerationRequest, SamplingOptions
from hybridrl.models.prompting import encode_prompt
from hybridrl.models.tokenizer import build_tokenizer
from hybridrl.models.vlm import VisionLanguageModel
from hybridrl.models.vlm_config import VisionLanguageModelConfig
from hybridrl.tasks.visual_reasoning import generate_prompts

IMAGE_TOKENS = 16
TaskRequests = Callable[..., list[GenerationRequest]]


def build_tiny_model(seed: int) -> VisionLanguageModel:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return VisionLanguageModel(VisionLanguageModelConfig.tiny(build_tokenizer())).eval()


def build_task_requests(
    tokenizer: PreTrainedTokenizerFast,
    sampling: SamplingOptions,
    *,
    count: int = 3,
    with_image: bool = True,
) -> list[GenerationRequest]:
    """Requests for the first ``count`` synthetic task prompts (questions of different lengths,
    so a batch is left-padded); the i-th request's seed is ``sampling.seed + i``."""
    requests = []
    for index, prompt in enumerate(generate_prompts(count, seed=0)):
        seed = None if sampling.seed is None else sampling.seed + index
        requests.append(
            GenerationRequest(
                request_id=prompt.prompt_id,
                prompt_token_ids=encode_prompt(
                    tokenizer, prompt.question, with_image, IMAGE_TOKENS
                ),
                pixel_values=torch.from_numpy(prompt.pixel_values()) if with_image else None,
                sampling=SamplingOptions(
                    n=sampling.n,
                    temperature=sampling.temperature,
                    top_p=sampling.top_p,
                    max_new_tokens=sampling.max_new_tokens,
                    seed=seed,
                ),
            )
        )
    return requests


@pytest.fixture(scope="session")
def tokenizer() -> PreTrainedTokenizerFast:
    return build_tokenizer()


@pytest.fixture(scope="module")
def model() -> VisionLanguageModel:
    """The tiny policy (seed 0), shared by the tests that never change its weights."""
    return build_tiny_model(0)


@pytest.fixture
def tiny_model() -> Callable[[int], VisionLanguageModel]:
    """Builds a fresh tiny policy from a seed, for tests that load weights into it."""
    return build_tiny_model


@pytest.fixture
def task_requests() -> TaskRequests:
    """``task_requests(tokenizer, sampling, count=3, with_image=True)``: see
    ``build_task_requests``."""
    return build_task_requests


@pytest.fixture(autouse=True)
def single_torch_thread() -> Iterator[None]:
    """Run the engine tests on one intra-op thread, then restore the setting.

    The tiny model's matrices are so small that a second thread costs more in synchronisation
    than it saves, and on a loaded 2-core machine OpenMP's waiting threads make a forward pass
    up to 40 times slower.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
