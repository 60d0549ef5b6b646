"""The composable vision-language policy of eq. (1): y = f_l(f_c(f_v(x_v)), x_t).

A vision encoder f_v (any ``transformers`` vision model: SigLIP for the tiny test model, InternViT
for R1V2), an MLP adapter f_c, and a causal language model f_l (Qwen2 config for tests, QwQ-32B
for R1V2). The learner trains it with MPO (eqs. 2-5) and GRPO (eq. 8), both of which need the
per-token log-probabilities of ``sequence_logprobs``; rollout workers receive only the weights
that ``trainable_state_dict`` returns for the run's freeze mode (the adapter, in the paper's best
setting, Table 4).

Image placeholders: the prompt holds one ``<image>`` token per visual feature, i.e.
``config.num_image_tokens`` = (image height / patch) x (image width / patch) tokens per image
(16 for the tiny model), in one contiguous run. ``pixel_values`` is ``[num_images, C, H, W]``
with the images in the order their placeholder runs appear, row by row, so a batch can mix
text-only and image prompts; one image per row is the common case ``[batch, C, H, W]``.
"""

import json
from pathlib import Path
from typing import Any, Literal, Self

import torch
from safetensors.torch import load_model, save_model
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    PreTrainedModel,
)

from hybridrl.models.vlm_config import VisionLanguageModelConfig

_SETTINGS_FILE = "vlm_config.json"


