"""The policy's prompt layout: bos, image placeholders, user text, assistant cue; and decoding."""

import pytest
from transformers import PreTrainedTokenizerFast

from hybridrl.models.prompting import (
    ASSISTANT_CUE,
    decode_response,
    encode_prompt,
    strip_image_placeholders,
)
from hybridrl.models.tokenizer import build_tokenizer

BOS, EOS, PAD, IMAGE, THINK, END_THINK = 1, 2, 0, 4, 5, 6
# "\nAnswer: " in the character-level vocabulary: newline 102, 'A' 43, letters a=17..z=42,
# ':' 84, space 101.
CUE_IDS = [102, 43, 30, 35, 39, 21, 34, 84, 101]


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    return build_tokenizer()


def test_cue_ids_match_the_documented_cue(tokenizer: PreTrainedTokenizerFast) -> None:
    assert tokenizer.encode(ASSISTANT_CUE, add_special_tokens=False) == CUE_IDS


def test_image_prompt_is_bos_placeholders_text_cue(tokenizer: PreTrainedTokenizerFast) -> None:
    # 'H' = 43 + 7 = 50, 'i' = 25, '?' = 89.
    assert (
        encode_prompt(tokenizer, "Hi?", True, 16) == [BOS] + [IMAGE] * 16 + [50, 25, 89] + CUE_IDS
    )


def test_text_prompt_has_no_placeholders(tokenizer: PreTrainedTokenizerFast) -> None:
    assert encode_prompt(tokenizer, "Hi?", False, 16) == [BOS, 50, 25, 89, *CUE_IDS]


@pytest.mark.parametrize("text", ["a<image>b", "<image>ab", "a<ima<image>ge>b", "ab<image><image>"])
def test_placeholder_text_in_the_question_is_removed(
    tokenizer: PreTrainedTokenizerFast, text: str
) -> None:
    assert encode_prompt(tokenizer, text, False, 16) == [BOS, 17, 18, *CUE_IDS]
    with_image = encode_prompt(tokenizer, text, True, 16)
    assert with_image.count(IMAGE) == 16
    assert with_image[17:] == [17, 18, *CUE_IDS]


def test_other_special_token_text_is_spelled_out(tokenizer: PreTrainedTokenizerFast) -> None:
    # '<' 86, '/' 83, 's' 35, '>' 88: a typed "</s>" must not end the prompt.
    ids = encode_prompt(tokenizer, "</s>", False, 16)
    assert ids == [BOS, 86, 83, 35, 88, *CUE_IDS]
    assert EOS not in ids


def test_nested_placeholders_are_stripped_completely() -> None:
    assert strip_image_placeholders("x<ima<im<image>age>ge>y") == "xy"


def test_image_prompt_needs_a_positive_placeholder_count(
    tokenizer: PreTrainedTokenizerFast,
) -> None:
    with pytest.raises(ValueError, match="num_image_tokens"):
        encode_prompt(tokenizer, "Hi", True, 0)


def test_decode_stops_at_eos_and_keeps_think_tags(tokenizer: PreTrainedTokenizerFast) -> None:
    # '3' = 10, 'a' = 17.
    assert decode_response(tokenizer, [THINK, 10, END_THINK, EOS, 17]) == "<think>3</think>"


def test_decode_skips_padding(tokenizer: PreTrainedTokenizerFast) -> None:
    assert decode_response(tokenizer, [17, PAD, 18, PAD]) == "ab"
    assert decode_response(tokenizer, [EOS]) == ""
    assert decode_response(tokenizer, []) == ""
