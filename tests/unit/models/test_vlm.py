"""The composable vision-language model of eq. (1) on the tiny CPU config."""

import math
from pathlib import Path

import pytest
import torch

from hybridrl.models.freezing import (
    apply_freeze_mode,
    load_trainable_state_dict,
    trainable_state_dict,
)
from hybridrl.models.tokenizer import build_tokenizer
from hybridrl.models.vlm import (
    VisionLanguageModel,
    position_ids_from_attention_mask,
    token_logprobs_from_logits,
)
from hybridrl.models.vlm_config import COMPONENT_NAMES, FreezeMode, VisionLanguageModelConfig

IMAGE_TOKEN_ID = 4
IMAGE_TOKENS = 16
# Parameter counts of the tiny components, by hand:
# adapter: LayerNorm(32) 64 + Linear(32->64) 2112 + Linear(64->64) 4160.
# language model: embeddings and head 2 x 114 x 64, 2 layers x (q, k, v with bias 3 x 4160, o 4096,
#   gate/up/down 3 x 8192, two norms 128), final norm 64.
# vision encoder: patch conv 3x8x8x32+32, positions 16x32, 2 layers x 8544, post norm 64.
PARAMETERS = {"vision_encoder": 23840, "adapter": 6336, "language_model": 97216}


def tiny_model(seed: int = 0) -> VisionLanguageModel:
    torch.manual_seed(seed)
    return VisionLanguageModel(VisionLanguageModelConfig.tiny()).eval()


