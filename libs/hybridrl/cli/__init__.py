"""The ``hybridrl`` command line: one Typer app, one module per command group."""

from __future__ import annotations

import typer

from hybridrl import __version__
from hybridrl.cli.algo import algo_app
from hybridrl.cli.demo import demo
from hybridrl.cli.learner import learner_app
from hybridrl.cli.report import report
from hybridrl.cli.reward import reward_app
from hybridrl.cli.score import score
from hybridrl.cli.serve import serve
from hybridrl.cli.topics import topics_app

app = typer.Typer(
    name="hybridrl",
    help="Hybrid MPO + GRPO reinforcement learning for vision-language models.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(reward_app, name="reward")
app.add_typer(algo_app, name="algo")
app.add_typer(topics_app, name="topics")
app.add_typer(learner_app, name="learner")
app.command("serve")(serve)
app.command("score")(score)
app.command("demo")(demo)
app.command("report")(report)


@app.command()
def version() -> None:
    """Print the hybridrl version."""
    typer.echo(__version__)


def main() -> None:
    """Entry point of the ``hybridrl`` console script."""
    app()
