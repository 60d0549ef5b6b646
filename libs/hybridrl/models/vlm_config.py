"""The configuration of the vision-language model of eq. (1) and its freeze modes.

``VisionLanguageModelConfig`` holds the two ``transformers`` config dicts (vision encoder f_v and
language model f_l) and the glue; ``FreezeMode`` names which components a run trains (Table 4:
adapter-only is the paper's best setting).
"""

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from transformers import PreTrainedTokenizerFast

from hybridrl.models.tokenizer import IMAGE_TOKEN, build_tokenizer

FreezeMode = Literal["adapter", "llm+adapter", "adapter+vision", "full"]
COMPONENT_NAMES: tuple[str, ...] = ("vision_encoder", "adapter", "language_model")
FREEZE_MODE_COMPONENTS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "adapter": frozenset({"adapter"}),
        "llm+adapter": frozenset({"adapter", "language_model"}),
        "adapter+vision": frozenset({"vision_encoder", "adapter"}),
        "full": frozenset(COMPONENT_NAMES),
    }
)


def height_width(value: Any, name: str) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    if isinstance(value, list | tuple) and len(value) == 2:
        return int(value[0]), int(value[1])
    raise ValueError(f"vision_config[{name!r}] must be an int or a pair, got {value!r}")


class VisionLanguageModelConfig(BaseModel):
    """What builds a ``VisionLanguageModel``: two ``transformers`` config dicts and the glue.

    ``vision_config`` and ``language_config`` are keyword arguments of
    ``transformers.AutoConfig.for_model`` and must hold ``"model_type"``. ``vision_feature_select``
    is ``"drop_first"`` for encoders that prepend a CLS token (InternViT), ``"all"`` otherwise.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    vision_config: dict[str, Any]
    language_config: dict[str, Any]
    image_token_id: int = Field(ge=0)
    vision_feature_select: Literal["all", "drop_first"] = "all"
    attn_implementation: Literal["eager", "sdpa"] = "sdpa"

    @model_validator(mode="after")
    def _check_components(self) -> Self:
        for name, config in (("vision", self.vision_config), ("language", self.language_config)):
            if "model_type" not in config or "hidden_size" not in config:
                raise ValueError(f"{name}_config needs 'model_type' and 'hidden_size'")
        if self.image_token_id >= int(self.language_config.get("vocab_size", 0)):
            raise ValueError("image_token_id must be below language_config['vocab_size']")
        image_h, image_w = self.image_size
        patch_h, patch_w = height_width(self.vision_config.get("patch_size"), "patch_size")
        if image_h % patch_h or image_w % patch_w:
            raise ValueError("vision image_size must be a multiple of patch_size")
        return self

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) in pixels that the vision encoder takes."""
        return height_width(self.vision_config.get("image_size"), "image_size")

    @property
    def num_image_tokens(self) -> int:
        """Placeholder tokens per image: one per patch, after the CLS token is dropped."""
        image_h, image_w = self.image_size
        patch_h, patch_w = height_width(self.vision_config.get("patch_size"), "patch_size")
        return (image_h // patch_h) * (image_w // patch_w)

    @classmethod
    def tiny(cls, tokenizer: PreTrainedTokenizerFast | None = None) -> Self:
        """A CPU-sized model: SigLIP 32x32 images in 8x8 patches (16 tokens), a 2-layer Qwen2."""
        tokenizer = build_tokenizer() if tokenizer is None else tokenizer
        vision_config = {
            "model_type": "siglip_vision_model",
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": 32,
            "patch_size": 8,
            "vision_use_head": False,
        }
        language_config = {
            "model_type": "qwen2",
            "vocab_size": len(tokenizer),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "max_position_embeddings": 512,
            "tie_word_embeddings": False,
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
        }
        image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
        if not isinstance(image_token_id, int):
            raise ValueError(f"tokenizer has no single {IMAGE_TOKEN} token")
        return cls(
            vision_config=vision_config,
            language_config=language_config,
            image_token_id=image_token_id,
        )
