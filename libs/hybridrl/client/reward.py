"""A Python client of the reward service's gRPC ``RewardService`` (the hybrid reward, eq. 7).

For programs outside the training loop that want responses scored the way the loop scores
them: ``RewardClient("reward.hybridrl:50051").score(response, gold)``. Every call carries a
deadline; gRPC errors become Python exceptions (INVALID_ARGUMENT: ``ValueError``,
DEADLINE_EXCEEDED: ``TimeoutError``, UNAVAILABLE: ``RewardServiceUnavailable``, anything else:
``RewardServiceError``). Imports only gRPC and the generated messages, so it loads fast.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Literal, cast, get_args

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc

from hybridrl.proto.schema import SCHEMA_VERSION, check_image_ref
from hybridrl.proto.v1 import common_pb2, reward_pb2, reward_pb2_grpc

TaskKindName = Literal["math", "multiple_choice", "counting", "open"]
"""How the answer is checked; "open" has no rule check (reward model and format only)."""

StatusName = Literal["ok", "no_answer", "verify_timeout", "model_skipped", "invalid_input"]
"""Outcome of scoring one response (``hybridrl.v1.ScorerStatus``)."""

SERVICE_NAME: Final[str] = reward_pb2.DESCRIPTOR.services_by_name["RewardService"].full_name
DEFAULT_MAX_MESSAGE_BYTES: Final[int] = 16 * 1024 * 1024


class RewardServiceError(RuntimeError):
    """The reward service answered with an error status (see ``code``)."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


class RewardServiceUnavailable(RewardServiceError, ConnectionError):  # noqa: N818 - a condition
    """The service cannot be reached or is not serving now; retrying later may work."""


@dataclass(frozen=True)
class ScoreInput:
    """One response to score. ``image_png`` (encoded PNG, at most 128 KiB) travels inline;
    a larger image goes as ``image_uri`` (``s3://bucket/key`` the service can read)."""

    response: str
    gold: str
    prompt: str = ""
    image_png: bytes | None = None
    image_uri: str | None = None
    task_kind: TaskKindName = "math"


@dataclass(frozen=True)
class RewardResult:
    """The reward of one response: the parts of eq. 7, the answer found, how it went."""

    rule: float
    model: float
    format: float
    total: float
    extracted_answer: str | None
    status: StatusName
    detail: str


