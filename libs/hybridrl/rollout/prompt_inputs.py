"""From a prompt's text and image references to what the engine takes: token ids and pixels.

Both ways into a rollout worker use it: prompts read from ``hybridrl.prompts`` and the gRPC
``Generate`` calls. The layout is ``hybridrl.models.prompting.encode_prompt`` (image
placeholders first when there is an image); images are read from the ``ImageRef`` (inline
bytes, or an object-store URI through ``ObjectReader``) and normalised as the policy expects.
Anything a retry cannot fix (an empty prompt, an image that does not decode, a URI that names
no object) raises ValueError; an object store that stays unreachable raises its own error, so
the caller retries later instead of rejecting the prompt.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from PIL import Image
from transformers import PreTrainedTokenizerBase

from hybridrl.config.object_store import ObjectStoreSettings
from hybridrl.models.images import load_image_ref, pixel_values_from_image
from hybridrl.models.prompting import encode_prompt
from hybridrl.models.vlm_config import VisionLanguageModelConfig
from hybridrl.proto.v1 import common_pb2
from hybridrl.store.object_store import ObjectNotFound, ObjectStore
from hybridrl.store.uris import open_object_store, resolve

MAX_IMAGES_PER_PROMPT = 1
"""The engines place one image per prompt (``GenerationRequest.pixel_values`` is one image)."""


class ObjectReader:
    """Reads objects by URI (``s3://bucket/key``, ``file:///path``), one client per bucket."""

    def __init__(self, settings: ObjectStoreSettings | None) -> None:
        self._settings = settings
        self._buckets: dict[str, ObjectStore] = {}
        self._lock = threading.Lock()

    def __call__(self, uri: str) -> bytes:
        """The object's bytes; ``ObjectNotFound`` when there is none."""
        if uri.startswith("s3://"):
            bucket, _, key = uri.removeprefix("s3://").partition("/")
            with self._lock:
                store = self._buckets.get(bucket)
                if store is None:
                    store = open_object_store(f"s3://{bucket}", self._settings)
                    self._buckets[bucket] = store
            return store.get_bytes(key)
        store, key = resolve(uri, self._settings)
        return store.get_bytes(key)


@dataclass(frozen=True, eq=False)
class PromptInputs:
    """One prompt laid out for the engine: ``token_ids`` and ``[C, H, W]`` pixels or None."""

    token_ids: list[int]
    pixel_values: torch.Tensor | None


class PromptEncoder:
    """Lays out prompts for one policy (its tokenizer, image size and placeholder count)."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        num_image_tokens: int,
        image_size: tuple[int, int],
        fetch: Callable[[str], bytes] | None = None,
    ) -> None:
        """``fetch(uri)`` reads images given by URI; without it such images are refused."""
        if num_image_tokens < 1:
            raise ValueError(f"num_image_tokens must be >= 1, got {num_image_tokens}")
        self._tokenizer = tokenizer
        self._num_image_tokens = num_image_tokens
        self._image_size = image_size
        self._fetch = fetch

    @classmethod
    def for_model(
        cls,
        tokenizer: PreTrainedTokenizerBase,
        config: VisionLanguageModelConfig,
        fetch: Callable[[str], bytes] | None = None,
    ) -> PromptEncoder:
        """An encoder for the policy that ``config`` describes."""
        return cls(tokenizer, config.num_image_tokens, config.image_size, fetch)

    def encode(self, text: str, images: Sequence[common_pb2.ImageRef]) -> PromptInputs:
        """Token ids and pixel values of one prompt; ValueError for what no retry fixes."""
        if not isinstance(text, str):
            raise ValueError(f"prompt text must be a string, got {type(text).__name__}")
        if len(images) > MAX_IMAGES_PER_PROMPT:
            raise ValueError(
                f"the policy takes at most {MAX_IMAGES_PER_PROMPT} image per prompt, "
                f"got {len(images)}"
            )
        if not text.strip() and not images:
            raise ValueError("the prompt is empty: no text and no image")
        pixel_values = None
        if images:
            pixel_values = pixel_values_from_image(self._load(images[0]), self._image_size)
        token_ids = encode_prompt(
            self._tokenizer, text, pixel_values is not None, self._num_image_tokens
        )
        return PromptInputs(token_ids, pixel_values)

    def _load(self, ref: common_pb2.ImageRef) -> Image.Image:
        fetch = self._fetch

        def read(uri: str) -> bytes:
            if fetch is None:
                raise ValueError(f"image {uri!r} is in an object store, but none is configured")
            try:
                return fetch(uri)
            except ObjectNotFound as error:
                raise ValueError(f"image {uri!r} does not exist") from error

        return load_image_ref(ref, read)
