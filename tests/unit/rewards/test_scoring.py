"""HybridScorer: eq. 7 parts per item through the rule pool, the format reward and a model."""

import threading
from collections.abc import Iterator, Sequence

import pytest
import torch
from PIL import Image

from hybridrl.config.rewards import HybridRewardWeights, RewardsConfig, ScorerPoolConfig
from hybridrl.models.tokenizer import build_tokenizer
from hybridrl.rewards.hybrid import RewardParts
from hybridrl.rewards.reward_model import (
    RewardModelInput,
    RewardModelScorer,
    RewardScoringConfig,
    VisionLanguageRewardModel,
)
from hybridrl.rewards.rule import RuleResult, RuleStatus
from hybridrl.rewards.scorer_pool import RuleScorerPool
from hybridrl.rewards.scoring import (
    HybridScorer,
    ScoredItem,
    ScoreStatus,
    ScoringItem,
    TaskKind,
    invalid_input_reason,
    score_with_reward_model,
)

CORRECT = ScoringItem("<think>2 plus 3 is 5</think> The answer is \\boxed{5}", "5", "2+3?")
WRONG = ScoringItem("<think>a guess</think> \\boxed{6}", "5", "2+3?")
BAD_FORMAT = ScoringItem("\\boxed{5}", "5", "2+3?")
NO_ANSWER = ScoringItem("<think>hmm</think> I am not sure.", "5", "2+3?")
NO_GOLD = ScoringItem("<think>x</think> \\boxed{5}", "  ", "2+3?")
OPEN = ScoringItem("<think>look</think> \\boxed{blue}", "", "Colour?", task_kind=TaskKind.OPEN)
TOWER = ScoringItem("<think>big</think> \\boxed{9^{9^{9^{9}}}}", "2", "?")
CHOICE = ScoringItem(
    "<think>red is B</think> 答案是 B", "(B)", "Colour?", None, TaskKind.MULTIPLE_CHOICE
)
SKIPPED = "no reward model configured"


def summary(scored: ScoredItem) -> tuple[float, float, float, float, str | None, ScoreStatus]:
    parts = scored.parts
    return (
        parts.rule,
        parts.model,
        parts.format,
        parts.total,
        scored.extracted_answer,
        scored.status,
    )


@pytest.fixture(scope="module")
def pool() -> Iterator[RuleScorerPool]:
    with RuleScorerPool(ScorerPoolConfig(workers=2)) as started:
        yield started


@pytest.fixture(scope="module")
def tiny_model() -> RewardModelScorer:
    tokenizer = build_tokenizer()
    torch.manual_seed(0)
    model = VisionLanguageRewardModel.tiny(tokenizer)
    return RewardModelScorer(model, tokenizer, RewardScoringConfig(max_length=512))


