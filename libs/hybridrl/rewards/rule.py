"""The rule reward r_rule of eq. 7: 1.0 when a response's final answer equals the gold answer.

The reward service scores every rollout with it (through ``RuleScorerPool``, which adds a hard
deadline per item). Comparison runs cheapest first and stops at the first decisive step:

1. normalised string equality (``\\dfrac`` = ``\\frac``, ``\\text{}``, spaces, ``$``, degrees);
2. a gold option letter ("B") is compared as a letter, nothing else;
3. two plain numbers ("1,000", "0.75", "3/4", "\\frac{3}{4}") are compared exactly as rationals
   within a relative/absolute tolerance;
4. otherwise math-verify decides, after a cheap scan rejects costly expressions (power towers,
   huge exponents or factorials, thousands of digits) that math-verify could not bound off the
   main thread, where its ``signal.alarm`` timeout cannot run.
"""

from __future__ import annotations

import enum
import re
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any

from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

from hybridrl.config.rewards import RuleRewardConfig
from hybridrl.rewards.cost_bounds import costly_expression_reason
from hybridrl.rewards.extract import extract_final_answer


class RuleStatus(enum.StrEnum):
    """How a rule score was reached; everything but OK scores 0.0."""

    OK = "ok"  # an answer was found and compared; the reward says whether it matched
    NO_ANSWER = "no_answer"  # no final answer could be extracted
    REJECTED = "rejected"  # answer or gold too costly to verify (cheap bound), not compared
    TIMEOUT = "timeout"  # verification ran out of time
    ERROR = "error"  # the scorer failed (bad gold, crashed worker); see detail


@dataclass(frozen=True)
class RuleResult:
    """One rule score: reward in {0.0, 1.0}, the extracted answer (None if none), and status."""

    reward: float
    answer: str | None
    status: RuleStatus
    detail: str = ""