class RewardClient:
    """A channel to one reward service; use as a context manager or call ``close``."""

    def __init__(
        self,
        target: str,
        *,
        timeout_seconds: float = 30.0,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        """``target`` is ``host:port``; ``timeout_seconds`` is the deadline of calls that
        name none."""
        if not target:
            raise ValueError("target is empty; expected host:port")
        if not timeout_seconds > 0:
            raise ValueError(f"timeout_seconds must be > 0, got {timeout_seconds}")
        self.target = target
        self._timeout_seconds = timeout_seconds
        self._channel = grpc.insecure_channel(
            target,
            options=[
                ("grpc.max_send_message_length", max_message_bytes),
                ("grpc.max_receive_message_length", max_message_bytes),
            ],
        )
        self._stub = reward_pb2_grpc.RewardServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    def score(
        self,
        response: str,
        gold: str,
        *,
        prompt: str = "",
        image_png: bytes | None = None,
        image_uri: str | None = None,
        task_kind: TaskKindName = "math",
        timeout_seconds: float | None = None,
    ) -> RewardResult:
        """Score one response against its gold answer (``""`` only for ``"open"`` tasks)."""
        item = ScoreInput(response, gold, prompt, image_png, image_uri, task_kind)
        request = reward_pb2.ScoreRequest(schema_version=SCHEMA_VERSION, item=scoring_item(item))
        reply: reward_pb2.ScoreResponse = self._call(self._stub.Score, request, timeout_seconds)
        _check_reply_version(reply)
        return reward_result(reply.result)

    def score_batch(
        self, items: Sequence[ScoreInput], *, timeout_seconds: float | None = None
    ) -> list[RewardResult]:
        """Score many responses in one call; results in the order of ``items``."""
        if not items:
            raise ValueError("items is empty")
        request = reward_pb2.ScoreBatchRequest(
            schema_version=SCHEMA_VERSION, items=[scoring_item(item) for item in items]
        )
        reply: reward_pb2.ScoreBatchResponse = self._call(
            self._stub.ScoreBatch, request, timeout_seconds
        )
        _check_reply_version(reply)
        if len(reply.results) != len(items):
            raise RewardServiceError(
                grpc.StatusCode.INTERNAL,
                f"{len(reply.results)} results for {len(items)} items",
            )
        return [reward_result(result) for result in reply.results]

    def wait_ready(self, timeout_seconds: float = 30.0) -> None:
        """Block until the service reports SERVING on its health service; TimeoutError if it
        does not within ``timeout_seconds``."""
        deadline = time.monotonic() + timeout_seconds
        pause = 0.05
        last = "no answer"
        request = health_pb2.HealthCheckRequest(service=SERVICE_NAME)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"reward service at {self.target} not SERVING within {timeout_seconds} s "
                    f"({last})"
                )
            try:
                reply = self._health.Check(request, timeout=min(remaining, 2.0))
            except grpc.RpcError as error:
                last = f"{error.code().name}: {error.details()}"
            else:
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
                last = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            # A service starting up needs seconds (its scorer workers load math-verify).
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, 1.0)

    def _call(
        self, method: grpc.UnaryUnaryMultiCallable, request: Message, timeout: float | None
    ) -> Any:
        deadline = self._timeout_seconds if timeout is None else timeout
        if not deadline > 0:
            raise ValueError(f"timeout_seconds must be > 0, got {deadline}")
        try:
            return method(request, timeout=deadline)
        except grpc.RpcError as error:
            raise _as_exception(error) from error

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> RewardClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def scoring_item(item: ScoreInput) -> reward_pb2.ScoringItem:
    """The request message of one ``ScoreInput``; ValueError for an unusable image."""
    if item.image_png is not None and item.image_uri is not None:
        raise ValueError("give image_png or image_uri, not both")
    images = []
    if item.image_png is not None:
        inline = common_pb2.InlineImage(data=item.image_png, mime_type="image/png")
        images.append(common_pb2.ImageRef(inline_image=inline))
    elif item.image_uri is not None:
        images.append(common_pb2.ImageRef(uri=item.image_uri))
    for image in images:
        check_image_ref(image)
    try:
        task_kind = common_pb2.TaskKind.Value(f"TASK_KIND_{item.task_kind.upper()}")
    except ValueError as error:
        raise ValueError(f"unknown task_kind {item.task_kind!r}") from error
    return reward_pb2.ScoringItem(
        prompt_text=item.prompt,
        response_text=item.response,
        reference_answer=item.gold,
        images=images,
        task_kind=task_kind,
    )


def reward_result(result: reward_pb2.ScoringResult) -> RewardResult:
    """The ``RewardResult`` of a result message."""
    try:
        name = common_pb2.ScorerStatus.Name(result.status)
    except ValueError:
        name = "SCORER_STATUS_UNSPECIFIED"
    status = name.removeprefix("SCORER_STATUS_").lower()
    if status not in get_args(StatusName):
        raise RewardServiceError(grpc.StatusCode.INTERNAL, f"unexpected status {name}")
    reward = result.reward
    return RewardResult(
        rule=reward.rule,
        model=reward.model,
        format=reward.format,
        total=reward.total,
        extracted_answer=result.extracted_answer or None,
        status=cast(StatusName, status),
        detail=result.status_detail,
    )


def _check_reply_version(
    reply: reward_pb2.ScoreResponse | reward_pb2.ScoreBatchResponse,
) -> None:
    if reply.schema_version != SCHEMA_VERSION:
        raise RewardServiceError(
            grpc.StatusCode.FAILED_PRECONDITION,
            f"the service speaks schema version {reply.schema_version}, this client "
            f"{SCHEMA_VERSION}",
        )


def _as_exception(error: grpc.RpcError) -> Exception:
    call = cast(grpc.Call, error)
    code, details = call.code(), call.details() or ""
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return ValueError(details)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return TimeoutError(f"reward service call exceeded its deadline: {details}")
    if code == grpc.StatusCode.UNAVAILABLE:
        return RewardServiceUnavailable(code, details)
    return RewardServiceError(code, details)
