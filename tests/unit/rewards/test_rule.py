"""Rule reward r_rule (eq. 7): fast paths, math-verify equivalence, cost bounds, threads."""

from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridrl.config.rewards import RuleRewardConfig
from hybridrl.rewards.cost_bounds import costly_expression_reason
from hybridrl.rewards.rule import (
    RuleStatus,
    normalise_for_equality,
    option_letter,
    plain_rational,
    rule_reward,
    score_rule,
)

CONFIG = RuleRewardConfig()


@pytest.mark.parametrize(
    ("response", "gold", "expected"),
    [
        (r"so $\boxed{\frac{1}{2}}$", "0.5", 1.0),
        (r"$\boxed{2\sqrt{2}}$", r"\sqrt{8}", 1.0),
        (r"$\boxed{3\sqrt{2}}$", r"\sqrt{8}", 0.0),
        (r"\boxed{\{1, \{2\}\}}", r"\{1,\{2\}\}", 1.0),
        (r"\boxed{7} hmm, no: \boxed{8}", "8", 1.0),
        (r"\boxed{7} hmm, no: \boxed{8}", "7", 0.0),
        ("The answer is 42.", "42", 1.0),
        ("The answer is 41.", "42", 0.0),
        ("The total is \\boxed{1,000}", "1000", 1.0),
        ("The total is \\boxed{1000}", "1,000", 1.0),
        ("(B)", "B", 1.0),
        ("(B)", "C", 0.0),
        ("正确选项是C", "C", 1.0),
        ("答案是 D", "D", 1.0),
        ("答案是 D", "A", 0.0),
        ("所以答案为 12。", "12", 1.0),
        (r"\boxed{\text{(B)}}", "B", 1.0),
        ("The answer is (C) since the rest fail", "(C)", 1.0),
        (r"\boxed{42}", "B", 0.0),
        (r"\boxed{\dfrac{3}{4}}", "0.75", 1.0),
        (r"\boxed{3/4}", r"\frac{3}{4}", 1.0),
        (r"\boxed{-\frac{1}{4}}", "-0.25", 1.0),
        (r"\boxed{90^\circ}", "90", 1.0),
        (r"\boxed{x^2+2x+1}", "(x+1)^2", 1.0),
        (r"\boxed{x^2+2x+2}", "(x+1)^2", 0.0),
        (r"\boxed{\frac{\pi}{2}}", r"\pi/2", 1.0),
        (r"\boxed{[0, 1)}", "[0,1)", 1.0),
        (r"\boxed{(0, 1)}", "[0,1)", 0.0),
        (r"\boxed{3}", r"\boxed{3}", 1.0),
        (r"\boxed{3}", "$3$", 1.0),
        ("I could not solve it.", "3", 0.0),
        ("", "3", 0.0),
    ],
)
def test_hand_picked_responses_score_as_expected(response: str, gold: str, expected: float) -> None:
    assert rule_reward(response, gold) == expected


def test_answer_after_think_counts_not_the_one_inside() -> None:
    response = r"<think>first guess \boxed{5}</think>The answer is \boxed{6}"
    assert rule_reward(response, "6") == 1.0
    assert rule_reward(response, "5") == 0.0


def test_answer_only_inside_think_counts_unless_fallback_is_off() -> None:
    response = r"<think>so it is \boxed{5}</think>Done."
    assert rule_reward(response, "5") == 1.0
    strict = RuleRewardConfig(fall_back_to_thinking=False)
    assert rule_reward(response, "5", config=strict) == 0.0


def test_numbers_compare_within_the_relative_tolerance() -> None:
    assert rule_reward(r"\boxed{0.3333333}", r"\frac{1}{3}") == 1.0
    assert rule_reward(r"\boxed{0.333}", r"\frac{1}{3}") == 0.0
    loose = RuleRewardConfig(relative_tolerance=1e-2)
    assert rule_reward(r"\boxed{0.333}", r"\frac{1}{3}", config=loose) == 1.0


def test_absolute_tolerance_decides_near_zero() -> None:
    assert rule_reward(r"\boxed{0.0000000001}", "0") == 1.0
    assert rule_reward(r"\boxed{0.001}", "0") == 0.0


def test_score_rule_reports_answer_and_status() -> None:
    correct = score_rule(r"\boxed{2\sqrt{2}}", r"\sqrt{8}")
    assert (correct.reward, correct.answer, correct.status) == (1.0, r"2\sqrt{2}", RuleStatus.OK)
    wrong = score_rule(r"\boxed{4}", "5")
    assert (wrong.reward, wrong.answer, wrong.status) == (0.0, "4", RuleStatus.OK)
    missing = score_rule("no idea", "5")
    assert (missing.reward, missing.answer, missing.status) == (0.0, None, RuleStatus.NO_ANSWER)


def test_power_tower_is_rejected_without_evaluation() -> None:
    result = score_rule(r"\boxed{9^{9^{9^9}}}", "3")
    assert result.reward == 0.0
    assert result.status is RuleStatus.REJECTED
    assert result.detail == "answer: a tower of powers"


def test_hundred_thousand_digit_number_scores_zero() -> None:
    # Longer than any answer limit: not even extracted, so never parsed.
    boxed = score_rule(rf"\boxed{{{'7' * 100_000}}}", "3")
    assert (boxed.reward, boxed.status) == (0.0, RuleStatus.NO_ANSWER)
    # Within the answer limit but above the digit bound: extracted, then rejected unparsed.
    phrased = score_rule("The answer is " + "7" * 1_000 + "1", "3")
    assert (phrased.reward, phrased.status) == (0.0, RuleStatus.REJECTED)
    assert phrased.detail == "answer: a number with more than 200 digits"


