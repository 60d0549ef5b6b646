"""A small character-level tokenizer built in code, for tests and local runs.

Nothing can be downloaded on the machines that run the test suite, so the tiny policy and reward
models of ``hybridrl.models.vlm`` and ``hybridrl.rewards.reward_model`` use this tokenizer instead
of a hub checkpoint's. A real run loads the language model's own tokenizer from a local path with
``transformers.AutoTokenizer.from_pretrained``; everything downstream sees the same
``PreTrainedTokenizerFast`` interface either way.

The vocabulary is one token per character (digits, ASCII letters and punctuation, space, newline,
tab, the LaTeX characters ``\\boxed{}`` needs, and the Chinese characters that appear in answers)
plus special tokens that always encode to a single id. Ids are fixed by the order of the literal
lists below, so two builds give the same ids. Encoding adds no BOS/EOS by itself: the code that
lays out a prompt (chat template, reward-model input) decides where they go.
"""

import string

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

PAD_TOKEN = "<pad>"
BOS_TOKEN = "<s>"
EOS_TOKEN = "</s>"
UNK_TOKEN = "<unk>"
IMAGE_TOKEN = "<image>"
THINK_START_TOKEN = "<think>"
THINK_END_TOKEN = "</think>"

# Order fixes the ids: pad=0, bos=1, eos=2, unk=3, <image>=4, <think>=5, </think>=6.
SPECIAL_TOKENS: tuple[str, ...] = (
    PAD_TOKEN,
    BOS_TOKEN,
    EOS_TOKEN,
    UNK_TOKEN,
    IMAGE_TOKEN,
    THINK_START_TOKEN,
    THINK_END_TOKEN,
)

# Chinese characters that occur in answers and rubric phrases such as "答案是" ("the answer is").
CHINESE_CHARACTERS = "答案是正确选项错误的"

# string.punctuation already holds the backslash and braces that "\boxed{...}" needs.
COVERED_CHARACTERS: str = (
    string.digits + string.ascii_letters + string.punctuation + " \n\t" + CHINESE_CHARACTERS
)


def build_tokenizer(padding_side: str = "right") -> PreTrainedTokenizerFast:
    """Build the character-level tokenizer.

    Every character of ``COVERED_CHARACTERS`` is one token and round-trips through
    ``encode``/``decode``; any other character encodes to ``<unk>``. The special tokens of
    ``SPECIAL_TOKENS`` are matched before the text is split into characters, so ``"<image>"`` in a
    prompt is one id, not seven.

    Args:
        padding_side: ``"right"`` or ``"left"``, the side ``tokenizer.pad`` fills.

    Returns:
        A ``PreTrainedTokenizerFast`` that saves and loads with ``save_pretrained`` /
        ``from_pretrained`` (or ``AutoTokenizer.from_pretrained``).
    """
    if padding_side not in ("right", "left"):
        raise ValueError(f"padding_side must be 'right' or 'left', got {padding_side!r}")
    vocabulary = {
        token: index for index, token in enumerate(SPECIAL_TOKENS + tuple(COVERED_CHARACTERS))
    }
    backend = Tokenizer(models.WordLevel(vocab=vocabulary, unk_token=UNK_TOKEN))
    # "[\s\S]" matches any single character, newline included, in every regex dialect.
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    # Fuse joins the pieces back without the spaces a word-level decoder would insert.
    backend.decoder = decoders.Fuse()
    backend.add_special_tokens(
        [AddedToken(token, special=True, normalized=False) for token in SPECIAL_TOKENS]
    )
    return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=backend,
        pad_token=PAD_TOKEN,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        unk_token=UNK_TOKEN,
        extra_special_tokens=[IMAGE_TOKEN, THINK_START_TOKEN, THINK_END_TOKEN],
        clean_up_tokenization_spaces=False,
        padding_side=padding_side,
    )
