"""Shared fixtures for the learner tests: the tiny policy, its tokenizer, one torch thread."""

from collections.abc import Callable, Iterator

import pytest
import torch
from transformers import PreTrainedTokenizerFast

from hybridrl.models.tokenizer import build_tokenizer
from hybridrl.models.vlm import VisionLanguageModel
from hybridrl.models.vlm_config import VisionLanguageModelConfig


@pytest.fixture(autouse=True)
def single_torch_thread() -> Iterator[None]:
    """One intra-op thread, restored afterwards: the tiny model gains nothing from two."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tokenizer() -> PreTrainedTokenizerFast:
    return build_tokenizer()


@pytest.fixture
def tiny_model(tokenizer: PreTrainedTokenizerFast) -> Callable[[int], VisionLanguageModel]:
    """Builds a fresh tiny policy (eval mode) from a seed."""

    def build(seed: int) -> VisionLanguageModel:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return VisionLanguageModel(VisionLanguageModelConfig.tiny(tokenizer)).eval()

    return build
