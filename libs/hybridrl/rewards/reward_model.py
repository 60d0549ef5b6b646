"""The vision-language reward model r_theta of eq. (7), its scoring interface and its training loss.

The reward service scores each rollout with r(x, y) = r_rule + r_theta + r_format (eq. 7);
r_theta comes from a ``RewardModel``: anything with a batched ``score``. The one here is the
policy's own architecture (``hybridrl.models.vlm``) with a scalar head read at the last attended
token of prompt + response, as Skywork-VL Reward and TRL's reward models do.
``reward_model_pairwise_loss`` trains it on chosen/rejected pairs.

Input layout that ``RewardModelScorer`` builds, one row per item:
``[bos] [<image> x num_image_tokens, when an image is given] prompt "\\n" response [eos]``.
The prompt must not contain the image placeholder itself, and any placeholder text in a response
is removed, so a generated response cannot inject image features.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, Self

import numpy as np
import torch
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field
from safetensors.torch import load_model, save_model
from torch import nn
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

from hybridrl.models.images import pixel_values_from_image
from hybridrl.models.vlm import VisionLanguageModel
from hybridrl.models.vlm_config import VisionLanguageModelConfig


@dataclass(frozen=True)
class RewardModelInput:
    """One item to score. ``image`` is a PIL image (resized and normalised by the scorer) or a
    float tensor ``[channels, height, width]`` already preprocessed for the vision encoder."""

    prompt: str
    response: str
    image: Image.Image | torch.Tensor | None = None


class RewardModel(Protocol):
    """r_theta of eq. (7): one float per item, in the order given."""

    def score(self, batch: Sequence[RewardModelInput]) -> list[float]:
        """Score a non-empty batch."""
        ...


def last_token_indices(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of the last attended token of each row, ``[batch, seq]`` -> ``[batch]``.

    Works for left and right padding alike; a row without an attended token is a ValueError.
    """
    if attention_mask.dim() != 2 or attention_mask.numel() == 0:
        raise ValueError(
            f"attention_mask must be a non-empty [batch, seq], got {attention_mask.shape}"
        )
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    last = torch.where(attention_mask.bool(), positions, -1).max(dim=1).values
    if bool((last < 0).any()):
        raise ValueError("every row of attention_mask needs at least one attended token")
    return last