class MLPAdapter(nn.Module):
    """f_c of eq. (1): LayerNorm, Linear, GELU, Linear, from vision width to language width."""

    def __init__(self, vision_hidden_size: int, language_hidden_size: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(vision_hidden_size)
        self.input_projection = nn.Linear(vision_hidden_size, language_hidden_size)
        self.activation = nn.GELU()
        self.output_projection = nn.Linear(language_hidden_size, language_hidden_size)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``[..., vision_hidden]`` -> ``[..., language_hidden]``."""
        hidden = self.activation(self.input_projection(self.norm(features)))
        return self.output_projection(hidden)  # type: ignore[no-any-return]


def position_ids_from_attention_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that count only attended tokens, ``[batch, seq]``, so left padding shifts nothing.

    Padding positions get 0; their outputs are never read.
    """
    return (attention_mask.long().cumsum(dim=1) - 1).clamp(min=0)


def _check_binary_mask(mask: torch.Tensor, shape: torch.Size, name: str) -> None:
    if mask.shape != shape:
        raise ValueError(f"{name} has shape {tuple(mask.shape)}, expected {tuple(shape)}")
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError(f"{name} must hold only 0 and 1")


def token_logprobs_from_logits(
    logits: torch.Tensor,
    input_ids: torch.Tensor,
    response_mask: torch.Tensor,
    temperature: float = 1.0,
) -> torch.Tensor:
    """log pi(y_t | x, y_<t) for each response token: the pi_theta terms of eqs. (3)-(5) and (8).

    Args:
        logits: ``[batch, seq, vocab]``; ``logits[:, t]`` predicts ``input_ids[:, t + 1]``.
        input_ids: ``[batch, seq]``.
        response_mask: ``[batch, seq]``, 1 on response tokens. Column 0 must be 0: the first
            token has no prediction.
        temperature: the sampling temperature the logits are divided by (> 0).

    Returns:
        ``[batch, seq]`` float32, aligned with ``input_ids``: entry t is the log-probability of
        ``input_ids[:, t]``, and 0 where ``response_mask`` is 0.
    """
    if logits.dim() != 3 or logits.shape[:2] != input_ids.shape:
        raise ValueError(f"logits {tuple(logits.shape)} do not match input_ids {input_ids.shape}")
    _check_binary_mask(response_mask, input_ids.shape, "response_mask")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if bool(response_mask[:, 0].any()):
        raise ValueError("response_mask[:, 0] must be 0: the first token has no prediction")
    # float32 before log_softmax: bf16 log-probs are too coarse for the ratios of eq. (8).
    log_probs = torch.log_softmax(logits[:, :-1].float() / temperature, dim=-1)
    next_token_log_probs = log_probs.gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    aligned = nn.functional.pad(next_token_log_probs, (1, 0))
    return torch.where(response_mask.bool(), aligned, torch.zeros_like(aligned))


class VisionLanguageModel(nn.Module):
    """f_l(f_c(f_v(x_v)), x_t): vision encoder, MLP adapter and causal language model."""

    def __init__(
        self,
        config: VisionLanguageModelConfig,
        *,
        vision_encoder: PreTrainedModel | None = None,
        language_model: PreTrainedModel | None = None,
    ) -> None:
        """Build the components from ``config``, or wrap already loaded ones."""
        super().__init__()
        self.config = config
        if vision_encoder is None:
            vision_config = AutoConfig.for_model(**config.vision_config)
            vision_encoder = AutoModel.from_config(  # type: ignore[no-untyped-call]
                vision_config, attn_implementation=config.attn_implementation
            )
        if language_model is None:
            language_config = AutoConfig.for_model(**config.language_config)
            language_model = AutoModelForCausalLM.from_config(  # type: ignore[no-untyped-call]
                language_config, attn_implementation=config.attn_implementation
            )
        self.vision_encoder: PreTrainedModel = vision_encoder
        self.adapter = MLPAdapter(
            int(config.vision_config["hidden_size"]), int(config.language_config["hidden_size"])
        )
        self.language_model: PreTrainedModel = language_model

    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """f_c(f_v(x_v)): ``[num_images, C, H, W]`` -> ``[num_images, image_tokens, hidden]``."""
        if pixel_values.dim() != 4 or tuple(pixel_values.shape[-2:]) != self.config.image_size:
            raise ValueError(
                f"pixel_values must be [num_images, C, {self.config.image_size[0]}, "
                f"{self.config.image_size[1]}], got {tuple(pixel_values.shape)}"
            )
        if not bool(torch.isfinite(pixel_values).all()):
            raise ValueError("pixel_values holds NaN or infinity")
        vision_dtype = next(self.vision_encoder.parameters()).dtype
        features = self.vision_encoder(pixel_values=pixel_values.to(vision_dtype)).last_hidden_state
        if self.config.vision_feature_select == "drop_first":
            features = features[:, 1:]
        if features.shape[1] != self.config.num_image_tokens:
            raise ValueError(
                f"vision encoder yields {features.shape[1]} features per image, "
                f"config expects {self.config.num_image_tokens}"
            )
        return self.adapter(features.to(self.adapter.norm.weight.dtype))  # type: ignore[no-any-return]

    def embed_inputs(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        pixel_values: torch.Tensor | None,
        image_token_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Token embeddings ``[batch, seq, hidden]`` with image features at the placeholders.

        ``image_token_mask`` ``[batch, seq]`` limits which ``<image>`` tokens take image features
        (the prompt's); without it every one does. A policy may *generate* the placeholder token:
        in a response it is ordinary text, as vLLM treats it, so callers that score responses
        pass ``~response_mask`` here.
        """
        if input_ids.dim() != 2 or input_ids.numel() == 0 or input_ids.is_floating_point():
            raise ValueError(
                "input_ids must be a non-empty integer [batch, seq] tensor, got "
                f"{input_ids.dtype} {tuple(input_ids.shape)}"
            )
        _check_binary_mask(attention_mask, input_ids.shape, "attention_mask")
        embedding_layer = self.language_model.get_input_embeddings()
        vocab_size = int(self.language_model.config.vocab_size)
        if int(input_ids.min()) < 0 or int(input_ids.max()) >= vocab_size:
            raise ValueError(f"input_ids must lie in [0, {vocab_size})")
        embeddings = embedding_layer(input_ids)
        image_positions = input_ids == self.config.image_token_id
        if image_token_mask is not None:
            _check_binary_mask(image_token_mask, input_ids.shape, "image_token_mask")
            image_positions = image_positions & image_token_mask.bool()
        placeholders_per_row = image_positions.sum(dim=1)
        if pixel_values is None:
            if bool(placeholders_per_row.any()):
                raise ValueError("input_ids hold image placeholders but pixel_values is None")
            return embeddings  # type: ignore[no-any-return]
        features = self.encode_images(pixel_values)
        num_images, tokens_per_image, _ = features.shape
        if int(placeholders_per_row.sum()) != num_images * tokens_per_image or bool(
            (placeholders_per_row % tokens_per_image).any()
        ):
            raise ValueError(
                f"{num_images} image(s) need {tokens_per_image} placeholder tokens each; "
                f"rows hold {placeholders_per_row.tolist()}"
            )
        return embeddings.masked_scatter(  # type: ignore[no-any-return]
            image_positions.unsqueeze(-1), features.to(embeddings.dtype)
        )

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        image_token_mask: torch.Tensor | None = None,
    ) -> Any:
        """The language model's ``CausalLMOutputWithPast`` (``logits`` ``[batch, seq, vocab]``;
        ``loss`` when ``labels`` ``[batch, seq]`` is given, -100 marking ignored positions).
        ``image_token_mask`` as in :meth:`embed_inputs`."""
        embeddings = self.embed_inputs(input_ids, attention_mask, pixel_values, image_token_mask)
        return self.language_model(
            inputs_embeds=embeddings,
            attention_mask=attention_mask,
            position_ids=position_ids_from_attention_mask(attention_mask),
            labels=labels,
            use_cache=False,
        )

    def last_hidden_states(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        pixel_values: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Final normed hidden states ``[batch, seq, hidden]``, without the vocabulary head."""
        embeddings = self.embed_inputs(input_ids, attention_mask, pixel_values)
        outputs = self.language_model.base_model(
            inputs_embeds=embeddings,
            attention_mask=attention_mask,
            position_ids=position_ids_from_attention_mask(attention_mask),
            use_cache=False,
        )
        return outputs.last_hidden_state  # type: ignore[no-any-return]

    def sequence_logprobs(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        pixel_values: torch.Tensor | None,
        response_mask: torch.Tensor,
        temperature: float = 1.0,
    ) -> torch.Tensor:
        """Per-token log-probs of the response, ``[batch, seq]`` float32, 0 off the response.

        See ``token_logprobs_from_logits`` for the alignment. Response tokens must be attended;
        an ``<image>`` token the policy generated is text, not an image slot.
        """
        _check_binary_mask(response_mask, input_ids.shape, "response_mask")
        if bool((response_mask.bool() & ~attention_mask.bool()).any()):
            raise ValueError("response_mask marks tokens that attention_mask pads out")
        logits = self.forward(
            input_ids, attention_mask, pixel_values, image_token_mask=~response_mask.bool()
        ).logits
        return token_logprobs_from_logits(logits, input_ids, response_mask, temperature)

    def save_pretrained(self, directory: str | Path) -> None:
        """Write ``vlm_config.json``, ``vision_encoder/`` and ``language_model/`` (each a
        ``transformers`` config.json + safetensors) and ``adapter.safetensors``."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        self.vision_encoder.save_pretrained(path / "vision_encoder")
        self.language_model.save_pretrained(path / "language_model")
        save_model(self.adapter, str(path / "adapter.safetensors"))
        settings = self.config.model_dump(exclude={"vision_config", "language_config"})
        (path / _SETTINGS_FILE).write_text(json.dumps(settings, indent=2, sort_keys=True))

    @classmethod
    def from_pretrained(cls, directory: str | Path, dtype: torch.dtype | None = None) -> Self:
        """Load what ``save_pretrained`` wrote, from local files only."""
        path = Path(directory)
        settings = json.loads((path / _SETTINGS_FILE).read_text())
        return cls.from_components(
            path / "vision_encoder",
            path / "language_model",
            adapter_path=path / "adapter.safetensors",
            dtype=dtype,
            **settings,
        )

    @classmethod
    def from_components(
        cls,
        vision_path: str | Path,
        language_path: str | Path,
        *,
        image_token_id: int,
        vision_feature_select: Literal["all", "drop_first"] = "all",
        attn_implementation: Literal["eager", "sdpa"] = "sdpa",
        adapter_path: str | Path | None = None,
        dtype: torch.dtype | None = None,
    ) -> Self:
        """Assemble a real model from local ``transformers`` checkpoints (e.g. InternViT-6B with
        ``vision_feature_select="drop_first"`` and QwQ-32B); the adapter is new unless
        ``adapter_path`` names saved adapter weights. Returned in eval mode, as transformers
        returns its models."""
        load_options: dict[str, Any] = {
            "local_files_only": True,
            "attn_implementation": attn_implementation,
        }
        if dtype is not None:
            load_options["dtype"] = dtype
        vision_encoder = AutoModel.from_pretrained(str(vision_path), **load_options)
        language_model = AutoModelForCausalLM.from_pretrained(str(language_path), **load_options)
        config = VisionLanguageModelConfig(
            vision_config=vision_encoder.config.to_dict(),
            language_config=language_model.config.to_dict(),
            image_token_id=image_token_id,
            vision_feature_select=vision_feature_select,
            attn_implementation=attn_implementation,
        )
        model = cls(config, vision_encoder=vision_encoder, language_model=language_model)
        model.adapter.to(next(language_model.parameters()).dtype)
        if adapter_path is not None:
            load_model(model.adapter, str(adapter_path))
        return model.eval()
