"""Cheap scan that keeps costly expressions away from math-verify in the rule reward.

math-verify hands answers to sympy, which evaluates ``9^{9^{9^9}}``, ``(10^{6})!`` or
``\\binom{10^{8}}{5\\cdot 10^{7}}`` literally and expands ``(x+1)^{1000}``, for seconds to
hours. Its ``signal.alarm`` timeout cannot run outside the main thread, so ``rule_reward``
first runs this linear scan and scores such expressions 0.0 without evaluating them.

Numeric powers are cheap (``2^{100000}`` is one big-integer power), so a digit base gets a large
exponent bound; a symbol or bracket base gets a small one, because sympy may expand it. The scan
is deliberately conservative: a harmless tower such as ``2^{2^{3}}`` is rejected too unless it
equals the gold answer as a string. It catches the known blow-ups, not every slow expression:
``RuleScorerPool`` is the hard deadline.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from hybridrl.config.rewards import RuleRewardConfig

_DIGIT_RUN = re.compile(r"\d+")
# Operators whose cost grows with the value of their argument.
_COMBINATORIAL = re.compile(r"!|\\(?:[dt]?binom|choose|Gamma|sum|prod)(?![A-Za-z])")
_SUBSCRIPT = re.compile(r"_\{[^{}]*\}|_\\?\w+")
_NUMERIC_POWER = re.compile(r"[\d)}\]]\s*(?:\^|\*\*)")
_SYMBOLIC_TEXT = re.compile(r"[A-Za-z\\]")
_OPENERS = "{(["
_CLOSERS = "})]"


@dataclass
class _Exponent:
    """An open exponent group: log10 of an upper bound of its value, and its log10 limit."""

    log_size: float
    log_limit: float
    limit: int


def costly_expression_reason(expression: str, config: RuleRewardConfig) -> str | None:
    """Why ``expression`` is too costly to verify, or None when it is cheap enough."""
    if len(expression) > config.max_expression_chars:
        return f"longer than {config.max_expression_chars} characters"
    digit_runs = _DIGIT_RUN.findall(expression)
    if max((len(run) for run in digit_runs), default=0) > config.max_number_digits:
        return f"a number with more than {config.max_number_digits} digits"
    if _COMBINATORIAL.search(expression):
        if max((int(run) for run in digit_runs), default=0) > config.max_factorial:
            return f"a factorial, binomial, sum or product beyond {config.max_factorial}"
        if _NUMERIC_POWER.search(_SUBSCRIPT.sub("", expression)):
            return "a factorial, binomial, sum or product with a numeric power"
    return power_problem(
        expression, config.max_exponent, config.max_symbolic_exponent, config.max_brace_depth
    )


def power_problem(
    expression: str, max_exponent: int, max_symbolic_exponent: int, max_depth: int
) -> str | None:
    """Reject exponents above their bound, numeric power towers and deep nesting.

    Exponents are written ``^x``, ``^{...}``, ``**x`` or ``**(...)``; a group opened right after
    a power operator is an exponent. A digit base (or a bracket holding only digits and
    operators) allows ``max_exponent``, any other base ``max_symbolic_exponent``. Inside an
    exponent the product of all integer literals bounds its value (``9\\cdot 9\\cdot 9``). A
    power inside an exponent is allowed only on a symbol (``e^{-x^2}``): on a number it is a
    tower (``9^{9^9}``).
    """
    groups: list[tuple[int, _Exponent | None]] = []  # (start index, exponent if it is one)
    exponents: list[_Exponent] = []
    pending: _Exponent | None = None  # the exponent a following bracket opens
    last_closed = (-1, -1)
    index = 0
    while index < len(expression):
        char = expression[index]
        if char == "\\":
            index += 2  # \{ and \} are literal braces; command names hold no operators
            continue
        if char in _OPENERS:
            groups.append((index, pending))
            if pending is not None:
                exponents.append(pending)
            pending = None
            if len(groups) > max_depth:
                return f"nesting deeper than {max_depth}"
        elif char in _CLOSERS:
            if groups:
                start, exponent = groups.pop()
                if exponent is not None:
                    exponents.pop()
                last_closed = (start, index)
        elif char.isdecimal():
            end = _end_of_digits(expression, index)
            if exponents:
                exponents[-1].log_size += math.log10(max(int(expression[index:end]), 1))
                if exponents[-1].log_size > exponents[-1].log_limit:
                    return f"an exponent that may exceed {exponents[-1].limit}"
            index = end
            continue
        elif char == "^" or expression.startswith("**", index):
            numeric = _numeric_base(expression, index, last_closed)
            if exponents and numeric:
                return "a tower of powers"
            limit = max_exponent if numeric else max_symbolic_exponent
            index = _skip_spaces(expression, index + (1 if char == "^" else 2))
            if index < len(expression) and expression[index] in "{(":
                pending = _Exponent(0.0, math.log10(limit), limit)
                continue
            reason = _bare_exponent_problem(expression, index, limit)
            if reason is not None:
                return reason
            continue
        if not char.isspace():
            pending = None
        index += 1
    return None


def _numeric_base(expression: str, operator_index: int, last_closed: tuple[int, int]) -> bool:
    # The base is what precedes the operator. A digit, or a bracket holding no letter or command
    # ((2+3)^{99}), evaluates to a number; anything else may be expanded symbolically.
    before = operator_index - 1
    while before >= 0 and expression[before].isspace():
        before -= 1
    if before < 0:
        return False
    if expression[before].isdecimal():
        return True
    start, end = last_closed
    if expression[before] in _CLOSERS and end == before:
        return _SYMBOLIC_TEXT.search(expression, start + 1, end) is None
    return False


def _bare_exponent_problem(expression: str, index: int, limit: int) -> str | None:
    # An unbraced exponent is a digit run or a single token; a second power right after it
    # (9^9^9) is a tower.
    end = _end_of_digits(expression, index)
    if end > index and int(expression[index:end]) > limit:
        return f"an exponent above {limit}"
    if end == index:
        end = index + 1
    after = _skip_spaces(expression, end)
    if expression.startswith("^", after) or expression.startswith("**", after):
        return "a tower of powers"
    return None


def _end_of_digits(expression: str, index: int) -> int:
    end = index
    while end < len(expression) and expression[end].isdecimal():
        end += 1
    return end


def _skip_spaces(expression: str, index: int) -> int:
    while index < len(expression) and expression[index].isspace():
        index += 1
    return index
