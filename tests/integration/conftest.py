"""Fixtures that start real processes: a Kafka-protocol broker and an S3 server on free ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hybridrl.local import LocalKafkaBroker, LocalS3Server


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafkaBroker]:
    """One broker for the session; tests use their own topic names or a fresh broker."""
    with LocalKafkaBroker(tmp_path_factory.mktemp("broker")) as broker:
        yield broker


@pytest.fixture
def fresh_kafka_broker(tmp_path: Path) -> Iterator[LocalKafkaBroker]:
    """A broker of the test's own, for tests that stop or restart it."""
    with LocalKafkaBroker(tmp_path / "broker") as broker:
        yield broker


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalS3Server]:
    with LocalS3Server(tmp_path_factory.mktemp("s3")) as server:
        yield server