def pool_last_token(hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Each row's hidden state at its last attended token, ``[batch, seq, hidden]`` ->
    ``[batch, hidden]``: what a sequence-level head reads in a causal model."""
    if hidden_states.dim() != 3 or hidden_states.shape[:2] != attention_mask.shape:
        raise ValueError(
            f"hidden_states {tuple(hidden_states.shape)} do not match "
            f"attention_mask {tuple(attention_mask.shape)}"
        )
    rows = torch.arange(hidden_states.shape[0], device=hidden_states.device)
    return hidden_states[rows, last_token_indices(attention_mask)]


def reward_model_pairwise_loss(
    chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor
) -> torch.Tensor:
    """Bradley-Terry loss mean_i -log sigma(r_chosen_i - r_rejected_i), a scalar.

    The reward-model objective of InstructGPT (Ouyang et al., 2022, eq. 1), also used to train
    Skywork-VL Reward (Wang et al., 2025), the r_theta of eq. (7).

    Args:
        chosen_rewards: ``[batch]`` rewards of the preferred responses.
        rejected_rewards: ``[batch]`` rewards of the rejected responses to the same prompts.
    """
    if chosen_rewards.dim() != 1 or chosen_rewards.shape != rejected_rewards.shape:
        raise ValueError(
            f"chosen {tuple(chosen_rewards.shape)} and rejected {tuple(rejected_rewards.shape)} "
            "must be equal [batch] shapes"
        )
    if chosen_rewards.numel() == 0:
        raise ValueError("the batch is empty")
    if not bool(torch.isfinite(chosen_rewards).all() & torch.isfinite(rejected_rewards).all()):
        raise ValueError("rewards hold NaN or infinity")
    return -nn.functional.logsigmoid(chosen_rewards - rejected_rewards).mean()


RewardSquash = Literal["none", "sigmoid", "tanh"]


def squash_rewards(raw_rewards: torch.Tensor, squash: RewardSquash, scale: float) -> torch.Tensor:
    """Put raw reward-model outputs ``[batch]`` on the scale eq. (7) adds them at.

    r_rule and r_format are 0 or 1, while a Bradley-Terry head is unbounded; ``"sigmoid"`` maps
    r_theta into (0, scale), ``"tanh"`` into (-scale, scale), ``"none"`` multiplies by ``scale``.
    """
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    if squash == "sigmoid":
        return scale * torch.sigmoid(raw_rewards)
    if squash == "tanh":
        return scale * torch.tanh(raw_rewards)
    if squash == "none":
        return scale * raw_rewards
    raise ValueError(f"squash must be 'none', 'sigmoid' or 'tanh', got {squash!r}")


class VisionLanguageRewardModel(nn.Module):
    """A ``VisionLanguageModel`` backbone and a linear head read at the last attended token."""

    def __init__(self, backbone: VisionLanguageModel) -> None:
        super().__init__()
        self.backbone = backbone
        hidden_size = int(backbone.config.language_config["hidden_size"])
        self.value_head = nn.Linear(hidden_size, 1)
        # TRL's reward-head init: small enough that untrained rewards start near 0.
        nn.init.normal_(self.value_head.weight, std=1.0 / np.sqrt(hidden_size + 1))
        nn.init.zeros_(self.value_head.bias)

    @classmethod
    def tiny(cls, tokenizer: PreTrainedTokenizerFast | None = None) -> Self:
        """A CPU-sized reward model on ``VisionLanguageModelConfig.tiny``."""
        return cls(VisionLanguageModel(VisionLanguageModelConfig.tiny(tokenizer)))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        pixel_values: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Raw rewards ``[batch]`` for ``input_ids``/``attention_mask`` ``[batch, seq]``."""
        hidden_states = self.backbone.last_hidden_states(input_ids, attention_mask, pixel_values)
        pooled = pool_last_token(hidden_states, attention_mask)
        return self.value_head(pooled.to(self.value_head.weight.dtype)).squeeze(-1)  # type: ignore[no-any-return]

    def save_pretrained(self, directory: str | Path) -> None:
        """Write ``backbone/`` (see ``VisionLanguageModel.save_pretrained``) and
        ``value_head.safetensors``."""
        path = Path(directory)
        self.backbone.save_pretrained(path / "backbone")
        save_model(self.value_head, str(path / "value_head.safetensors"))

    @classmethod
    def from_pretrained(cls, directory: str | Path, dtype: torch.dtype | None = None) -> Self:
        """Load what ``save_pretrained`` wrote, from local files only; returned in eval mode."""
        path = Path(directory)
        model = cls(VisionLanguageModel.from_pretrained(path / "backbone", dtype=dtype))
        load_model(model.value_head, str(path / "value_head.safetensors"))
        return model.eval()


class RewardScoringConfig(BaseModel):
    """How ``RewardModelScorer`` turns items into tensors and raw outputs into r_theta."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    squash: RewardSquash = Field(
        default="sigmoid",
        description="Output map; sigmoid keeps r_theta in (0, scale) like r_rule.",
    )
    scale: float = Field(default=1.0, gt=0.0, description="Weight of r_theta in eq. 7.")
    max_length: int | None = Field(
        default=None, gt=0, description="Longest row in tokens; a longer item is a ValueError."
    )
    max_batch_size: int = Field(default=16, gt=0, description="Rows per forward pass.")
    padding_side: Literal["left", "right"] = "right"
    image_mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    image_std: tuple[float, float, float] = (0.5, 0.5, 0.5)


class RewardModelScorer:
    """A ``RewardModel`` over a ``VisionLanguageRewardModel``: tokenize, pad, run, squash.

    Puts the model in eval mode and runs it under ``torch.inference_mode``.
    """

    def __init__(
        self,
        model: VisionLanguageRewardModel,
        tokenizer: PreTrainedTokenizerBase,
        config: RewardScoringConfig | None = None,
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.config = RewardScoringConfig() if config is None else config
        backbone_config = model.backbone.config
        self._image_token_id = backbone_config.image_token_id
        self._image_token = str(tokenizer.convert_ids_to_tokens(self._image_token_id))
        self._num_image_tokens = backbone_config.num_image_tokens
        self._image_size = backbone_config.image_size

    def encode_item(self, item: RewardModelInput) -> list[int]:
        """Token ids of one row, laid out as the module docstring says (no padding)."""
        if self._image_token in item.prompt:
            raise ValueError(f"prompt must not contain {self._image_token!r}: the scorer adds it")
        response = item.response.replace(self._image_token, "")
        text_ids = self.tokenizer.encode(f"{item.prompt}\n{response}", add_special_tokens=False)
        image_ids = (
            [self._image_token_id] * self._num_image_tokens if item.image is not None else []
        )
        bos = [] if self.tokenizer.bos_token_id is None else [self.tokenizer.bos_token_id]
        eos = [] if self.tokenizer.eos_token_id is None else [self.tokenizer.eos_token_id]
        ids = bos + image_ids + list(text_ids) + eos
        if self.config.max_length is not None and len(ids) > self.config.max_length:
            raise ValueError(f"item has {len(ids)} tokens, max_length is {self.config.max_length}")
        return ids

    def collate(
        self, batch: Sequence[RewardModelInput]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``input_ids`` and ``attention_mask`` ``[batch, seq]`` padded on the configured side, and
        ``pixel_values`` ``[num_images, 3, H, W]`` for the items that have an image (or None)."""
        rows = [self.encode_item(item) for item in batch]
        length = max(len(row) for row in rows)
        pad_id = self.tokenizer.pad_token_id
        if pad_id is None:
            raise ValueError("the tokenizer has no pad token")
        input_ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
        for index, row in enumerate(rows):
            start = 0 if self.config.padding_side == "right" else length - len(row)
            input_ids[index, start : start + len(row)] = torch.tensor(row, dtype=torch.long)
            attention_mask[index, start : start + len(row)] = 1
        images = [
            pixel_values_from_image(
                item.image, self._image_size, self.config.image_mean, self.config.image_std
            )
            for item in batch
            if item.image is not None
        ]
        return input_ids, attention_mask, torch.stack(images) if images else None

    def score(self, batch: Sequence[RewardModelInput]) -> list[float]:
        """r_theta for each item, squashed and scaled (see ``squash_rewards``)."""
        if len(batch) == 0:
            raise ValueError("cannot score an empty batch")
        device = next(self.model.parameters()).device
        scores: list[float] = []
        for start in range(0, len(batch), self.config.max_batch_size):
            input_ids, attention_mask, pixel_values = self.collate(
                batch[start : start + self.config.max_batch_size]
            )
            with torch.inference_mode():
                raw = self.model(
                    input_ids.to(device),
                    attention_mask.to(device),
                    None if pixel_values is None else pixel_values.to(device),
                )
                squashed = squash_rewards(raw.float(), self.config.squash, self.config.scale)
            scores.extend(squashed.cpu().tolist())
        return scores
