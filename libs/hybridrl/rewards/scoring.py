"""Batched scoring with the hybrid reward of eq. 7: the core of the reward service.

The reward service hands batches of ``ScoringItem`` to one ``HybridScorer``, both for the
rollouts it consumes from ``hybridrl.rollouts`` and for gRPC ``Score`` calls, and publishes each
``ScoredItem``: r = w_rule r_rule + w_theta r_theta + w_format r_format (``RewardParts``) with
the extracted answer and one status.

- r_rule runs in a ``RuleScorerPool``: worker processes with a per-item deadline, because
  math-verify's timeout needs ``signal.alarm`` and the main thread, which a gRPC handler or a
  consumer thread is not. A task of kind ``open`` has no rule check and scores 0.
- r_format is ``format_reward``, run in the calling thread (substring counts, linear).
- r_theta comes from an optional ``RewardModel`` run in a thread of its own, at the same time
  as the rule part and bounded by a deadline. Without a model, or when the batch's model call
  runs past the deadline or fails, r_theta is 0 and the status says so (``model_skipped``);
  a late call's result is dropped and scoring goes on.

One status per item, the strongest first: invalid_input (all parts 0) > verify_timeout >
no_answer > model_skipped > ok. ``detail`` names every reason that applied.
"""

from __future__ import annotations

import enum
import logging
import math
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

from PIL import Image

from hybridrl.config.rewards import RewardsConfig
from hybridrl.rewards.extract import extract_final_answer
from hybridrl.rewards.format import format_reward
from hybridrl.rewards.hybrid import RewardParts
from hybridrl.rewards.reward_model import RewardModel, RewardModelInput
from hybridrl.rewards.rule import RuleResult, RuleStatus, normalise_gold
from hybridrl.rewards.scorer_pool import RuleScorerPool

logger = logging.getLogger(__name__)

DEFAULT_MODEL_DEADLINE_SECONDS = 30.0


class TaskKind(enum.StrEnum):
    """How a response's answer is checked (``hybridrl.v1.TaskKind`` without UNSPECIFIED)."""

    MATH = "math"
    MULTIPLE_CHOICE = "multiple_choice"
    COUNTING = "counting"
    OPEN = "open"  # no rule check: only the reward model and the format reward apply


class ScoreStatus(enum.StrEnum):
    """Outcome of scoring one item (``hybridrl.v1.ScorerStatus`` without UNSPECIFIED)."""

    OK = "ok"
    NO_ANSWER = "no_answer"  # no final answer extracted; r_rule = 0
    VERIFY_TIMEOUT = "verify_timeout"  # no verdict: timed out, too costly, crashed; r_rule = 0
    MODEL_SKIPPED = "model_skipped"  # no reward model, or it timed out or failed; r_theta = 0
    INVALID_INPUT = "invalid_input"  # e.g. no gold answer for a rule-checked task; all parts 0


@dataclass(frozen=True)
class ScoringItem:
    """One response to score. ``image`` is the prompt's image, decoded, or None; only the
    reward model looks at it."""

    response: str
    gold: str
    prompt: str = ""
    image: Image.Image | None = None
    task_kind: TaskKind = TaskKind.MATH


@dataclass(frozen=True)
class ScoredItem:
    """The reward of one item: the parts of eq. 7, the extracted answer (None if none was
    found), the status and a human-readable detail (empty when the status is ok)."""

    parts: RewardParts
    extracted_answer: str | None
    status: ScoreStatus
    detail: str = ""


class RuleBatchScorer(Protocol):
    """Scores (response, gold) pairs in order; ``RuleScorerPool`` is the one to use."""

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[RuleResult]: ...


_ZERO_PARTS = RewardParts(rule=0.0, model=0.0, format=0.0, total=0.0)
_RULE_PROBLEMS = {
    RuleStatus.TIMEOUT: (ScoreStatus.VERIFY_TIMEOUT, "answer check timed out"),
    RuleStatus.REJECTED: (ScoreStatus.VERIFY_TIMEOUT, "answer too costly to verify"),
    # A worker that crashed or raised on the item: like a timeout, no verdict was reached.
    RuleStatus.ERROR: (ScoreStatus.VERIFY_TIMEOUT, "answer check failed"),
    RuleStatus.NO_ANSWER: (ScoreStatus.NO_ANSWER, "no final answer found in the response"),
}
_MODEL_NOT_CONFIGURED = "no reward model configured"


