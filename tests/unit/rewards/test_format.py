"""Format reward r_format (eq. 7): the R1-style <think>...</think> template."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridrl.config.rewards import FormatRewardConfig
from hybridrl.rewards.format import format_reward

REQUIRE_ANSWER = FormatRewardConfig(require_final_answer=True)


@pytest.mark.parametrize(
    "response",
    [
        "<think>2 + 2 is 4.</think>The answer is \\boxed{4}.",
        "  \n<think>\nreasoning\n</think>\n\nAnswer: 4",
        "<think>x</think>y",
    ],
)
def test_template_followed_scores_one(response: str) -> None:
    assert format_reward(response) == 1.0


@pytest.mark.parametrize(
    ("response", "why"),
    [
        ("The answer is 4.", "no think block"),
        ("Sure! <think>reasoning</think>4", "think block not at the start"),
        ("<think>reasoning without end. The answer is 4", "missing close tag"),
        ("<think></think>4", "empty thinking"),
        ("<think>  \n </think>4", "blank thinking"),
        ("<think>reasoning</think>", "empty answer"),
        ("<think>reasoning</think>  \n", "blank answer"),
        ("<think>a<think>b</think>c</think>4", "nested think"),
        ("<think>a</think>4<think>b</think>5", "two think blocks"),
        ("<think>a</think>4</think>", "stray close tag"),
        ("</think><think>a</think>4", "close before open"),
        ("<THINK>a</THINK>4", "tags are case-sensitive"),
        ("", "empty response"),
    ],
)
def test_template_broken_scores_zero(response: str, why: str) -> None:
    assert format_reward(response) == 0.0, why


def test_required_final_answer_must_be_extractable_from_the_answer_part() -> None:
    assert format_reward("<think>r</think>\\boxed{4}", config=REQUIRE_ANSWER) == 1.0
    assert format_reward("<think>r</think>答案是 D", config=REQUIRE_ANSWER) == 1.0
    assert format_reward("<think>r</think>I am not sure.", config=REQUIRE_ANSWER) == 0.0
    # An answer inside the thinking does not make up for an answer part without one.
    assert format_reward("<think>\\boxed{4}</think>Done.", config=REQUIRE_ANSWER) == 0.0
    assert format_reward("<think>\\boxed{4}</think>Done.") == 1.0


def test_megabyte_response_is_scored() -> None:
    assert format_reward("<think>" + "step " * 200_000 + "</think>\\boxed{1}") == 1.0
    assert format_reward("<think>" * 200_000) == 0.0


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_format_reward_never_raises_on_arbitrary_text(response: str) -> None:
    assert format_reward(response) in (0.0, 1.0)
    assert format_reward(response, config=REQUIRE_ANSWER) in (0.0, 1.0)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(["<think>", "</think>", " ", "\n", "a", "\\boxed{1}"]), max_size=12)
)
def test_format_reward_is_one_exactly_for_the_template(parts: list[str]) -> None:
    response = "".join(parts)
    body = response.lstrip()
    thinking, _, answer = body.removeprefix("<think>").partition("</think>")
    expected = (
        body.startswith("<think>")
        and body.count("<think>") == 1
        and body.count("</think>") == 1
        and bool(thinking.strip())
        and bool(answer.strip())
    )
    assert format_reward(response) == float(expected)
