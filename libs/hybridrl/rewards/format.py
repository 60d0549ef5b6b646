"""The format reward r_format of eq. 7: does a response follow the R1-style chat template?

The reward service scores every rollout with it next to the rule reward. The template is one
``<think>...</think>`` block at the very start (leading whitespace allowed) with non-empty
thinking, followed by a non-empty answer part. Nested, repeated or unclosed think tags fail.
Optionally the answer part must also hold an extractable final answer (``\\boxed{...}``,
"the answer is ...", an option letter), so that a model is not paid for an empty flourish.
The checks are substring counts and slices, linear in the length of the response.
"""

from __future__ import annotations

from hybridrl.config.rewards import FormatRewardConfig
from hybridrl.rewards.extract import THINK_CLOSE, extract_final_answer

THINK_OPEN = "<think>"


def format_reward(response: str, *, config: FormatRewardConfig | None = None) -> float:
    """r_format of eq. 7: 1.0 when ``response`` follows the R1 template, else 0.0."""
    settings = config if config is not None else FormatRewardConfig()
    body = response.lstrip()
    if not body.startswith(THINK_OPEN):
        return 0.0
    if body.count(THINK_OPEN) != 1 or body.count(THINK_CLOSE) != 1:
        return 0.0
    close = body.index(THINK_CLOSE)
    thinking = body[len(THINK_OPEN) : close]
    answer = body[close + len(THINK_CLOSE) :]
    if not thinking.strip() or not answer.strip():
        return 0.0
    if settings.require_final_answer and (
        extract_final_answer(answer, fall_back_to_thinking=False) is None
    ):
        return 0.0
    return 1.0