def invalid_input_reason(item: ScoringItem) -> str | None:
    """Why ``item`` cannot be scored at all (status invalid_input), or None when it can."""
    if not isinstance(item, ScoringItem):
        raise ValueError(f"expected a ScoringItem, got {type(item).__name__}")
    if not isinstance(item.task_kind, TaskKind):
        raise ValueError(f"task_kind must be a TaskKind, got {item.task_kind!r}")
    if item.task_kind is TaskKind.OPEN:
        return None
    if not item.gold.strip():
        return f"no gold answer for a {item.task_kind} task"
    try:
        normalise_gold(item.gold)
    except ValueError as error:
        return f"gold answer unusable: {error}"
    return None


class HybridScorer:
    """Scores batches of items with the rule pool, the format reward and an optional model.

    Safe to call from several threads: the pool serves one batch at a time and the model runs
    in one thread. Use as a context manager, or call ``start`` and ``close``.
    """

    def __init__(
        self,
        rule_scorer: RuleBatchScorer,
        *,
        config: RewardsConfig | None = None,
        reward_model: RewardModel | None = None,
        model_deadline_seconds: float = DEFAULT_MODEL_DEADLINE_SECONDS,
    ) -> None:
        """``config`` gives the format reward, the weights and the answer extraction of open
        tasks; its ``rule`` settings should be those ``rule_scorer`` was built with."""
        if not math.isfinite(model_deadline_seconds) or model_deadline_seconds <= 0:
            raise ValueError(f"model_deadline_seconds must be > 0, got {model_deadline_seconds}")
        self._rule_scorer = rule_scorer
        self._config = config if config is not None else RewardsConfig()
        self._reward_model = reward_model
        self._model_deadline_seconds = model_deadline_seconds
        self._model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reward-model")
        self._owned_pool: RuleScorerPool | None = None
        self._closed = threading.Event()

    @classmethod
    def with_pool(
        cls,
        config: RewardsConfig | None = None,
        *,
        reward_model: RewardModel | None = None,
        model_deadline_seconds: float = DEFAULT_MODEL_DEADLINE_SECONDS,
    ) -> HybridScorer:
        """A scorer that owns a ``RuleScorerPool`` built from ``config`` (started by
        ``start``, stopped by ``close``)."""
        settings = config if config is not None else RewardsConfig()
        pool = RuleScorerPool(settings.pool, rule_config=settings.rule)
        scorer = cls(
            pool,
            config=settings,
            reward_model=reward_model,
            model_deadline_seconds=model_deadline_seconds,
        )
        scorer._owned_pool = pool
        return scorer

    @property
    def has_reward_model(self) -> bool:
        """Whether r_theta comes from a model (otherwise it is 0 and items say so)."""
        return self._reward_model is not None

    def start(self) -> None:
        """Start the owned pool's workers (a few seconds: each imports math-verify)."""
        if self._owned_pool is not None:
            self._owned_pool.start()

    def close(self) -> None:
        """Stop the owned pool and the model thread; a running model call is abandoned."""
        self._closed.set()
        self._model_thread.shutdown(wait=False, cancel_futures=True)
        if self._owned_pool is not None:
            self._owned_pool.close()

    def __enter__(self) -> HybridScorer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def score(
        self, items: Sequence[ScoringItem], *, timeout_seconds: float | None = None
    ) -> list[ScoredItem]:
        """One ``ScoredItem`` per item, in order.

        ``timeout_seconds`` (the caller's remaining time) shortens the model deadline when it
        is the tighter one. Raises ValueError for an empty batch or an item that is not a
        ``ScoringItem``, RuntimeError once closed.
        """
        batch = list(items)
        if not batch:
            raise ValueError("cannot score an empty batch")
        reasons = [invalid_input_reason(item) for item in batch]
        if self._closed.is_set():
            raise RuntimeError("HybridScorer is closed")
        started = time.monotonic()
        scorable = [index for index, reason in enumerate(reasons) if reason is None]
        model_call = self._submit_model([batch[index] for index in scorable])
        rule_results = self._score_rules(batch, scorable)
        deadline = self._model_deadline_seconds
        if timeout_seconds is not None:
            deadline = min(deadline, timeout_seconds)
        model_outcomes = dict(
            zip(
                scorable,
                self._collect_model(model_call, len(scorable), started, deadline),
                strict=True,
            )
        )
        scored = []
        for index, item in enumerate(batch):
            reason = reasons[index]
            if reason is None:
                scored.append(self._combine(item, rule_results.get(index), model_outcomes[index]))
            else:
                scored.append(ScoredItem(_ZERO_PARTS, None, ScoreStatus.INVALID_INPUT, reason))
        return scored

    def _submit_model(self, items: list[ScoringItem]) -> Future[list[float | str]] | None:
        if self._reward_model is None or not items:
            return None
        inputs = [RewardModelInput(item.prompt, item.response, item.image) for item in items]
        return self._model_thread.submit(score_with_reward_model, self._reward_model, inputs)

    def _score_rules(self, batch: list[ScoringItem], scorable: list[int]) -> dict[int, RuleResult]:
        checked = [index for index in scorable if batch[index].task_kind is not TaskKind.OPEN]
        if not checked:
            return {}
        results = self._rule_scorer.score([(batch[i].response, batch[i].gold) for i in checked])
        return dict(zip(checked, results, strict=True))

    @staticmethod
    def _collect_model(
        call: Future[list[float | str]] | None, count: int, started: float, deadline: float
    ) -> list[float | str]:
        """Per item, r_theta or the reason it is 0."""
        if call is None:
            return [_MODEL_NOT_CONFIGURED] * count
        try:
            return call.result(timeout=max(0.0, started + deadline - time.monotonic()))
        except TimeoutError:
            call.cancel()  # not started yet: never runs; running: its result is dropped
            logger.warning(
                "reward model timed out after %.3g s: r_theta = 0 for %d items", deadline, count
            )
            return [f"reward model timed out after {deadline:.3g} s"] * count
        except Exception as error:  # the model thread is gone (closed while waiting)
            return [f"reward model failed: {type(error).__name__}: {error}"] * count

    def _combine(
        self, item: ScoringItem, rule: RuleResult | None, model: float | str
    ) -> ScoredItem:
        problems: list[tuple[ScoreStatus, str]] = []
        if rule is None:
            settings = self._config.rule
            answer = extract_final_answer(
                item.response,
                fall_back_to_thinking=settings.fall_back_to_thinking,
                search_window_chars=settings.search_window_chars,
                max_answer_chars=settings.max_answer_chars,
            )
        else:
            answer = rule.answer
            if rule.status in _RULE_PROBLEMS:
                status, text = _RULE_PROBLEMS[rule.status]
                problems.append((status, f"{text}: {rule.detail}" if rule.detail else text))
        if isinstance(model, str):
            problems.append((ScoreStatus.MODEL_SKIPPED, model))
        parts = RewardParts.combine(
            rule.reward if rule is not None else 0.0,
            model if isinstance(model, float) else 0.0,
            format_reward(item.response, config=self._config.format),
            weights=self._config.weights,
        )
        status = problems[0][0] if problems else ScoreStatus.OK
        return ScoredItem(parts, answer, status, "; ".join(text for _, text in problems))


def score_with_reward_model(
    model: RewardModel, inputs: Sequence[RewardModelInput]
) -> list[float | str]:
    """r_theta per input, or why the model could not score it.

    A batch the model refuses is retried item by item, so that one bad item (longer than the
    model's context, say) does not cost the others their r_theta.
    """
    try:
        return _finite_scores(model.score(inputs), len(inputs))
    except Exception as error:
        if len(inputs) == 1:
            return [f"reward model failed: {type(error).__name__}: {error}"]
    outcomes: list[float | str] = []
    for single in inputs:
        outcomes.extend(score_with_reward_model(model, [single]))
    return outcomes


def _finite_scores(scores: Sequence[float], expected: int) -> list[float | str]:
    if len(scores) != expected:
        raise ValueError(f"reward model returned {len(scores)} scores for {expected} items")
    values: list[float | str] = [float(score) for score in scores]
    if not all(math.isfinite(float(value)) for value in values):
        raise ValueError(f"reward model returned a non-finite score: {values}")
    return values
