"""RewardService over gRPC on loopback: parts, order, invalid requests, deadlines, limits,
health and reflection."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from hybridrl_services.common.grpc_server import ServiceServer
from hybridrl_services.reward.messages import PromptImages
from hybridrl_services.reward.servicer import SERVICE_NAME, RewardServicer

from hybridrl.config.service_settings import GrpcServerSettings
from hybridrl.models.images import decode_image
from hybridrl.proto.schema import SCHEMA_VERSION
from hybridrl.proto.v1 import common_pb2, reward_pb2, reward_pb2_grpc
from hybridrl.rewards.reward_model import RewardModelInput, RewardModelScorer
from hybridrl.rewards.scoring import HybridScorer

CORRECT = "<think>2 plus 3 is 5</think> \\boxed{5}"
WRONG = "<think>a guess</think> \\boxed{6}"
UNSURE = "<think>hmm</think> I am not sure."
MAX_MESSAGE_BYTES = 64 * 1024
MAX_TEXT_CHARS = 4096
MAX_BATCH_ITEMS = 4


class GatedModel:
    """The tiny reward model behind a gate the test can close, to stand for a stuck call."""

    def __init__(self, model: RewardModelScorer) -> None:
        self.model = model
        self.gate = threading.Event()
        self.gate.set()

    def score(self, batch: Sequence[RewardModelInput]) -> list[float]:
        self.gate.wait(timeout=30)
        return self.model.score(batch)


@dataclass
class Served:
    stub: reward_pb2_grpc.RewardServiceStub
    channel: grpc.Channel
    model: GatedModel
    rules: Any


@pytest.fixture(scope="module")
def served(gated_rules: Any, tiny_model: RewardModelScorer) -> Iterator[Served]:
    model = GatedModel(tiny_model)
    rules = gated_rules
    scorer = HybridScorer(rules, reward_model=model, model_deadline_seconds=10.0)
    servicer = RewardServicer(
        scorer,
        PromptImages(lambda uri: b"", decode=True),
        max_batch_items=MAX_BATCH_ITEMS,
        max_text_chars=MAX_TEXT_CHARS,
    )
    settings = GrpcServerSettings(host="127.0.0.1", port=0, max_message_bytes=MAX_MESSAGE_BYTES)
    server = ServiceServer(
        settings,
        [SERVICE_NAME],
        lambda grpc_server: reward_pb2_grpc.add_RewardServiceServicer_to_server(
            servicer, grpc_server
        ),
    )
    port = server.start()
    server.set_serving(True)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield Served(reward_pb2_grpc.RewardServiceStub(channel), channel, model, rules)
    model.gate.set()
    rules.gate.set()
    channel.close()
    server.stop(0)
    scorer.close()


def item(response: str = CORRECT, gold: str = "5", **fields: Any) -> reward_pb2.ScoringItem:
    values: dict[str, Any] = {
        "prompt_text": "What is 2+3?",
        "response_text": response,
        "reference_answer": gold,
        "task_kind": common_pb2.TASK_KIND_MATH,
    }
    values.update(fields)
    return reward_pb2.ScoringItem(**values)


def score(served: Served, message: reward_pb2.ScoringItem, **request: Any) -> Any:
    fields: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "item": message}
    fields.update(request)
    return served.stub.Score(reward_pb2.ScoreRequest(**fields), timeout=10)


def expect_error(code: grpc.StatusCode, call: Any) -> str:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    assert caught.value.code() == code, caught.value.details()
    return str(caught.value.details())


def is_serving(channel: grpc.Channel, service: str = "") -> bool:
    request = health_pb2.HealthCheckRequest(service=service)
    reply = health_pb2_grpc.HealthStub(channel).Check(request, timeout=5)
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def test_score_answers_the_parts_of_eq7(
    served: Served, tiny_model: RewardModelScorer, inline_png: common_pb2.ImageRef, png: bytes
) -> None:
    reply = score(served, item(images=[inline_png]))
    expected_model = tiny_model.score(
        [RewardModelInput("What is 2+3?", CORRECT, decode_image(png))]
    )[0]
    result = reply.result
    assert reply.schema_version == SCHEMA_VERSION
    assert (result.reward.rule, result.reward.format) == (1.0, 1.0)
    assert result.reward.model == pytest.approx(expected_model, abs=1e-6)
    assert result.reward.total == pytest.approx(2.0 + expected_model, abs=1e-12)
    assert (result.extracted_answer, result.status) == ("5", common_pb2.SCORER_STATUS_OK)
    assert result.status_detail == ""


def test_score_batch_answers_in_request_order(served: Served) -> None:
    items = [
        item(WRONG),
        item(CORRECT),
        item(UNSURE),
        item("<think>look</think> \\boxed{blue}", "", task_kind=common_pb2.TASK_KIND_OPEN),
    ]
    request = reward_pb2.ScoreBatchRequest(schema_version=SCHEMA_VERSION, items=items)
    reply = served.stub.ScoreBatch(request, timeout=10)
    summary = [
        (result.reward.rule, result.reward.format, result.extracted_answer, result.status)
        for result in reply.results
    ]
    assert summary == [
        (0.0, 1.0, "6", common_pb2.SCORER_STATUS_OK),
        (1.0, 1.0, "5", common_pb2.SCORER_STATUS_OK),
        (0.0, 1.0, "", common_pb2.SCORER_STATUS_NO_ANSWER),
        (0.0, 1.0, "blue", common_pb2.SCORER_STATUS_OK),
    ]


@pytest.mark.parametrize(
    ("request_fields", "message"),
    [
        ({"schema_version": 0}, "schema_version is 0"),
        ({"schema_version": 2}, "schema_version is 2"),
        ({"item": item(response="  ")}, "item: response_text is empty"),
        ({"item": item(gold="")}, "item: reference_answer: no gold answer for a math task"),
        (
            {"item": item(task_kind=common_pb2.TASK_KIND_UNSPECIFIED)},
            "item: task_kind TASK_KIND_UNSPECIFIED cannot be scored",
        ),
        (
            {"item": item(response="x" * (MAX_TEXT_CHARS + 1))},
            f"item: response_text has {MAX_TEXT_CHARS + 1} characters, over the limit",
        ),
        (
            {
                "item": item(
                    images=[
                        common_pb2.ImageRef(
                            inline_image=common_pb2.InlineImage(
                                data=b"GIF89", mime_type="image/png"
                            )
                        )
                    ]
                )
            },
            "item: image does not decode",
        ),
        (
            {"item": item(images=[common_pb2.ImageRef(uri="file:///etc/passwd")])},
            "item: image URI 'file:///etc/passwd' is not readable here",
        ),
    ],
)
def test_invalid_requests_are_invalid_argument_and_the_server_stays_healthy(
    served: Served, request_fields: dict[str, Any], message: str
) -> None:
    details = expect_error(
        grpc.StatusCode.INVALID_ARGUMENT, lambda: score(served, item(), **request_fields)
    )
    assert message in details
    assert is_serving(served.channel, SERVICE_NAME)
    assert score(served, item()).result.reward.rule == 1.0


def test_score_without_item_and_empty_or_oversized_batches_are_invalid(served: Served) -> None:
    request = reward_pb2.ScoreRequest(schema_version=SCHEMA_VERSION)
    details = expect_error(grpc.StatusCode.INVALID_ARGUMENT, lambda: served.stub.Score(request))
    assert details == "item is missing"
    empty = reward_pb2.ScoreBatchRequest(schema_version=SCHEMA_VERSION)
    details = expect_error(grpc.StatusCode.INVALID_ARGUMENT, lambda: served.stub.ScoreBatch(empty))
    assert details == "items is empty"
    many = reward_pb2.ScoreBatchRequest(
        schema_version=SCHEMA_VERSION, items=[item()] * (MAX_BATCH_ITEMS + 1)
    )
    details = expect_error(grpc.StatusCode.INVALID_ARGUMENT, lambda: served.stub.ScoreBatch(many))
    assert details == f"{MAX_BATCH_ITEMS + 1} items, over the limit of {MAX_BATCH_ITEMS} per call"
    bad_second = reward_pb2.ScoreBatchRequest(
        schema_version=SCHEMA_VERSION, items=[item(), item(response="")]
    )
    details = expect_error(
        grpc.StatusCode.INVALID_ARGUMENT, lambda: served.stub.ScoreBatch(bad_second)
    )
    assert details == "items[1]: response_text is empty"


def test_request_over_the_message_limit_is_resource_exhausted(served: Served) -> None:
    oversized = item(response="y" * (MAX_MESSAGE_BYTES + 1))
    expect_error(grpc.StatusCode.RESOURCE_EXHAUSTED, lambda: score(served, oversized))
    assert is_serving(served.channel)


def test_a_call_past_its_deadline_is_deadline_exceeded_and_the_server_goes_on(
    served: Served,
) -> None:
    served.rules.gate.clear()
    try:
        request = reward_pb2.ScoreRequest(schema_version=SCHEMA_VERSION, item=item())
        expect_error(
            grpc.StatusCode.DEADLINE_EXCEEDED, lambda: served.stub.Score(request, timeout=0.5)
        )
    finally:
        served.rules.gate.set()
    assert score(served, item()).result.status == common_pb2.SCORER_STATUS_OK


def test_a_late_reward_model_costs_r_theta_within_the_callers_deadline(served: Served) -> None:
    served.model.gate.clear()
    try:
        request = reward_pb2.ScoreRequest(schema_version=SCHEMA_VERSION, item=item())
        result = served.stub.Score(request, timeout=2.0).result
    finally:
        served.model.gate.set()
    assert (result.reward.rule, result.reward.model, result.reward.format) == (1.0, 0.0, 1.0)
    assert result.status == common_pb2.SCORER_STATUS_MODEL_SKIPPED
    assert result.status_detail.startswith("reward model timed out after ")


class AbortedError(Exception):
    pass


class ExpiredContext:
    """A servicer context whose deadline has already passed."""

    def time_remaining(self) -> float:
        return 0.0

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise AbortedError(code, details)


def test_work_whose_deadline_has_passed_is_not_started(in_thread_rules: Any) -> None:
    with HybridScorer(in_thread_rules) as scorer:
        servicer = RewardServicer(
            scorer,
            PromptImages(lambda uri: b"", decode=False),
            max_batch_items=MAX_BATCH_ITEMS,
            max_text_chars=MAX_TEXT_CHARS,
        )
        request = reward_pb2.ScoreRequest(schema_version=SCHEMA_VERSION, item=item())
        with pytest.raises(AbortedError) as caught:
            servicer.Score(request, ExpiredContext())
    assert caught.value.args == (
        grpc.StatusCode.DEADLINE_EXCEEDED,
        "deadline passed before scoring",
    )
    assert in_thread_rules.calls == 0


def test_health_reports_serving_and_reflection_lists_the_service(served: Served) -> None:
    assert is_serving(served.channel)
    assert is_serving(served.channel, SERVICE_NAME)
    services = set(ProtoReflectionDescriptorDatabase(served.channel).get_services())
    assert {SERVICE_NAME, "grpc.health.v1.Health"} <= services