def test_identical_huge_answers_match_by_string_before_any_bound() -> None:
    huge = "7" * 1_000
    assert rule_reward(rf"\boxed{{{huge}}}", huge) == 1.0


def test_megabyte_of_braces_has_no_answer() -> None:
    result = score_rule("{" * 1_000_000, "3")
    assert (result.reward, result.status) == (0.0, RuleStatus.NO_ANSWER)


def test_costly_gold_is_rejected_too() -> None:
    result = score_rule(r"\boxed{x+1}", "10^{10^{10}}")
    assert (result.status, result.detail) == (RuleStatus.REJECTED, "gold: a tower of powers")


def test_rule_reward_works_outside_the_main_thread() -> None:
    pairs = [
        (r"\boxed{2\sqrt{3}}", r"\sqrt{12}"),
        (r"\boxed{(x+2)^2}", "x^2+4x+4"),
        (r"\boxed{9^{9^{9^9}}}", "3"),
        (r"\boxed{\{2,1\}}", r"\{1,2\}"),
    ]
    with ThreadPoolExecutor(max_workers=2) as executor:
        rewards = list(executor.map(lambda pair: rule_reward(*pair), pairs))
    assert rewards == [1.0, 1.0, 0.0, 1.0]


def test_empty_gold_raises() -> None:
    with pytest.raises(ValueError, match="gold answer is empty"):
        rule_reward(r"\boxed{1}", "  $ $ ")


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("9^{9^{9^9}}", "a tower of powers"),
        ("9^9^9", "a tower of powers"),
        ("2**3**4", "a tower of powers"),
        ("(9)^{(9)^{9}}", "a tower of powers"),
        ("2^{10001}", "an exponent that may exceed 10000"),
        (r"2^{10\cdot 1001}", "an exponent that may exceed 10000"),
        ("2**(3*4000)", "an exponent that may exceed 10000"),
        ("2^20000", "an exponent above 10000"),
        ("(x+1)^{201}", "an exponent that may exceed 200"),
        ("x^300", "an exponent above 200"),
        (r"(\sqrt{2}+1)^{2023}", "an exponent that may exceed 200"),
        ("100000!", "a factorial, binomial, sum or product beyond 1000"),
        ("(10^{6})!", "a factorial, binomial, sum or product with a numeric power"),
        (
            r"\binom{10^{8}}{5\cdot 10^{7}}",
            "a factorial, binomial, sum or product with a numeric power",
        ),
        (r"\Gamma(10^{9})", "a factorial, binomial, sum or product with a numeric power"),
        ("1" * 201, "a number with more than 200 digits"),
        ("x" * 513, "longer than 512 characters"),
        ("{" * 30 + "}" * 30, "nesting deeper than 24"),
        ("e^{-x^2}", None),
        ("2^{2023}-1", None),
        ("(-2)^{2023}", None),
        ("(x+1)^{200}", None),
        (r"\frac{1}{2}^{10}", None),
        ("x^{2}+3x+1", None),
        ("a^{b^{c}}", None),
        (r"\binom{1000}{500}", None),
        (r"\sum_{i=1}^{n} i^2", None),
        ("20!", None),
    ],
)
def test_cost_bounds_reject_only_costly_expressions(expression: str, reason: str | None) -> None:
    assert costly_expression_reason(expression, CONFIG) == reason


def test_plain_rational_reads_numbers_and_integer_fractions() -> None:
    assert plain_rational("1,000", 200) == Fraction(1000)
    assert plain_rational("-0.25", 200) == Fraction(-1, 4)
    assert plain_rational("3/4", 200) == Fraction(3, 4)
    assert plain_rational(r"-\frac{3}{4}", 200) == Fraction(-3, 4)
    assert plain_rational("1/0", 200) is None
    assert plain_rational("x", 200) is None
    assert plain_rational("1" * 300, 200) is None


def test_option_letter_and_normalisation() -> None:
    assert option_letter("(b)") == "B"
    assert option_letter("C.42") == "C"
    assert option_letter("A+B") is None
    assert normalise_for_equality(r"$\dfrac{1}{2}$") == r"\frac{1}{2}"
    assert normalise_for_equality(r"\left( 1, 2 \right)") == "(1,2)"


@settings(max_examples=200, deadline=None)
@given(response=st.text(), gold=st.text().filter(lambda text: text.strip().strip("$").strip()))
def test_rule_reward_never_raises_on_arbitrary_text(response: str, gold: str) -> None:
    assert rule_reward(response, gold) in (0.0, 1.0)


_TOKENS = [
    "\\boxed{",
    "}",
    "{",
    "^",
    "9",
    "2",
    "x",
    "!",
    "\\frac",
    "\\sqrt",
    "(",
    ")",
    "+",
    "**",
    ",",
    "\\{",
    "\\}",
    "答案是",
    "The answer is ",
    "</think>",
    "$",
    ".",
    "-",
]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(_TOKENS), max_size=24).map("".join))
def test_rule_reward_never_raises_on_math_like_fragments(response: str) -> None:
    assert rule_reward(response, r"\frac{1}{2}") in (0.0, 1.0)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_cost_bounds_never_raise_on_arbitrary_text(expression: str) -> None:
    reason = costly_expression_reason(expression, CONFIG)
    assert reason is None or isinstance(reason, str)