def image_prompt(batch: int, length: int, seed: int = 1) -> torch.Tensor:
    """Rows laid out as bos, 16 placeholders, random text."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(7, 114, (batch, length), generator=generator)
    input_ids[:, 0] = 1
    input_ids[:, 1 : 1 + IMAGE_TOKENS] = IMAGE_TOKEN_ID
    return input_ids


@pytest.fixture(scope="module")
def model() -> VisionLanguageModel:
    return tiny_model()


def test_tiny_config_uses_the_tokenizer_vocabulary() -> None:
    config = VisionLanguageModelConfig.tiny(build_tokenizer())
    assert config.num_image_tokens == IMAGE_TOKENS
    assert config.image_size == (32, 32)
    assert config.image_token_id == IMAGE_TOKEN_ID
    assert config.language_config["vocab_size"] == 114


def test_forward_gives_logits_per_position_and_a_loss(model: VisionLanguageModel) -> None:
    input_ids = image_prompt(2, 24)
    torch.manual_seed(2)
    output = model(input_ids, torch.ones_like(input_ids), torch.randn(2, 3, 32, 32), input_ids)
    assert output.logits.shape == (2, 24, 114)
    # An untrained model is close to uniform: cross-entropy near log(vocab).
    assert abs(output.loss.item() - math.log(114)) < 0.5


def test_image_changes_logits_only_after_the_placeholders(model: VisionLanguageModel) -> None:
    input_ids = image_prompt(1, 24)
    mask = torch.ones_like(input_ids)
    torch.manual_seed(3)
    with torch.no_grad():
        first = model(input_ids, mask, torch.randn(1, 3, 32, 32)).logits
        second = model(input_ids, mask, torch.randn(1, 3, 32, 32)).logits
    # Position 0 (bos) comes before every image token, so causal attention hides the image.
    torch.testing.assert_close(first[:, 0], second[:, 0])
    assert (first[:, 1:] - second[:, 1:]).abs().amax(dim=-1).min() > 1e-4


@pytest.mark.parametrize("placeholders", [0, 15, 17, 32])
def test_placeholder_count_mismatch_raises(model: VisionLanguageModel, placeholders: int) -> None:
    input_ids = torch.full((1, 40), 20)
    input_ids[0, 1 : 1 + placeholders] = IMAGE_TOKEN_ID
    with pytest.raises(ValueError, match="placeholder"):
        model(input_ids, torch.ones_like(input_ids), torch.zeros(1, 3, 32, 32))


def test_placeholders_without_pixel_values_raise(model: VisionLanguageModel) -> None:
    input_ids = image_prompt(1, 20)
    with pytest.raises(ValueError, match="pixel_values is None"):
        model(input_ids, torch.ones_like(input_ids))


def test_wrong_image_size_raises(model: VisionLanguageModel) -> None:
    input_ids = image_prompt(1, 20)
    with pytest.raises(ValueError, match="pixel_values must be"):
        model(input_ids, torch.ones_like(input_ids), torch.zeros(1, 3, 16, 16))


def test_mixed_batch_scatters_the_image_into_its_own_row(model: VisionLanguageModel) -> None:
    with_image = image_prompt(1, 20)
    text_only = torch.randint(7, 114, (1, 20), generator=torch.Generator().manual_seed(4))
    pixel_values = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        batched = model(
            torch.cat([with_image, text_only]), torch.ones(2, 20, dtype=torch.long), pixel_values
        ).logits
        alone_image = model(with_image, torch.ones_like(with_image), pixel_values).logits
        alone_text = model(text_only, torch.ones_like(text_only)).logits
    torch.testing.assert_close(batched[0], alone_image[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batched[1], alone_text[0], atol=1e-5, rtol=1e-5)


def test_positions_count_only_attended_tokens() -> None:
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 0, 0]])
    expected = torch.tensor([[0, 0, 0, 1, 2], [0, 1, 2, 2, 2]])
    assert torch.equal(position_ids_from_attention_mask(mask), expected)


def test_left_padding_leaves_logits_unchanged(model: VisionLanguageModel) -> None:
    input_ids = image_prompt(1, 20)
    pixel_values = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(6))
    padded = torch.cat([torch.zeros(1, 5, dtype=torch.long), input_ids], dim=1)
    padded_mask = torch.cat([torch.zeros(1, 5), torch.ones(1, 20)], dim=1).long()
    with torch.no_grad():
        unpadded_logits = model(input_ids, torch.ones_like(input_ids), pixel_values).logits
        padded_logits = model(padded, padded_mask, pixel_values).logits
    torch.testing.assert_close(padded_logits[:, 5:], unpadded_logits, atol=1e-5, rtol=1e-5)


def test_token_logprobs_match_a_hand_computation() -> None:
    # Step 0 predicts token 1 from logits [0, ln 3]: p = 3/4. Step 1 predicts token 0 from [0, 0].
    logits = torch.tensor([[[0.0, math.log(3.0)], [0.0, 0.0], [5.0, -5.0]]])
    input_ids = torch.tensor([[0, 1, 0]])
    full = token_logprobs_from_logits(logits, input_ids, torch.tensor([[0, 1, 1]]))
    torch.testing.assert_close(full, torch.tensor([[0.0, math.log(0.75), math.log(0.5)]]))
    last_only = token_logprobs_from_logits(logits, input_ids, torch.tensor([[0, 0, 1]]))
    torch.testing.assert_close(last_only, torch.tensor([[0.0, 0.0, math.log(0.5)]]))
    hot = token_logprobs_from_logits(logits, input_ids, torch.tensor([[0, 1, 0]]), temperature=2.0)
    root3 = math.sqrt(3.0)
    torch.testing.assert_close(hot, torch.tensor([[0.0, math.log(root3 / (1 + root3)), 0.0]]))
    assert full.dtype == torch.float32


def test_sequence_logprobs_gather_the_next_token_log_softmax(model: VisionLanguageModel) -> None:
    input_ids = image_prompt(2, 24)
    mask = torch.ones_like(input_ids)
    response_mask = torch.zeros_like(input_ids)
    response_mask[0, 20:] = 1
    response_mask[1, 18:22] = 1
    pixel_values = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        result = model.sequence_logprobs(input_ids, mask, pixel_values, response_mask)
        log_probs = torch.log_softmax(model(input_ids, mask, pixel_values).logits.float(), -1)
    for row, start, stop in ((0, 20, 24), (1, 18, 22)):
        for t in range(24):
            expected = log_probs[row, t - 1, input_ids[row, t]] if start <= t < stop else 0.0
            assert result[row, t].item() == pytest.approx(float(expected), abs=1e-6)


def test_response_mask_errors(model: VisionLanguageModel) -> None:
    input_ids = torch.full((1, 6), 20)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0]])
    with pytest.raises(ValueError, match="first token"):
        model.sequence_logprobs(input_ids, torch.ones_like(mask), None, torch.ones_like(mask))
    with pytest.raises(ValueError, match="pads out"):
        model.sequence_logprobs(input_ids, mask, None, torch.tensor([[0, 0, 0, 1, 1, 0]]))
    with pytest.raises(ValueError, match="only 0 and 1"):
        model.sequence_logprobs(input_ids, mask, None, torch.tensor([[0, 2, 0, 0, 0, 0]]))


MODES: dict[FreezeMode, set[str]] = {
    "adapter": {"adapter"},
    "llm+adapter": {"adapter", "language_model"},
    "adapter+vision": {"adapter", "vision_encoder"},
    "full": {"adapter", "language_model", "vision_encoder"},
}


@pytest.mark.parametrize(("mode", "trainable"), MODES.items())
def test_freeze_mode_sets_exactly_its_components_trainable(
    mode: FreezeMode, trainable: set[str]
) -> None:
    model = tiny_model()
    apply_freeze_mode(model, "full")
    apply_freeze_mode(model, mode)
    for name in COMPONENT_NAMES:
        parameters = list(getattr(model, name).parameters())
        assert sum(p.numel() for p in parameters) == PARAMETERS[name]
        assert all(p.requires_grad == (name in trainable) for p in parameters)
    trainable_count = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable_count == sum(PARAMETERS[name] for name in trainable)
    state = trainable_state_dict(model, mode)
    assert sum(t.numel() for t in state.values()) == trainable_count
    assert {key.split(".")[0] for key in state} == trainable


def test_unknown_freeze_mode_raises(model: VisionLanguageModel) -> None:
    with pytest.raises(ValueError, match="freeze mode"):
        apply_freeze_mode(model, "vision")  # type: ignore[arg-type]


def test_adapter_mode_step_changes_only_adapter_weights() -> None:
    model = tiny_model().train()
    apply_freeze_mode(model, "adapter")
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    input_ids = image_prompt(2, 24)
    torch.manual_seed(8)
    loss = model(input_ids, torch.ones_like(input_ids), torch.randn(2, 3, 32, 32), input_ids).loss
    loss.backward()
    optimizer.step()
    for name, tensor in model.state_dict().items():
        changed = not torch.equal(tensor, before[name])
        assert changed == name.startswith("adapter."), name
    assert all(p.grad is None for p in model.language_model.parameters())


def test_trainable_state_dict_carries_the_adapter_to_another_model() -> None:
    source, target = tiny_model(seed=0), tiny_model(seed=1)
    input_ids = image_prompt(1, 20)
    pixel_values = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(9))
    # The update carries only the adapter, so the target's other weights must equal the source's.
    target.load_state_dict(
        {k: v for k, v in source.state_dict().items() if not k.startswith("adapter.")},
        strict=False,
    )
    load_trainable_state_dict(target, trainable_state_dict(source, "adapter"), "adapter")
    with torch.no_grad():
        expected = source(input_ids, torch.ones_like(input_ids), pixel_values).logits
        actual = target(input_ids, torch.ones_like(input_ids), pixel_values).logits
    assert torch.equal(expected, actual)
    with pytest.raises(ValueError, match="does not match mode"):
        load_trainable_state_dict(target, trainable_state_dict(source, "full"), "adapter")


def test_save_and_load_give_identical_outputs(model: VisionLanguageModel, tmp_path: Path) -> None:
    input_ids = image_prompt(2, 24)
    pixel_values = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(10))
    model.save_pretrained(tmp_path)
    assert (tmp_path / "adapter.safetensors").is_file()
    assert (tmp_path / "language_model" / "model.safetensors").is_file()
    assert (tmp_path / "vision_encoder" / "model.safetensors").is_file()
    loaded = VisionLanguageModel.from_pretrained(tmp_path)
    assert loaded.config == model.config.model_copy(
        update={
            "vision_config": loaded.config.vision_config,
            "language_config": loaded.config.language_config,
        }
    )
    with torch.no_grad():
        expected = model(input_ids, torch.ones_like(input_ids), pixel_values).logits
        actual = loaded(input_ids, torch.ones_like(input_ids), pixel_values).logits
    assert torch.equal(expected, actual)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"image_token_id": 114}, "image_token_id"),
        ({"vision_config": {"hidden_size": 32, "image_size": 32, "patch_size": 8}}, "model_type"),
        (
            {
                "vision_config": {
                    "model_type": "siglip_vision_model",
                    "hidden_size": 32,
                    "image_size": 30,
                    "patch_size": 8,
                }
            },
            "multiple of patch_size",
        ),
    ],
)
def test_config_rejects_inconsistent_settings(change: dict[str, object], message: str) -> None:
    settings = VisionLanguageModelConfig.tiny().model_dump() | change
    with pytest.raises(ValueError, match=message):
        VisionLanguageModelConfig(**settings)


def test_generated_image_token_in_the_response_is_text_not_an_image_slot() -> None:
    torch.manual_seed(0)
    model = tiny_model()
    prompt = image_prompt(1, 24)
    response = torch.tensor([[IMAGE_TOKEN_ID, 20, IMAGE_TOKEN_ID]])
    input_ids = torch.cat([prompt, response], dim=1)
    attention_mask = torch.ones_like(input_ids)
    response_mask = torch.zeros_like(input_ids)
    response_mask[:, -3:] = 1
    pixel_values = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    logprobs = model.sequence_logprobs(input_ids, attention_mask, pixel_values, response_mask)
    # The same log-probs as the embedding of the placeholder token as text at those positions.
    with torch.no_grad():
        embeddings = model.embed_inputs(
            input_ids, attention_mask, pixel_values, image_token_mask=~response_mask.bool()
        )
        text_embedding = model.language_model.get_input_embeddings()(
            torch.tensor([IMAGE_TOKEN_ID])
        )[0]
    assert torch.equal(embeddings[0, -1], text_embedding)
    assert torch.equal(embeddings[0, -3], text_embedding)
    assert bool(torch.isfinite(logprobs[response_mask.bool()]).all())
    with pytest.raises(ValueError, match="placeholder"):
        model.embed_inputs(input_ids, attention_mask, pixel_values)