# Boxed first: the answer handed to math-verify is already the extracted final answer.
_MATH_VERIFY_TARGETS = (LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig())
_TEXT_COMMAND = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")
_SPACING = re.compile(r"\\[,;:! ]|\\left|\\right|\\displaystyle|\s+")
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°")
_DECIMAL = re.compile(r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|[+-]?\.\d+")
_SLASH_FRACTION = re.compile(r"([+-]?\d+)/(\d+)")
_LATEX_FRACTION = re.compile(r"([+-]?)\\frac\{([+-]?\d+)\}\{([+-]?\d+)\}")
_WARM_UP_PAIRS = (
    ("2\\sqrt{2}", "\\sqrt{8}"),
    ("3\\sqrt{2}", "\\sqrt{8}"),
    ("7\\pi/3", "\\frac{7\\pi}{3}"),
    ("(x+2)^2", "x^2+4x+4"),
    ("(x+3)^2", "x^2+4x+4"),
    ("\\{2,4\\}", "\\{4,2\\}"),
    ("\\{2,14\\}", "\\{4,2\\}"),
    ("(2,7)", "[2,7)"),
    ("x=3", "3"),
    ("10\\%", "0.1"),
)
_GOLD_OPTION = re.compile(r"\(?([A-J])\)?")
_ANSWER_OPTION = re.compile(r"(?i:option|choice)?\(?([A-Ja-j])(?:\)|[.:、．：]|$)")


def rule_reward(response: str, gold: str, *, config: RuleRewardConfig | None = None) -> float:
    """r_rule of eq. 7: 1.0 when the final answer of ``response`` matches ``gold``, else 0.0.

    Safe in any thread: off the main thread math-verify runs without its signal timeout and the
    cheap cost bounds are the only guard, so use ``RuleScorerPool`` for a hard deadline.
    Raises ValueError for an empty gold answer.
    """
    return score_rule(response, gold, config).reward


def score_rule(response: str, gold: str, config: RuleRewardConfig | None = None) -> RuleResult:
    """Score one response against its gold answer, saying how the score was reached."""
    settings = config if config is not None else RuleRewardConfig()
    gold_answer = normalise_gold(gold)
    answer = extract_final_answer(
        response,
        fall_back_to_thinking=settings.fall_back_to_thinking,
        search_window_chars=settings.search_window_chars,
        max_answer_chars=settings.max_answer_chars,
    )
    if answer is None:
        return RuleResult(0.0, None, RuleStatus.NO_ANSWER)
    return compare_answers(answer, gold_answer, settings)


def normalise_gold(gold: str) -> str:
    """The gold answer as a bare expression: the last \\boxed argument if any, without ``$``."""
    boxed = extract_final_answer(gold, fall_back_to_thinking=False) if "box" in gold else None
    bare = (boxed if boxed is not None else gold).strip().strip("$").strip()
    if not bare:
        raise ValueError("gold answer is empty")
    return bare


def compare_answers(answer: str, gold: str, config: RuleRewardConfig) -> RuleResult:
    """Compare an extracted answer with a (normalised) gold answer, cheapest test first."""
    answer_key, gold_key = normalise_for_equality(answer), normalise_for_equality(gold)
    if answer_key and answer_key == gold_key:
        return RuleResult(1.0, answer, RuleStatus.OK)
    gold_option = _GOLD_OPTION.fullmatch(gold_key)
    if gold_option is not None:
        return RuleResult(
            _as_reward(option_letter(answer_key) == gold_option[1]), answer, RuleStatus.OK
        )
    answer_number = plain_rational(answer_key, config.max_number_digits)
    gold_number = plain_rational(gold_key, config.max_number_digits)
    if answer_number is not None and gold_number is not None:
        close = numbers_close(answer_number, gold_number, config)
        return RuleResult(_as_reward(close), answer, RuleStatus.OK)
    for label, expression in (("answer", answer), ("gold", gold)):
        reason = costly_expression_reason(expression, config)
        if reason is not None:
            return RuleResult(0.0, answer, RuleStatus.REJECTED, f"{label}: {reason}")
    return _verify_with_math_verify(answer, gold, config)


def normalise_for_equality(text: str) -> str:
    """Strip typesetting that never changes a value, so equal answers compare equal as strings."""
    text = text.strip().strip("$")
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    text = _TEXT_COMMAND.sub(r"\1", text)
    text = _DEGREES.sub("", text)
    text = _SPACING.sub("", text)
    return text.rstrip(".。")


def option_letter(answer_key: str) -> str | None:
    """The option letter an answer names ("B", "(b)", "C. 42", "optionD"), upper-cased."""
    match = _ANSWER_OPTION.match(answer_key)
    return match[1].upper() if match is not None else None


def plain_rational(text: str, max_digits: int) -> Fraction | None:
    """``text`` as an exact rational when it is a plain number, decimal or integer fraction."""
    if not text or len(text) > max_digits:
        return None
    if _DECIMAL.fullmatch(text):
        return Fraction(text.replace(",", ""))
    slash = _SLASH_FRACTION.fullmatch(text)
    if slash is not None:
        return _fraction_or_none(int(slash[1]), int(slash[2]))
    latex = _LATEX_FRACTION.fullmatch(text)
    if latex is not None:
        value = _fraction_or_none(int(latex[2]), int(latex[3]))
        return -value if value is not None and latex[1] == "-" else value
    return None


def numbers_close(answer: Fraction, gold: Fraction, config: RuleRewardConfig) -> bool:
    """|a - g| <= max(absolute, relative * max(|a|, |g|)), computed exactly."""
    difference = abs(answer - gold)
    scale = max(abs(answer), abs(gold))
    allowed = max(Fraction(config.absolute_tolerance), Fraction(config.relative_tolerance) * scale)
    return difference <= allowed


def warm_up_math_verify(config: RuleRewardConfig) -> None:
    """Run math-verify on each common kind of answer, matching and not, before real work.

    The first comparison of a kind (sets, intervals, polynomials, ...) imports and builds sympy
    machinery worth tens of milliseconds; a new worker pays it here, off the hot path.
    """
    for answer, gold in _WARM_UP_PAIRS:
        _verify_with_math_verify(answer, gold, config)


def _verify_with_math_verify(answer: str, gold: str, config: RuleRewardConfig) -> RuleResult:
    # signal.alarm exists only in the main thread; elsewhere math-verify must run unguarded.
    in_main_thread = threading.current_thread() is threading.main_thread()
    parse_timeout = config.parse_timeout_seconds if in_main_thread else None
    verify_timeout = config.verify_timeout_seconds if in_main_thread else None
    started = time.monotonic()
    gold_parsed = _parse_cached(gold, parse_timeout)
    answer_parsed = _parse_cached(answer, parse_timeout)
    matched = bool(
        gold_parsed
        and answer_parsed
        and verify(list(gold_parsed), list(answer_parsed), timeout_seconds=verify_timeout)
    )
    # math-verify swallows its timeouts and answers False; the elapsed time tells them apart.
    shortest_timeout = min(config.parse_timeout_seconds, config.verify_timeout_seconds)
    if not matched and in_main_thread and time.monotonic() - started >= shortest_timeout:
        return RuleResult(0.0, answer, RuleStatus.TIMEOUT, "math-verify timed out")
    return RuleResult(_as_reward(matched), answer, RuleStatus.OK)


@lru_cache(maxsize=4096)
def _parse_cached(expression: str, timeout_seconds: int | None) -> tuple[Any, ...]:
    # A GRPO group shares its gold and often repeats answers, so parses are worth keeping.
    parsed = parse(
        "\\boxed{" + expression + "}",
        extraction_config=_MATH_VERIFY_TARGETS,
        parsing_timeout=timeout_seconds,
    )
    return tuple(parsed)


def _fraction_or_none(numerator: int, denominator: int) -> Fraction | None:
    return Fraction(numerator, denominator) if denominator != 0 else None


def _as_reward(matched: bool) -> float:
    return 1.0 if matched else 0.0
