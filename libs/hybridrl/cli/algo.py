"""``hybridrl algo``: the paper's math on numbers typed at the terminal, for checking by hand."""

from __future__ import annotations

from typing import Annotated

import torch
import typer
from rich.console import Console
from rich.table import Table

from hybridrl.algo.advantages import group_advantages

algo_app = typer.Typer(help="Evaluate hybridrl's equations on given numbers.", no_args_is_help=True)


@algo_app.command("advantages")
def advantages(
    rewards: Annotated[list[float], typer.Argument(help="The rewards of one group, e.g. 1 0 0 1.")],
) -> None:
    """Group-relative advantages of one group of rewards (eq. 6)."""
    try:
        result = group_advantages(torch.tensor([rewards], dtype=torch.float64))
    except ValueError as error:
        raise typer.BadParameter(str(error)) from error
    table = Table(title=f"eq. 6 — effective group: {bool(result.effective_mask[0])}")
    table.add_column("i", justify="right")
    table.add_column("reward", justify="right")
    table.add_column("advantage", justify="right")
    for index, (reward, advantage) in enumerate(
        zip(rewards, result.advantages[0].tolist(), strict=True)
    ):
        table.add_row(str(index), f"{reward:g}", f"{advantage:+.4f}")
    Console().print(table)
