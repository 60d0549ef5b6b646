"""The vision-language reward model r_theta (eq. 7): pooling, scoring, pairwise training."""

import math
from pathlib import Path

import pytest
import torch
from PIL import Image

from hybridrl.models.freezing import apply_freeze_mode
from hybridrl.models.tokenizer import build_tokenizer
from hybridrl.rewards.reward_model import (
    RewardModel,
    RewardModelInput,
    RewardModelScorer,
    RewardScoringConfig,
    VisionLanguageRewardModel,
    last_token_indices,
    pixel_values_from_image,
    pool_last_token,
    reward_model_pairwise_loss,
    squash_rewards,
)


def tiny_reward_model(seed: int = 0) -> VisionLanguageRewardModel:
    torch.manual_seed(seed)
    return VisionLanguageRewardModel.tiny().eval()


@pytest.fixture(scope="module")
def reward_model() -> VisionLanguageRewardModel:
    return tiny_reward_model()


def items() -> list[RewardModelInput]:
    generator = torch.Generator().manual_seed(1)
    return [
        RewardModelInput("What is 1+1?", "<think>1+1=2</think> \\boxed{2}"),
        RewardModelInput("Which shape?", "B", Image.new("RGB", (40, 20), (200, 10, 30))),
        RewardModelInput("Long question with more text", "答案是 C", None),
        RewardModelInput("x?", "7", torch.randn(3, 32, 32, generator=generator)),
        RewardModelInput("y", "<think>no</think>", Image.new("RGB", (32, 32), (0, 255, 0))),
    ]


def test_last_token_index_with_right_and_left_padding() -> None:
    right = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]])
    left = torch.tensor([[0, 1, 1, 1], [0, 0, 1, 1], [1, 1, 1, 1]])
    assert last_token_indices(right).tolist() == [2, 1, 3]
    assert last_token_indices(left).tolist() == [3, 3, 3]


def test_row_without_attended_tokens_raises() -> None:
    with pytest.raises(ValueError, match="at least one"):
        last_token_indices(torch.tensor([[1, 1], [0, 0]]))


def test_pooling_reads_the_hidden_state_at_the_last_attended_token() -> None:
    hidden_states = torch.arange(2 * 4 * 3, dtype=torch.float32).view(2, 4, 3)
    pooled = pool_last_token(hidden_states, torch.tensor([[1, 1, 0, 0], [0, 1, 1, 1]]))
    assert pooled.tolist() == [[3.0, 4.0, 5.0], [21.0, 22.0, 23.0]]


def test_forward_applies_the_head_at_the_last_token_for_either_padding(
    reward_model: VisionLanguageRewardModel,
) -> None:
    text = torch.tensor([[1, 20, 21, 22, 2]])
    for padded, mask, last in (
        ([1, 20, 21, 22, 2, 0, 0], [1, 1, 1, 1, 1, 0, 0], 4),
        ([0, 0, 1, 20, 21, 22, 2], [0, 0, 1, 1, 1, 1, 1], 6),
    ):
        input_ids, attention_mask = torch.tensor([padded]), torch.tensor([mask])
        with torch.no_grad():
            reward = reward_model(input_ids, attention_mask)
            hidden = reward_model.backbone.last_hidden_states(input_ids, attention_mask)
            unpadded = reward_model(text, torch.ones_like(text))
        expected = reward_model.value_head(hidden[0, last]).squeeze(-1)
        assert reward.shape == (1,)
        torch.testing.assert_close(reward[0], expected)
        torch.testing.assert_close(reward, unpadded, atol=1e-5, rtol=1e-5)


def test_encoded_row_has_the_documented_layout(reward_model: VisionLanguageRewardModel) -> None:
    scorer = RewardModelScorer(reward_model, build_tokenizer())
    # bos, "1", "+", "1", newline, "2", eos
    assert scorer.encode_item(RewardModelInput("1+1", "2")) == [1, 8, 79, 8, 102, 9, 2]
    with_image = scorer.encode_item(RewardModelInput("1+1", "2", Image.new("RGB", (8, 8))))
    assert with_image == [1] + [4] * 16 + [8, 79, 8, 102, 9, 2]


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_batched_scores_equal_one_at_a_time_scores(
    reward_model: VisionLanguageRewardModel, padding_side: str
) -> None:
    config = RewardScoringConfig(padding_side=padding_side, max_batch_size=3)  # type: ignore[arg-type]
    scorer = RewardModelScorer(reward_model, build_tokenizer(), config)
    batch = items()
    batched = scorer.score(batch)
    alone = [scorer.score([item])[0] for item in batch]
    assert len(batched) == len(batch)
    assert batched == pytest.approx(alone, abs=1e-5)
    assert all(0.0 < score < 1.0 for score in batched)
    assert len({round(score, 6) for score in batched}) == len(batch)


def test_scorer_is_a_reward_model(reward_model: VisionLanguageRewardModel) -> None:
    scorer: RewardModel = RewardModelScorer(reward_model, build_tokenizer())
    assert len(scorer.score(items()[:2])) == 2


