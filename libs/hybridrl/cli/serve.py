"""``hybridrl serve NAME``: start a service from its config file (environment overrides it).

Services live outside the core (``services/``) and register themselves under the entry-point
group ``hybridrl.services``; this command looks the name up, so the core never imports them.
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated

import typer

SERVICE_GROUP = "hybridrl.services"


def service_names() -> list[str]:
    """Names of the installed services."""
    return sorted(entry.name for entry in entry_points(group=SERVICE_GROUP))


def serve(
    name: Annotated[str, typer.Argument(help="The service: rollout, reward or ssb.")],
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", exists=True, dir_okay=False, help="YAML settings file."),
    ] = None,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = "INFO",
) -> None:
    """Run one service until SIGTERM or Ctrl-C."""
    matches = [entry for entry in entry_points(group=SERVICE_GROUP) if entry.name == name]
    if not matches:
        raise typer.BadParameter(f"unknown service {name!r}; installed: {service_names()}")
    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    matches[0].load()(config)
