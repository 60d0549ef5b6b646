"""Final-answer extraction: the step of the rule reward that finds what a response answered.

A rollout's response is free text, usually an R1-style ``<think>...</think>`` block followed by
the answer. The rule reward (eq. 7, r_rule) compares only the final answer with the gold one,
so this module finds it, in order of trust:

1. the argument of the last ``\\boxed{...}`` / ``\\fbox{...}`` (balanced, nested braces);
2. the text after the last "the answer is" / "answer:" / "final answer:" / "答案是" / "答案：";
3. the last option letter: "(C)", "option C", "正确选项是C", "选C".

The text after ``</think>`` is searched first; the thinking only when the answer part holds
nothing and ``fall_back_to_thinking`` is set. Every step does work linear in the input and
bounded by the window sizes, so a megabyte of adversarial text returns quickly.
"""

from __future__ import annotations

import re
import unicodedata

THINK_CLOSE = "</think>"
_BOX_COMMANDS = ("\\boxed", "\\fbox")
# A truncated response may end in many unclosed \boxed{; trying a few of them is enough.
_MAX_BOX_ATTEMPTS = 8
_MAX_PHRASE_ANSWER_CHARS = 300

_ANSWER_PHRASE = re.compile(
    r"(?:\b(?:(?:final|correct)\s+)?answer(?:\s+is|\s*[:=：])"
    r"|(?:最终|正确)?答案(?:应该|应)?(?:是|为|[:：]))",
    re.IGNORECASE,
)
_OPTION_LETTER = re.compile(
    r"(?:(?i:\boption|\bchoice)|(?:正确|正確)?[选選][项項](?:是|为|為)?|[选選])\s*(?:[:：]\s*)?(?:[(（]\s*)?"
    r"([A-Ja-jＡ-Ｊａ-ｊ])(?![A-Za-zＡ-Ｚａ-ｚ])"
    r"|[(（]([A-JＡ-Ｊ])[)）]"
)
_DISPLAY_MATH = re.compile(r"(?:\$\$|\\\[)(.{1,300}?)(?:\$\$|\\\])", re.DOTALL)
_INLINE_MATH = re.compile(r"\$([^$]{1,300})\$|\\\((.{1,300}?)\\\)")
_SENTENCE_END = re.compile(r"。|；|，|\.\s|\.$")


def split_thinking(response: str) -> tuple[str | None, str]:
    """Split at the last ``</think>`` into (thinking, answer part); thinking is None if unclosed."""
    close = response.rfind(THINK_CLOSE)
    if close < 0:
        return None, response
    return response[:close], response[close + len(THINK_CLOSE) :]


def extract_final_answer(
    response: str,
    *,
    fall_back_to_thinking: bool = True,
    search_window_chars: int = 4000,
    max_answer_chars: int = 2000,
) -> str | None:
    """The final answer of ``response`` as a stripped string, or None when there is none."""
    if search_window_chars < 1 or max_answer_chars < 1:
        raise ValueError("search_window_chars and max_answer_chars must be positive")
    thinking, answer_part = split_thinking(response)
    found = extract_from_segment(answer_part, search_window_chars, max_answer_chars)
    if found is None and thinking is not None and fall_back_to_thinking:
        found = extract_from_segment(thinking, search_window_chars, max_answer_chars)
    return found


def extract_from_segment(text: str, search_window_chars: int, max_answer_chars: int) -> str | None:
    """Boxed answer, else answer phrase, else option letter, within one segment of a response."""
    boxed = extract_last_boxed(text, max_answer_chars)
    if boxed is not None:
        return boxed
    window = text[-search_window_chars:]
    phrased = extract_answer_phrase(window)
    if phrased is not None:
        return phrased
    return extract_option_letter(window)


def extract_last_boxed(text: str, max_answer_chars: int) -> str | None:
    """Argument of the last ``\\boxed``/``\\fbox`` that closes within ``max_answer_chars``."""
    end = len(text)
    for _ in range(_MAX_BOX_ATTEMPTS):
        starts = [(text.rfind(command, 0, end), command) for command in _BOX_COMMANDS]
        position, command = max(starts)
        if position < 0:
            return None
        argument = _read_argument(text, position + len(command), max_answer_chars)
        if argument:
            return argument
        end = position
    return None


def _read_argument(text: str, start: int, max_chars: int) -> str | None:
    """The brace group (or single token) starting at ``start``; None if it does not close."""
    index = start
    limit = min(len(text), start + max_chars + 2)
    while index < limit and text[index] in " \t":
        index += 1
    if index >= limit:
        return None
    if text[index] != "{":
        # "\boxed 5": TeX boxes one token; models mean the number or word that follows.
        token = re.match(r"[^\s${}\\]{1,64}", text[index:limit])
        return token.group(0).strip() if token else None
    depth = 0
    position = index
    while position < limit:
        char = text[position]
        if char == "\\":
            position += 2  # an escaped \{ or \} does not open or close a group
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[index + 1 : position].strip()
        position += 1
    return None


def extract_answer_phrase(window: str) -> str | None:
    """Text after the last answer phrase ("the answer is", "答案是", ...) on its line."""
    last = _last_match(_ANSWER_PHRASE, window)
    if last is None:
        return None
    return clean_phrase_answer(window[last.end() : last.end() + _MAX_PHRASE_ANSWER_CHARS])


def clean_phrase_answer(tail: str) -> str | None:
    """Trim the text after an answer phrase down to the answer itself."""
    tail = tail.lstrip(" \t\r\n:：*")
    display = _DISPLAY_MATH.match(tail)
    if display is not None:
        answer = display.group(1)
    else:
        line = tail.split("\n", 1)[0]
        math = _INLINE_MATH.search(line)
        if math is not None:
            answer = math.group(1) or math.group(2) or ""
        else:
            sentence_end = _SENTENCE_END.search(line)
            answer = line[: sentence_end.start()] if sentence_end else line
    answer = answer.strip().strip("*$").strip().rstrip(".。").strip()
    return answer or None


def extract_option_letter(window: str) -> str | None:
    """The last multiple-choice letter in ``window`` ("(C)", "option C", "选C"), upper-cased."""
    last = _last_match(_OPTION_LETTER, window)
    if last is None:
        return None
    letter = last.group(1) or last.group(2)
    return unicodedata.normalize("NFKC", letter).upper()


def _last_match(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    last = None
    for match in pattern.finditer(text):
        last = match
    return last
