"""S3ObjectStore's error handling, with a fake minio client: what is retried, what is mapped.

The real-server behaviour (multipart, listing, buckets) is in
tests/integration/test_object_store_s3.py; here the client is replaced so that 5xx answers,
dropped connections and 4xx answers can be produced on demand.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import urllib3
from minio import Minio
from minio.error import InvalidResponseError, S3Error, ServerError
from urllib3.exceptions import NewConnectionError, ProtocolError, ReadTimeoutError, SSLError

from hybridrl.store import (
    ObjectNotFound,
    ObjectStoreError,
    ObjectStoreUnavailable,
    RetryPolicy,
    S3ObjectStore,
)
from hybridrl.store.s3_object_store import is_transient_s3_error


def s3_error(status: int, code: str) -> S3Error:
    return S3Error(
        response=urllib3.HTTPResponse(body=b"", status=status),
        code=code,
        message=f"{code} message",
        resource="/bucket/key",
        request_id="request-1",
        host_id="host-1",
    )


class FakeResponse:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.closed = False

    def read(self) -> bytes:
        return self.data

    def stream(self, amount: int) -> Iterator[bytes]:
        for start in range(0, len(self.data), amount):
            yield self.data[start : start + amount]

    def close(self) -> None:
        self.closed = True

    def release_conn(self) -> None:
        pass


class ScriptedClient:
    """Answers ``get_object`` and ``stat_object`` by raising the scripted errors first."""

    def __init__(self, errors: list[Exception], data: bytes = b"payload") -> None:
        self.errors = list(errors)
        self.data = data
        self.requests: list[tuple[str, str, str]] = []
        self.responses: list[FakeResponse] = []

    def _next(self, method: str, bucket: str, name: str) -> None:
        self.requests.append((method, bucket, name))
        if self.errors:
            raise self.errors.pop(0)

    def get_object(self, bucket: str, name: str) -> FakeResponse:
        self._next("GET", bucket, name)
        response = FakeResponse(self.data)
        self.responses.append(response)
        return response

    def stat_object(self, bucket: str, name: str) -> object:
        self._next("HEAD", bucket, name)
        return object()


def store_with(client: ScriptedClient, sleeps: list[float], attempts: int = 4) -> S3ObjectStore:
    retry = RetryPolicy(
        attempts=attempts,
        initial_backoff=0.1,
        max_backoff=1.0,
        sleep=sleeps.append,
        jitter=lambda: 1.0,
    )
    return S3ObjectStore(cast(Minio, client), "bucket", prefix="run-1", retry=retry)


def connection_refused() -> NewConnectionError:
    return NewConnectionError(cast(Any, None), "Failed to establish a new connection: refused")


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (s3_error(503, "SlowDown"), True),
        (s3_error(500, "InternalError"), True),
        (s3_error(400, "RequestTimeout"), True),
        (s3_error(404, "NoSuchKey"), False),
        (s3_error(403, "AccessDenied"), False),
        (ServerError("server failed with HTTP status code 502", 502), True),
        (ServerError("server failed with HTTP status code 304", 304), False),
        (InvalidResponseError(503, "text/html", "<html>busy</html>"), True),
        (InvalidResponseError(403, "text/html", "<html>no</html>"), False),
        (connection_refused(), True),
        (ProtocolError("Connection aborted.", ConnectionResetError(104, "reset")), True),
        (ReadTimeoutError(cast(Any, None), "http://x", "read timed out"), True),
        (ConnectionResetError(104, "reset"), True),
        (SSLError("certificate verify failed"), False),
        (ValueError("bad argument"), False),
    ],
)
def test_transient_errors_are_network_faults_and_5xx(error: Exception, transient: bool) -> None:
    assert is_transient_s3_error(error) is transient


def test_5xx_answers_are_retried_until_the_read_succeeds() -> None:
    sleeps: list[float] = []
    client = ScriptedClient([s3_error(503, "SlowDown"), s3_error(500, "InternalError")])
    assert store_with(client, sleeps).get_bytes("weights.bin") == b"payload"
    assert client.requests == [("GET", "bucket", "run-1/weights.bin")] * 3
    assert sleeps == [0.1, 0.2]
    assert all(response.closed for response in client.responses)


def test_connection_errors_beyond_the_attempts_raise_object_store_unavailable() -> None:
    sleeps: list[float] = []
    client = ScriptedClient([connection_refused() for _ in range(5)])
    with pytest.raises(ObjectStoreUnavailable, match="failed 3 time"):
        store_with(client, sleeps, attempts=3).get_bytes("weights.bin")
    assert len(client.requests) == 3
    assert sleeps == [0.1, 0.2]


def test_no_such_key_is_object_not_found_at_once() -> None:
    sleeps: list[float] = []
    client = ScriptedClient([s3_error(404, "NoSuchKey")])
    with pytest.raises(ObjectNotFound) as caught:
        store_with(client, sleeps).get_bytes("weights.bin")
    assert caught.value.uri == "s3://bucket/run-1/weights.bin"
    assert isinstance(caught.value.__cause__, S3Error)
    assert len(client.requests) == 1
    assert sleeps == []


def test_access_denied_is_an_object_store_error_and_not_retried() -> None:
    sleeps: list[float] = []
    client = ScriptedClient([s3_error(403, "AccessDenied")])
    with pytest.raises(ObjectStoreError, match="AccessDenied: AccessDenied message") as caught:
        store_with(client, sleeps).get_bytes("weights.bin")
    assert not isinstance(caught.value, ObjectNotFound | ObjectStoreUnavailable)
    assert len(client.requests) == 1
    assert sleeps == []


def test_missing_bucket_names_the_bucket_and_the_setting_that_creates_it() -> None:
    client = ScriptedClient([s3_error(404, "NoSuchBucket")])
    with pytest.raises(ObjectStoreError, match=r"bucket 'bucket' does not exist.*create_bucket"):
        store_with(client, []).get_bytes("weights.bin")


def test_exists_is_false_on_no_such_key_and_retries_5xx() -> None:
    sleeps: list[float] = []
    assert not store_with(ScriptedClient([s3_error(404, "NoSuchKey")]), sleeps).exists("a")
    assert store_with(ScriptedClient([s3_error(502, "BadGateway")]), sleeps).exists("a")
    assert sleeps == [0.1]


def test_get_file_after_a_dropped_connection_writes_the_whole_file(tmp_path: Path) -> None:
    sleeps: list[float] = []
    data = bytes(range(256)) * 8192  # 2 MiB: two stream chunks
    client = ScriptedClient(
        [ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))], data=data
    )
    target = tmp_path / "out" / "weights.bin"
    store_with(client, sleeps).get_file("weights.bin", target)
    assert target.read_bytes() == data
    assert sorted(path.name for path in target.parent.iterdir()) == ["weights.bin"]
    assert sleeps == [0.1]


def test_uri_and_repr_name_bucket_and_prefix() -> None:
    store = store_with(ScriptedClient([]), [])
    assert store.uri() == "s3://bucket/run-1/"
    assert store.uri("step-000000001/") == "s3://bucket/run-1/step-000000001/"
    assert store.uri("a/b") == "s3://bucket/run-1/a/b"
    assert repr(store) == "S3ObjectStore('s3://bucket/run-1/')"
    no_prefix = S3ObjectStore(cast(Minio, ScriptedClient([])), "bucket", prefix="/")
    assert no_prefix.uri() == "s3://bucket/"
    assert no_prefix.uri("a") == "s3://bucket/a"


def test_invalid_key_is_refused_before_any_request() -> None:
    client = ScriptedClient([])
    with pytest.raises(ValueError, match=r"'\.\.'"):
        store_with(client, []).get_bytes("../other-run/weights.bin")
    assert client.requests == []


@pytest.mark.parametrize(
    ("part_size", "parallel_uploads", "message"),
    [(5 * 1024 * 1024 - 1, 3, "part_size_bytes"), (5 * 1024 * 1024, 0, "parallel_uploads")],
)
def test_part_size_and_parallelism_are_checked(
    part_size: int, parallel_uploads: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        S3ObjectStore(
            cast(Minio, ScriptedClient([])),
            "bucket",
            part_size_bytes=part_size,
            parallel_uploads=parallel_uploads,
        )
