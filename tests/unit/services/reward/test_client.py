"""hybridrl.client.RewardClient and ``hybridrl score`` against a RewardService on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import typer
from hybridrl_services.common.grpc_server import ServiceServer
from hybridrl_services.reward.messages import PromptImages
from hybridrl_services.reward.servicer import SERVICE_NAME, RewardServicer
from typer.testing import CliRunner

from hybridrl.cli.score import score
from hybridrl.client import (
    RewardClient,
    RewardResult,
    RewardServiceError,
    RewardServiceUnavailable,
    ScoreInput,
)
from hybridrl.config.service_settings import GrpcServerSettings
from hybridrl.local import free_port
from hybridrl.proto.schema import MAX_INLINE_IMAGE_BYTES
from hybridrl.proto.v1 import reward_pb2_grpc
from hybridrl.rewards.scoring import HybridScorer

CORRECT = "<think>2 plus 3 is 5</think> \\boxed{5}"
SKIPPED = "no reward model configured"


@dataclass
class Running:
    server: ServiceServer
    target: str
    rules: Any


@pytest.fixture(scope="module")
def running(gated_rules: Any) -> Iterator[Running]:
    scorer = HybridScorer(gated_rules)
    servicer = RewardServicer(
        scorer, PromptImages(lambda uri: b"", decode=False), max_batch_items=8, max_text_chars=1000
    )
    server = ServiceServer(
        GrpcServerSettings(host="127.0.0.1", port=0),
        [SERVICE_NAME],
        lambda grpc_server: reward_pb2_grpc.add_RewardServiceServicer_to_server(
            servicer, grpc_server
        ),
    )
    port = server.start()
    server.set_serving(True)
    yield Running(server, f"127.0.0.1:{port}", gated_rules)
    server.stop(0)
    scorer.close()


def test_score_returns_the_parts_answer_and_status(running: Running, png: bytes) -> None:
    with RewardClient(running.target, timeout_seconds=10) as client:
        client.wait_ready(timeout_seconds=5)
        result = client.score(CORRECT, "5", prompt="What is 2+3?", image_png=png)
    assert result == RewardResult(
        rule=1.0,
        model=0.0,
        format=1.0,
        total=2.0,
        extracted_answer="5",
        status="model_skipped",
        detail=SKIPPED,
    )


def test_score_batch_keeps_the_order_of_its_items(running: Running) -> None:
    items = [
        ScoreInput("<think>guess</think> \\boxed{6}", "5"),
        ScoreInput("<think>look</think> I do not know", "5"),
        ScoreInput("<think>count</think> 答案是 B", "B", task_kind="multiple_choice"),
        ScoreInput("<think>free</think> \\boxed{blue}", "", task_kind="open"),
    ]
    with RewardClient(running.target) as client:
        results = client.score_batch(items)
    assert [(r.rule, r.format, r.extracted_answer, r.status) for r in results] == [
        (0.0, 1.0, "6", "model_skipped"),
        (0.0, 1.0, None, "no_answer"),
        (1.0, 1.0, "B", "model_skipped"),
        (0.0, 1.0, "blue", "model_skipped"),
    ]


def test_errors_become_python_exceptions(running: Running) -> None:
    with RewardClient(running.target) as client:
        with pytest.raises(ValueError, match="item: reference_answer: no gold answer"):
            client.score(CORRECT, "")
        with pytest.raises(ValueError, match="items is empty"):
            client.score_batch([])
        with pytest.raises(ValueError, match="image_png or image_uri, not both"):
            client.score(CORRECT, "5", image_png=b"png", image_uri="s3://b/k.png")
        with pytest.raises(ValueError, match="over the inline limit"):
            client.score(CORRECT, "5", image_png=b"x" * (MAX_INLINE_IMAGE_BYTES + 1))
        running.rules.gate.clear()
        try:
            with pytest.raises(TimeoutError, match="exceeded its deadline"):
                client.score(CORRECT, "5", timeout_seconds=0.3)
        finally:
            running.rules.gate.set()
        assert client.score(CORRECT, "5").rule == 1.0
    nobody = RewardClient(f"127.0.0.1:{free_port()}", timeout_seconds=2)
    with nobody, pytest.raises(RewardServiceUnavailable) as caught:
        nobody.score(CORRECT, "5")
    assert isinstance(caught.value, ConnectionError)
    assert isinstance(caught.value, RewardServiceError)
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE


def test_wait_ready_times_out_while_not_serving(running: Running) -> None:
    running.server.set_serving(False)
    try:
        with (
            RewardClient(running.target) as client,
            pytest.raises(TimeoutError, match="NOT_SERVING"),
        ):
            client.wait_ready(timeout_seconds=0.3)
    finally:
        running.server.set_serving(True)


def cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(score)
    return app


def test_cli_prints_the_parts_as_a_table_and_as_json(
    running: Running, png: bytes, tmp_path: Path
) -> None:
    image = tmp_path / "image.png"
    image.write_bytes(png)
    arguments = [CORRECT, "--gold", "5", "--target", running.target, "--image", str(image)]
    table = CliRunner().invoke(cli(), arguments)
    assert table.exit_code == 0, table.output
    for row in ("r_rule", "r_theta", "r_format", "total", "model_skipped", "'5'"):
        assert row in table.output
    assert "2.0000" in table.output
    as_json = CliRunner().invoke(cli(), [*arguments, "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.output) == {
        "rule": 1.0,
        "model": 0.0,
        "format": 1.0,
        "total": 2.0,
        "extracted_answer": "5",
        "status": "model_skipped",
        "detail": SKIPPED,
    }


def test_cli_reports_an_invalid_request_and_exits_2(running: Running) -> None:
    result = CliRunner().invoke(cli(), ["  ", "--gold", "5", "--target", running.target])
    assert result.exit_code == 2
    assert "error: item: response_text is empty" in result.output
