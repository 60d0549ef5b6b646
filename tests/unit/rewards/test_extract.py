"""Final-answer extraction: boxed, answer phrases, option letters, think blocks, bounded work."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridrl.rewards.extract import (
    extract_final_answer,
    extract_last_boxed,
    split_thinking,
)


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (r"so $\boxed{\frac{1}{2}}$.", r"\frac{1}{2}"),
        (r"\boxed{\frac{a}{b^{2}}} done", r"\frac{a}{b^{2}}"),
        (r"first \boxed{1}, then \boxed{2}", "2"),
        (r"\boxed{\{1,2\}}", r"\{1,2\}"),
        (r"\fbox{12}", "12"),
        (r"\boxed 5 apples", "5"),
        (r"\boxed{ 7 }", "7"),
        (r"\boxed{3} and finally \boxed{4", "3"),
        (r"\boxed{3} then \boxed{}", "3"),
    ],
)
def test_boxed_answer_is_the_last_closed_box(response: str, expected: str) -> None:
    assert extract_final_answer(response) == expected


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("The answer is 42.", "42"),
        ("Thus the final answer is 3.14.", "3.14"),
        (r"Answer: $\frac{3}{4}$ because the ratio is fixed", r"\frac{3}{4}"),
        ("final answer: 7", "7"),
        ("**Answer:** 12", "12"),
        ("The answer is:\n$$\n\\frac{1}{2}\n$$\nDone.", r"\frac{1}{2}"),
        ("The answer is 1 and later the answer is 2", "2"),
        ("答案是 D", "D"),
        ("答案：C。", "C"),
        ("所以答案为$x=2$。", "x=2"),
        ("最终答案是 12，因为两边相等", "12"),
        ("The answer is: 1, 2, 3", "1, 2, 3"),
    ],
)
def test_answer_phrase_gives_the_text_after_the_last_phrase(response: str, expected: str) -> None:
    assert extract_final_answer(response) == expected


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("After checking each, the correct option is (B).", "B"),
        ("正确选项是C", "C"),
        ("故选：B", "B"),
        ("选項D", "D"),
        ("I pick option c", "C"),
        ("所以选（Ｃ）", "C"),
        ("(A) is wrong, (B) too, so (D)", "D"),
    ],
)
def test_option_letter_is_the_last_one_named(response: str, expected: str) -> None:
    assert extract_final_answer(response) == expected


def test_boxed_answer_beats_a_later_answer_phrase() -> None:
    assert extract_final_answer(r"\boxed{5}. The answer is 6") == "5"


def test_answer_phrase_beats_an_option_letter() -> None:
    assert extract_final_answer("Options (A) and (B) fail. The answer is 9") == "9"


@pytest.mark.parametrize(
    "response", ["no number here", "", "The answer is", "f(x) = x", "答案是。", r"\boxed{"]
)
def test_no_answer_gives_none(response: str) -> None:
    assert extract_final_answer(response) is None


def test_answer_after_think_is_preferred_to_answer_inside() -> None:
    response = r"<think>maybe \boxed{3}</think>The answer is 4"
    assert extract_final_answer(response) == "4"


def test_answer_only_inside_think_is_found_when_falling_back() -> None:
    response = r"<think>so \boxed{3}</think>I am done."
    assert extract_final_answer(response) == "3"
    assert extract_final_answer(response, fall_back_to_thinking=False) is None


def test_unclosed_think_is_searched_as_a_whole() -> None:
    assert extract_final_answer(r"<think>long... \boxed{8}") == "8"


def test_split_thinking_splits_at_the_last_close_tag() -> None:
    assert split_thinking("<think>a</think>b</think>c") == ("<think>a</think>b", "c")
    assert split_thinking("plain") == (None, "plain")


def test_box_longer_than_the_limit_is_not_an_answer() -> None:
    assert extract_last_boxed(r"\boxed{" + "1" * 50 + "}", max_answer_chars=10) is None
    assert extract_last_boxed(r"\boxed{" + "1" * 5 + "}", max_answer_chars=10) == "11111"


def test_answer_phrase_is_read_only_in_the_trailing_window() -> None:
    response = "The answer is 5\n" + "x" * 500
    assert extract_final_answer(response, search_window_chars=100) is None
    assert extract_final_answer(response, search_window_chars=1000) == "5"


@pytest.mark.parametrize(
    "response",
    [
        "{" * 1_000_000,
        "\\boxed{" * 200_000,
        "\\boxed{" + "{" * 1_000_000,
        "option " * 200_000,
        " " * 1_000_000 + "option",
        "答案是" * 300_000,
        "The answer is " + "$" * 1_000_000,
    ],
)
def test_megabyte_adversarial_input_returns_without_an_answer(response: str) -> None:
    assert extract_final_answer(response) is None


def test_megabyte_reasoning_still_yields_the_final_box() -> None:
    assert extract_final_answer("step. " * 200_000 + r"\boxed{17}") == "17"


def test_bad_window_sizes_raise() -> None:
    with pytest.raises(ValueError, match="positive"):
        extract_final_answer("x", search_window_chars=0)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_extraction_never_raises_on_arbitrary_text(response: str) -> None:
    found = extract_final_answer(response)
    assert found is None or (found and found == found.strip())


_TOKENS = [
    "\\boxed{",
    "\\fbox{",
    "{",
    "}",
    "<think>",
    "</think>",
    "answer is ",
    "答案是",
    "(",
    ")",
    "A",
    "C",
    "option ",
    "选",
    "$",
    "\n",
    "1",
    "\\",
    " ",
    ".",
    "：",
    "$$",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_TOKENS), max_size=40).map("".join))
def test_extraction_never_raises_on_answer_like_fragments(response: str) -> None:
    found = extract_final_answer(response)
    assert found is None or (found and found == found.strip())
