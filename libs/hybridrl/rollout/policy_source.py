"""Where a rollout worker's policy comes from: the tiny test model, or a saved model directory.

Tests and the local run use the tiny model built in code from a seed (every worker of a run
then starts from the same weights, as the learner does). A cluster run points at a directory
written by ``VisionLanguageModel.save_pretrained``, local or in the object store
(``s3://bucket/models/r1v2/``); an object-store directory is first copied to a local cache.
The tokenizer is the built-in character tokenizer (``"builtin"``) or one saved with
``save_pretrained``, by default in the model directory's ``tokenizer/``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from hybridrl.config.object_store import ObjectStoreSettings
from hybridrl.models.tokenizer import build_tokenizer
from hybridrl.models.vlm import VisionLanguageModel
from hybridrl.models.vlm_config import VisionLanguageModelConfig
from hybridrl.store.uris import open_object_store

BUILTIN_TOKENIZER = "builtin"
TOKENIZER_SUBDIRECTORY = "tokenizer"
_COMPLETE_MARKER = ".download-complete"


@dataclass(frozen=True, eq=False)
class LoadedPolicy:
    """A policy ready for an engine: the model, its tokenizer and its configuration."""

    model: VisionLanguageModel
    tokenizer: PreTrainedTokenizerBase
    config: VisionLanguageModelConfig


def tiny_policy(seed: int) -> LoadedPolicy:
    """The tiny CPU model (``VisionLanguageModelConfig.tiny``) initialised from ``seed``."""
    tokenizer = build_tokenizer()
    config = VisionLanguageModelConfig.tiny(tokenizer)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = VisionLanguageModel(config).eval()
    return LoadedPolicy(model, tokenizer, config)


def load_tokenizer(tokenizer: str, model_directory: Path | None = None) -> PreTrainedTokenizerBase:
    """``"builtin"``, a local tokenizer directory, or ``""``: ``<model_directory>/tokenizer``."""
    if tokenizer == BUILTIN_TOKENIZER:
        return build_tokenizer()
    if tokenizer:
        path = Path(tokenizer)
    elif model_directory is not None:
        path = model_directory / TOKENIZER_SUBDIRECTORY
    else:
        raise ValueError("no tokenizer: name a directory or 'builtin'")
    if not path.is_dir():
        raise ValueError(f"tokenizer directory {path} does not exist")
    loaded: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(
        str(path), local_files_only=True
    )
    return loaded


def policy_config_from_directory(directory: Path) -> VisionLanguageModelConfig:
    """The configuration of a saved model, read from its JSON files without the weights.

    What a vLLM worker needs to lay out prompts (image size, placeholders per image).
    """
    settings = json.loads((directory / "vlm_config.json").read_text())
    vision = json.loads((directory / "vision_encoder" / "config.json").read_text())
    language = json.loads((directory / "language_model" / "config.json").read_text())
    return VisionLanguageModelConfig(vision_config=vision, language_config=language, **settings)


def policy_from_directory(
    directory: Path, tokenizer: str = "", dtype: torch.dtype | None = None
) -> LoadedPolicy:
    """The model ``save_pretrained`` wrote to ``directory`` and its tokenizer."""
    if not directory.is_dir():
        raise ValueError(f"model directory {directory} does not exist")
    model = VisionLanguageModel.from_pretrained(directory, dtype=dtype)
    return LoadedPolicy(model, load_tokenizer(tokenizer, directory), model.config)


def local_model_directory(
    source: str, cache_dir: Path, object_store: ObjectStoreSettings | None = None
) -> Path:
    """A local directory holding the model at ``source`` (a path, ``file://`` or ``s3://``).

    An object-store directory is copied once into ``cache_dir`` (a subdirectory named by the
    URI's hash); a marker written last makes an interrupted copy start over.
    """
    if not source.startswith("s3://"):
        return Path(source.removeprefix("file://")).absolute()
    target = cache_dir / hashlib.sha256(source.encode()).hexdigest()[:16]
    if (target / _COMPLETE_MARKER).exists():
        return target
    store = open_object_store(source.rstrip("/"), object_store)
    objects = store.list()
    if not objects:
        raise ValueError(f"no model files under {source}")
    for info in objects:
        store.get_file(info.key, target.joinpath(*info.key.split("/")))
    (target / _COMPLETE_MARKER).write_text(source)
    return target
