"""The character-level tokenizer built in code: fixed ids, round trips, special tokens, saving."""

from pathlib import Path

import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from hybridrl.models.tokenizer import COVERED_CHARACTERS, SPECIAL_TOKENS, build_tokenizer

# 7 special tokens, then digits (7..16), ASCII letters (17..68), punctuation (69..100),
# space, newline, tab (101..103), then 10 Chinese characters (104..113).
EXPECTED_VOCABULARY_SIZE = 114


def test_two_builds_give_identical_vocabularies() -> None:
    first, second = build_tokenizer(), build_tokenizer()
    assert first.get_vocab() == second.get_vocab()
    assert len(first) == EXPECTED_VOCABULARY_SIZE


def test_characters_have_the_documented_ids() -> None:
    tokenizer = build_tokenizer()
    ids = tokenizer.encode("0a+ \n答", add_special_tokens=False)
    assert ids == [7, 17, 79, 101, 102, 104]


@pytest.mark.parametrize(
    "text",
    [
        "The answer is \\boxed{42}.",
        "<think>1+1=2\nso</think> 答案是正确选项 B",
        "\\frac{a}{b} + x^{2}_{i} - [y] (z) | ~ `q` 'r' \"s\"\ttab",
        COVERED_CHARACTERS,
    ],
)
def test_covered_text_round_trips(text: str) -> None:
    tokenizer = build_tokenizer()
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.decode(ids) == text


def test_special_tokens_are_single_fixed_ids() -> None:
    tokenizer = build_tokenizer()
    assert [tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS] == list(range(7))
    assert (tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) == (0, 1, 2)
    assert tokenizer.unk_token_id == 3
    assert tokenizer.encode("<image><think>a</think>", add_special_tokens=False) == [4, 5, 17, 6]


def test_encoding_adds_no_bos_or_eos() -> None:
    tokenizer = build_tokenizer()
    assert tokenizer("ab")["input_ids"] == [17, 18]


def test_uncovered_character_encodes_to_unknown() -> None:
    tokenizer = build_tokenizer()
    assert tokenizer.encode("a€b", add_special_tokens=False) == [17, 3, 18]


def test_skip_special_tokens_drops_think_and_image_tokens() -> None:
    tokenizer = build_tokenizer()
    ids = tokenizer.encode("<image><think>x</think>y", add_special_tokens=False)
    assert tokenizer.decode(ids, skip_special_tokens=True) == "xy"


def test_saved_tokenizer_loads_with_the_same_ids(tmp_path: Path) -> None:
    tokenizer = build_tokenizer()
    tokenizer.save_pretrained(tmp_path)
    text = "<think>\\boxed{7}</think>答案是 C"
    expected = tokenizer.encode(text, add_special_tokens=False)
    for loaded in (
        PreTrainedTokenizerFast.from_pretrained(tmp_path),
        AutoTokenizer.from_pretrained(tmp_path),
    ):
        assert loaded.encode(text, add_special_tokens=False) == expected
        assert loaded.decode(expected) == text
        assert loaded.convert_tokens_to_ids("<image>") == 4
        assert loaded.pad_token_id == 0


def test_padding_side_is_honoured() -> None:
    right = build_tokenizer()(["a", "abc"], padding=True)["input_ids"]
    left = build_tokenizer("left")(["a", "abc"], padding=True)["input_ids"]
    assert right[0] == [17, 0, 0]
    assert left[0] == [0, 0, 17]


def test_unknown_padding_side_raises() -> None:
    with pytest.raises(ValueError, match="padding_side"):
        build_tokenizer("middle")