class BlockingModel:
    """A reward model that answers 0.5 per item once released: stands for a stuck GPU call."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    def score(self, batch: Sequence[RewardModelInput]) -> list[float]:
        self.calls += 1
        self.release.wait(timeout=30)
        return [0.5] * len(batch)


class PickyModel:
    """Scores len(response) / 100 but refuses any batch holding a response marked TOO LONG."""

    def score(self, batch: Sequence[RewardModelInput]) -> list[float]:
        if any("TOO LONG" in item.response for item in batch):
            raise ValueError("item has 600 tokens, max_length is 512")
        return [len(item.response) / 100 for item in batch]


class ScriptedRules:
    """A rule scorer that returns the given results, for statuses the pool rarely produces."""

    def __init__(self, results: list[RuleResult]) -> None:
        self.results = results

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[RuleResult]:
        assert len(pairs) == len(self.results)
        return self.results


def test_hand_picked_items_without_a_model_give_rule_plus_format(pool: RuleScorerPool) -> None:
    with HybridScorer(pool) as scorer:
        scored = scorer.score([CORRECT, WRONG, BAD_FORMAT, NO_ANSWER, NO_GOLD, OPEN, CHOICE])
    assert [summary(item) for item in scored] == [
        (1.0, 0.0, 1.0, 2.0, "5", ScoreStatus.MODEL_SKIPPED),
        (0.0, 0.0, 1.0, 1.0, "6", ScoreStatus.MODEL_SKIPPED),
        (1.0, 0.0, 0.0, 1.0, "5", ScoreStatus.MODEL_SKIPPED),
        (0.0, 0.0, 1.0, 1.0, None, ScoreStatus.NO_ANSWER),
        (0.0, 0.0, 0.0, 0.0, None, ScoreStatus.INVALID_INPUT),
        (0.0, 0.0, 1.0, 1.0, "blue", ScoreStatus.MODEL_SKIPPED),
        (1.0, 0.0, 1.0, 2.0, "B", ScoreStatus.MODEL_SKIPPED),
    ]
    assert scored[0].detail == SKIPPED
    assert scored[3].detail == f"no final answer found in the response; {SKIPPED}"
    assert scored[4].detail == "no gold answer for a math task"


def test_costly_answer_is_a_verify_timeout_with_rule_zero(pool: RuleScorerPool) -> None:
    with HybridScorer(pool) as scorer:
        (scored,) = scorer.score([TOWER])
    assert summary(scored) == (0.0, 0.0, 1.0, 1.0, "9^{9^{9^{9}}}", ScoreStatus.VERIFY_TIMEOUT)
    assert scored.detail.startswith("answer too costly to verify: answer: ")


def test_weights_scale_each_part_of_eq7(pool: RuleScorerPool) -> None:
    config = RewardsConfig(weights=HybridRewardWeights(rule=2.0, model=0.5, format=0.25))
    with HybridScorer(pool, config=config, reward_model=PickyModel()) as scorer:
        (scored,) = scorer.score([CORRECT])
    # r_theta = 52 characters / 100; total = 2 * 1 + 0.5 * 0.52 + 0.25 * 1 = 2.51
    assert scored.parts == RewardParts(rule=1.0, model=0.52, format=1.0, total=2.51)
    assert scored.status is ScoreStatus.OK
    assert scored.detail == ""


def test_tiny_reward_model_adds_its_score_to_the_total(
    pool: RuleScorerPool, tiny_model: RewardModelScorer
) -> None:
    image = Image.new("RGB", (32, 32), (200, 10, 30))
    with_image = ScoringItem(CORRECT.response, "5", "2+3?", image)
    with HybridScorer(pool, reward_model=tiny_model) as scorer:
        scored = scorer.score([with_image, WRONG, NO_ANSWER])
    expected = tiny_model.score(
        [
            RewardModelInput("2+3?", CORRECT.response, image),
            RewardModelInput("2+3?", WRONG.response),
            RewardModelInput("2+3?", NO_ANSWER.response),
        ]
    )
    assert [item.parts.model for item in scored] == pytest.approx(expected, abs=1e-6)
    assert all(0.0 < value < 1.0 for value in expected)  # sigmoid squash
    for item, rule, fmt in zip(scored, (1.0, 0.0, 0.0), (1.0, 1.0, 1.0), strict=True):
        assert (item.parts.rule, item.parts.format) == (rule, fmt)
        assert item.parts.total == pytest.approx(rule + item.parts.model + fmt, abs=1e-12)
    assert [item.status for item in scored] == [
        ScoreStatus.OK,
        ScoreStatus.OK,
        ScoreStatus.NO_ANSWER,
    ]


def test_model_past_its_deadline_scores_zero_and_the_next_batch_goes_on(
    pool: RuleScorerPool,
) -> None:
    model = BlockingModel()
    with HybridScorer(pool, reward_model=model, model_deadline_seconds=0.2) as scorer:
        late = scorer.score([CORRECT, WRONG])
        assert [summary(item) for item in late] == [
            (1.0, 0.0, 1.0, 2.0, "5", ScoreStatus.MODEL_SKIPPED),
            (0.0, 0.0, 1.0, 1.0, "6", ScoreStatus.MODEL_SKIPPED),
        ]
        assert late[0].detail == "reward model timed out after 0.2 s"
        model.release.set()
        (on_time,) = scorer.score([CORRECT])
    assert summary(on_time) == (1.0, 0.5, 1.0, 2.5, "5", ScoreStatus.OK)
    assert model.calls == 2


def test_callers_remaining_time_shortens_the_model_deadline(pool: RuleScorerPool) -> None:
    model = BlockingModel()
    with HybridScorer(pool, reward_model=model, model_deadline_seconds=30.0) as scorer:
        (scored,) = scorer.score([CORRECT], timeout_seconds=0.1)
        model.release.set()
    assert scored.detail == "reward model timed out after 0.1 s"


def test_one_item_the_model_refuses_keeps_the_others_scores(pool: RuleScorerPool) -> None:
    too_long = ScoringItem("<think>TOO LONG</think> \\boxed{5}", "5")
    with HybridScorer(pool, reward_model=PickyModel()) as scorer:
        scored = scorer.score([WRONG, too_long])
    assert summary(scored[0]) == (0.0, 0.32, 1.0, 1.32, "6", ScoreStatus.OK)
    assert summary(scored[1]) == (1.0, 0.0, 1.0, 2.0, "5", ScoreStatus.MODEL_SKIPPED)
    assert scored[1].detail == (
        "reward model failed: ValueError: item has 600 tokens, max_length is 512"
    )


def test_score_with_reward_model_rejects_non_finite_scores() -> None:
    class NaNModel:
        def score(self, batch: Sequence[RewardModelInput]) -> list[float]:
            return [float("nan")] * len(batch)

    outcome = score_with_reward_model(NaNModel(), [RewardModelInput("p", "r")])
    assert outcome == [
        "reward model failed: ValueError: reward model returned a non-finite score: [nan]"
    ]


def test_rule_timeout_and_scorer_failure_map_to_their_statuses() -> None:
    rules = ScriptedRules(
        [
            RuleResult(0.0, "x", RuleStatus.TIMEOUT, "deadline exceeded"),
            RuleResult(0.0, None, RuleStatus.ERROR, "scorer worker died"),
        ]
    )
    with HybridScorer(rules) as scorer:
        timed_out, failed = scorer.score([CORRECT, WRONG])
    assert summary(timed_out) == (0.0, 0.0, 1.0, 1.0, "x", ScoreStatus.VERIFY_TIMEOUT)
    assert timed_out.detail == f"answer check timed out: deadline exceeded; {SKIPPED}"
    assert summary(failed) == (0.0, 0.0, 1.0, 1.0, None, ScoreStatus.VERIFY_TIMEOUT)
    assert failed.detail == f"answer check failed: scorer worker died; {SKIPPED}"


def test_invalid_input_reasons() -> None:
    assert invalid_input_reason(CORRECT) is None
    assert invalid_input_reason(OPEN) is None
    assert invalid_input_reason(NO_GOLD) == "no gold answer for a math task"
    counting = ScoringItem("3", "$$", task_kind=TaskKind.COUNTING)
    assert invalid_input_reason(counting) == "gold answer unusable: gold answer is empty"


def test_empty_batch_wrong_item_type_and_closed_scorer_raise() -> None:
    scorer = HybridScorer(ScriptedRules([]))
    with pytest.raises(ValueError, match="empty batch"):
        scorer.score([])
    with pytest.raises(ValueError, match="expected a ScoringItem, got tuple"):
        scorer.score([("response", "gold")])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="model_deadline_seconds"):
        HybridScorer(ScriptedRules([]), model_deadline_seconds=0.0)
    scorer.close()
    with pytest.raises(RuntimeError, match="closed"):
        scorer.score([OPEN])


def test_scorer_with_its_own_pool_starts_and_stops_it() -> None:
    config = RewardsConfig(pool=ScorerPoolConfig(workers=1))
    with HybridScorer.with_pool(config) as scorer:
        (scored,) = scorer.score([CORRECT])
        assert not scorer.has_reward_model
    assert summary(scored) == (1.0, 0.0, 1.0, 2.0, "5", ScoreStatus.MODEL_SKIPPED)
    with pytest.raises(RuntimeError, match="closed"):
        scorer.score([CORRECT])
