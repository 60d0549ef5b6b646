"""``hybridrl score``: score one response on a running reward service over gRPC.

A thin shell over ``hybridrl.client.RewardClient``: the same scoring the training loop
applies (eq. 7), asked of the service at ``--target``, printed as a table or as JSON.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hybridrl.client.reward import (
    RewardClient,
    RewardResult,
    RewardServiceError,
    TaskKindName,
)


def score(
    response: Annotated[
        str, typer.Argument(help="The model response, e.g. '<think>...</think> \\boxed{3}'.")
    ],
    gold: Annotated[
        str, typer.Option("--gold", "-g", help="The reference answer ('' for open tasks).")
    ],
    target: Annotated[
        str, typer.Option("--target", "-t", help="host:port of the reward service.")
    ] = "127.0.0.1:50051",
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="The question asked.")] = "",
    image: Annotated[
        Path | None,
        typer.Option("--image", exists=True, dir_okay=False, help="The prompt's PNG image."),
    ] = None,
    task_kind: Annotated[
        TaskKindName, typer.Option("--task-kind", help="How the answer is checked.")
    ] = "math",
    timeout: Annotated[float, typer.Option(help="Deadline of the call, in seconds.")] = 30.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Score RESPONSE against --gold on a reward service: r_rule, r_theta, r_format (eq. 7)."""
    image_png = image.read_bytes() if image is not None else None
    try:
        with RewardClient(target, timeout_seconds=timeout) as client:
            result = client.score(
                response, gold, prompt=prompt, image_png=image_png, task_kind=task_kind
            )
    except (ValueError, TimeoutError, RewardServiceError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=2 if isinstance(error, ValueError) else 1) from error
    if as_json:
        typer.echo(json.dumps(dataclasses.asdict(result), sort_keys=True))
        return
    Console().print(result_table(result))


def result_table(result: RewardResult) -> Table:
    """The parts of eq. 7 with the extracted answer and the status, one row each."""
    table = Table(title="reward parts (eq. 7)")
    table.add_column("part")
    table.add_column("value", justify="right")
    table.add_row("extracted answer", repr(result.extracted_answer))
    table.add_row("r_rule", f"{result.rule:.4f}")
    table.add_row("r_theta", f"{result.model:.4f}")
    table.add_row("r_format", f"{result.format:.4f}")
    table.add_row("total", f"{result.total:.4f}")
    table.add_row("status", result.status)
    if result.detail:
        table.add_row("detail", result.detail)
    return table