def test_pil_image_and_its_tensor_score_the_same(reward_model: VisionLanguageRewardModel) -> None:
    scorer = RewardModelScorer(reward_model, build_tokenizer())
    white = Image.new("RGB", (32, 32), (255, 255, 255))
    pixels = pixel_values_from_image(white, (32, 32), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert torch.equal(pixels, torch.ones(3, 32, 32))
    from_image, from_tensor = scorer.score(
        [RewardModelInput("q", "a", white), RewardModelInput("q", "a", pixels)]
    )
    assert from_image == pytest.approx(from_tensor, abs=1e-6)
    assert from_image != pytest.approx(scorer.score([RewardModelInput("q", "a")])[0], abs=1e-4)


def test_image_placeholder_in_a_response_is_ignored(
    reward_model: VisionLanguageRewardModel,
) -> None:
    scorer = RewardModelScorer(reward_model, build_tokenizer())
    injected, clean = scorer.score(
        [RewardModelInput("q", "a<image>b"), RewardModelInput("q", "ab")]
    )
    assert injected == pytest.approx(clean, abs=1e-6)


def test_scorer_rejects_invalid_items(reward_model: VisionLanguageRewardModel) -> None:
    scorer = RewardModelScorer(reward_model, build_tokenizer(), RewardScoringConfig(max_length=10))
    with pytest.raises(ValueError, match="empty"):
        scorer.score([])
    with pytest.raises(ValueError, match="must not contain"):
        scorer.score([RewardModelInput("look <image>", "a")])
    with pytest.raises(ValueError, match="max_length"):
        scorer.score([RewardModelInput("a long prompt", "a")])
    with pytest.raises(ValueError, match="image tensor"):
        RewardModelScorer(reward_model, build_tokenizer()).score(
            [RewardModelInput("q", "a", torch.zeros(3, 16, 16))]
        )


def test_squash_rewards_by_hand() -> None:
    raw = torch.tensor([0.0, math.log(3.0), -1.0])
    sigmoid = squash_rewards(raw, "sigmoid", 2.0)
    torch.testing.assert_close(sigmoid, torch.tensor([1.0, 1.5, 2.0 / (1.0 + math.e)]))
    torch.testing.assert_close(squash_rewards(raw, "tanh", 1.0)[1], torch.tensor(0.8))
    torch.testing.assert_close(squash_rewards(raw, "none", 0.5), raw * 0.5)
    with pytest.raises(ValueError, match="scale"):
        squash_rewards(raw, "none", 0.0)


def test_pairwise_loss_value_and_gradient_by_hand() -> None:
    chosen = torch.tensor([1.0, 0.0], requires_grad=True)
    rejected = torch.tensor([0.0, 0.0], requires_grad=True)
    loss = reward_model_pairwise_loss(chosen, rejected)
    # (log(1 + e^-1) + log 2) / 2
    assert loss.item() == pytest.approx((math.log(1 + math.exp(-1.0)) + math.log(2.0)) / 2)
    loss.backward()
    # d/d chosen_i = -sigmoid(rejected_i - chosen_i) / batch
    expected = torch.tensor([-1.0 / (1.0 + math.e) / 2, -0.25])
    assert chosen.grad is not None
    assert rejected.grad is not None
    torch.testing.assert_close(chosen.grad, expected)
    torch.testing.assert_close(rejected.grad, -expected)


def test_pairwise_loss_rejects_bad_shapes_and_values() -> None:
    with pytest.raises(ValueError, match="shapes"):
        reward_model_pairwise_loss(torch.zeros(2), torch.zeros(3))
    with pytest.raises(ValueError, match="empty"):
        reward_model_pairwise_loss(torch.zeros(0), torch.zeros(0))
    with pytest.raises(ValueError, match="NaN"):
        reward_model_pairwise_loss(torch.tensor([math.nan]), torch.zeros(1))


def test_one_step_on_a_pair_widens_the_margin() -> None:
    model = tiny_reward_model().train()
    apply_freeze_mode(model.backbone, "adapter")
    scorer = RewardModelScorer(tiny_reward_model(), build_tokenizer())
    image = Image.new("RGB", (32, 32), (10, 120, 240))
    input_ids, attention_mask, pixel_values = scorer.collate(
        [RewardModelInput("2+2?", "\\boxed{4}", image), RewardModelInput("2+2?", "5", image)]
    )
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)

    rewards = model(input_ids, attention_mask, pixel_values)
    reward_model_pairwise_loss(rewards[:1], rewards[1:]).backward()
    optimizer.step()
    with torch.no_grad():
        after = model(input_ids, attention_mask, pixel_values)
    margin_before = (rewards[0] - rewards[1]).item()
    assert (after[0] - after[1]).item() > margin_before + 1e-3


def test_save_and_load_give_identical_rewards(
    reward_model: VisionLanguageRewardModel, tmp_path: Path
) -> None:
    reward_model.save_pretrained(tmp_path)
    loaded = VisionLanguageRewardModel.from_pretrained(tmp_path)
    tokenizer = build_tokenizer()
    batch = items()
    expected = RewardModelScorer(reward_model, tokenizer).score(batch)
    assert RewardModelScorer(loaded, tokenizer).score(batch) == expected
