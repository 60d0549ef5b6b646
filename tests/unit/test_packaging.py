"""The package list in pyproject.toml names every package on disk, so an install ships them all."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def packages_on_disk() -> set[str]:
    found = set()
    for top, name in (
        (ROOT / "libs" / "hybridrl", "hybridrl"),
        (ROOT / "services", "hybridrl_services"),
    ):
        for init in top.rglob("__init__.py"):
            relative = init.parent.relative_to(top)
            found.add(".".join((name, *relative.parts)))
    return found


def test_every_package_on_disk_is_listed_in_pyproject() -> None:
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    assert packages_on_disk() == listed
