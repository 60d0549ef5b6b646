"""``hybridrl reward``: check a response against a gold answer with the local reward parts."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hybridrl.rewards.extract import extract_final_answer
from hybridrl.rewards.format import format_reward
from hybridrl.rewards.hybrid import hybrid_reward
from hybridrl.rewards.rule import rule_reward

reward_app = typer.Typer(
    help="Score responses with the rule and format rewards.", no_args_is_help=True
)


@reward_app.command("check")
def check(
    response: Annotated[
        str, typer.Argument(help="The model response, e.g. '<think>...</think> \\boxed{3}'.")
    ],
    gold: Annotated[str, typer.Option("--gold", "-g", help="The reference answer.")],
    model_score: Annotated[
        float, typer.Option("--model-score", help="A reward-model score r_theta to add (eq. 7).")
    ] = 0.0,
) -> None:
    """Show the extracted answer and the reward parts of one response (eq. 7)."""
    rule = rule_reward(response, gold)
    fmt = format_reward(response)
    table = Table(title="reward parts")
    table.add_column("part")
    table.add_column("value", justify="right")
    table.add_row("extracted answer", repr(extract_final_answer(response)))
    table.add_row("r_rule", f"{rule:.3f}")
    table.add_row("r_theta (given)", f"{model_score:.3f}")
    table.add_row("r_format", f"{fmt:.3f}")
    table.add_row("total", f"{hybrid_reward(rule, model_score, fmt):.3f}")
    Console().print(table)
