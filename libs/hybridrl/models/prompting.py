"""The policy's prompt layout: how a question (and its image) becomes token ids, and back.

Rollout workers encode every prompt with ``encode_prompt`` before sampling, and the learner
rebuilds the same ids (prompt, then the sampled response) to recompute log-probs for eqs. (3)-(5)
and (8), so both sides must agree on this one layout:

    [bos] [<image> x num_image_tokens, when there is an image] user text "\\nAnswer: "

- ``<image>`` placeholders come first, in one contiguous run, one per visual feature
  (``VisionLanguageModelConfig.num_image_tokens``, 16 for the tiny model); the model puts the
  image features there.
- The user text is stripped of the placeholder string, and any other special-token string in it
  (``</s>``, ``<think>``, ...) is encoded character by character, so a prompt cannot inject image
  features, end the sequence early or open the reasoning block.
- ``ASSISTANT_CUE`` is a short fixed cue after which the response starts; it is short because
  the tiny character-level tokenizer spends one token per character.

The reward model lays out its own input (``hybridrl.rewards.reward_model``); the two layouts need
not match.
"""

from collections.abc import Sequence

from transformers import PreTrainedTokenizerBase

from hybridrl.models.tokenizer import IMAGE_TOKEN

ASSISTANT_CUE = "\nAnswer: "


def strip_image_placeholders(text: str, image_token: str = IMAGE_TOKEN) -> str:
    """``text`` without any occurrence of ``image_token``, including ones that removing an inner
    occurrence would create (``"<ima<image>ge>"``)."""
    if not image_token:
        raise ValueError("image_token must be a non-empty string")
    while image_token in text:
        text = text.replace(image_token, "")
    return text


def encode_prompt(
    tokenizer: PreTrainedTokenizerBase,
    text: str,
    has_image: bool,
    num_image_tokens: int,
) -> list[int]:
    """Token ids of one prompt, laid out as the module docstring says (no padding).

    Args:
        tokenizer: the policy's tokenizer; it needs an ``<image>`` token when ``has_image``.
        text: the user's question; placeholder strings in it are removed.
        has_image: whether an image goes with the prompt.
        num_image_tokens: placeholders per image (> 0 when ``has_image``).
    """
    if not isinstance(text, str):
        raise ValueError(f"text must be a string, got {type(text).__name__}")
    image_ids: list[int] = []
    if has_image:
        if num_image_tokens <= 0:
            raise ValueError(f"num_image_tokens must be positive, got {num_image_tokens}")
        image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
        if not isinstance(image_token_id, int) or image_token_id == tokenizer.unk_token_id:
            raise ValueError(f"the tokenizer has no {IMAGE_TOKEN} token")
        image_ids = [image_token_id] * num_image_tokens
    bos = [] if tokenizer.bos_token_id is None else [int(tokenizer.bos_token_id)]
    # split_special_tokens: "</s>" typed by a user is five characters, not the eos id.
    text_ids = tokenizer.encode(
        strip_image_placeholders(text) + ASSISTANT_CUE,
        add_special_tokens=False,
        split_special_tokens=True,
    )
    return bos + image_ids + [int(token) for token in text_ids]


def decode_response(tokenizer: PreTrainedTokenizerBase, token_ids: Sequence[int]) -> str:
    """The text of a response: tokens up to (not including) the first eos, padding skipped.

    Other special tokens stay in the text: the format reward looks for ``<think>``/``</think>``.
    """
    eos_id = tokenizer.eos_token_id
    pad_id = tokenizer.pad_token_id
    kept: list[int] = []
    for token in token_ids:
        if eos_id is not None and token == eos_id:
            break
        if pad_id is not None and token == pad_id:
            continue
        kept.append(int(token))
    return str(tokenizer.decode(kept, skip_special_tokens=False))
