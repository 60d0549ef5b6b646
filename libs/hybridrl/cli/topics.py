"""``hybridrl topics``: create and inspect the Kafka topics of the training loop."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hybridrl.bus.topics import (
    DEFAULT_PREFIX,
    Topics,
    create_topics,
    default_topic_specs,
    describe_topics,
)
from hybridrl.config.kafka import KafkaSettings

topics_app = typer.Typer(help="Create and inspect the loop's Kafka topics.", no_args_is_help=True)

BootstrapOption = Annotated[
    str, typer.Option("--bootstrap-servers", "-b", help="host:port of the Kafka brokers.")
]
_SHOWN_CONFIGS = frozenset({"cleanup.policy", "retention.ms", "max.message.bytes"})
PrefixOption = Annotated[str, typer.Option(help="Topic name prefix; separates runs.")]


@topics_app.command("create")
def create(
    bootstrap_servers: BootstrapOption,
    prefix: PrefixOption = DEFAULT_PREFIX,
    partitions: Annotated[int, typer.Option(min=1, help="Partitions of the data topics.")] = 8,
    replication_factor: Annotated[int, typer.Option(min=1)] = 1,
) -> None:
    """Create prompts, rollouts, scored, policy (compacted) and dlq; existing ones are kept."""
    settings = KafkaSettings(bootstrap_servers=bootstrap_servers, client_id="hybridrl-cli")
    specs = default_topic_specs(
        Topics(prefix=prefix), partitions=partitions, replication_factor=replication_factor
    )
    created = create_topics(settings, specs)
    _print_topics(settings, [spec.name for spec in specs], created)


@topics_app.command("describe")
def describe(bootstrap_servers: BootstrapOption, prefix: PrefixOption = DEFAULT_PREFIX) -> None:
    """Partitions and configs of the loop's topics."""
    settings = KafkaSettings(bootstrap_servers=bootstrap_servers, client_id="hybridrl-cli")
    names = [spec.name for spec in default_topic_specs(Topics(prefix=prefix))]
    _print_topics(settings, names, [])


def _print_topics(settings: KafkaSettings, names: list[str], created: list[str]) -> None:
    table = Table(title="topics")
    for column in ("topic", "partitions", "configs", "state"):
        table.add_column(column)
    for description in describe_topics(settings, names):
        configs = ", ".join(
            f"{key}={value}"
            for key, value in sorted(description.configs.items())
            if key in _SHOWN_CONFIGS
        )
        state = "created" if description.name in created else "existed"
        table.add_row(description.name, str(description.partitions), configs, state)
    Console().print(table)
