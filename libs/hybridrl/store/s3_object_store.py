"""The object store over the S3 API (MinIO in the cluster, moto locally), with retries.

Implements ``ObjectStore`` with the ``minio`` client on one bucket, optionally below a key
prefix. Every call runs under a ``RetryPolicy``: connection errors, timeouts and HTTP 5xx are
retried with backoff and then reported as ``ObjectStoreUnavailable``; a missing object is
``ObjectNotFound`` at once; other client errors (access denied, missing bucket) are
``ObjectStoreError`` at once, since retrying cannot fix them.

The minio client's own urllib3 retries are switched off, so that the policy here is the only
one and its attempt count means what it says.
"""

from __future__ import annotations

import builtins
import io
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO, TypeVar

import certifi
import urllib3
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError

from hybridrl.config.object_store import (
    MAX_PART_SIZE_BYTES,
    MIN_PART_SIZE_BYTES,
    ObjectStoreSettings,
)
from hybridrl.store.local_object_store import write_file_atomically
from hybridrl.store.object_store import (
    ObjectInfo,
    ObjectNotFound,
    ObjectStoreError,
    join_key,
    validate_key,
    validate_prefix,
)
from hybridrl.store.retry import RetryPolicy

_logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_PART_SIZE_BYTES = 16 * 1024 * 1024
_STREAM_CHUNK_BYTES = 1024 * 1024
# S3 error codes that name a transient condition even when the status is below 500
# (RequestTimeout is a 400: the server gave up waiting for our bytes).
_TRANSIENT_CODES = frozenset({"InternalError", "RequestTimeout", "ServiceUnavailable", "SlowDown"})


def is_transient_s3_error(error: BaseException) -> bool:
    """Whether a failed S3 call may succeed when repeated: network trouble or a 5xx."""
    if isinstance(error, S3Error):
        status = getattr(error.response, "status", 0) or 0
        return status >= 500 or error.code in _TRANSIENT_CODES
    if isinstance(error, ServerError):
        return error.status_code >= 500
    if isinstance(error, InvalidResponseError):
        # A proxy or load balancer in front of S3 answers a 502/503 with HTML, not S3's XML;
        # minio keeps that status only in a private attribute.
        status = getattr(error, "_code", 0)
        return isinstance(status, int) and status >= 500
    if isinstance(error, urllib3.exceptions.SSLError | urllib3.exceptions.LocationParseError):
        return False  # a bad certificate or endpoint: configuration, not weather
    return isinstance(error, urllib3.exceptions.HTTPError | ConnectionError | TimeoutError)


def minio_client(settings: ObjectStoreSettings) -> Minio:
    """A minio client for ``settings``: its timeouts, its CA bundle, and no retries of its own."""
    http_client = urllib3.PoolManager(
        timeout=urllib3.Timeout(
            connect=settings.connect_timeout_seconds, read=settings.read_timeout_seconds
        ),
        # Each parallel part upload holds a connection of its own.
        maxsize=max(10, settings.parallel_uploads),
        cert_reqs="CERT_REQUIRED",
        ca_certs=str(settings.ca_bundle) if settings.ca_bundle else certifi.where(),
        retries=False,
    )
    return Minio(
        settings.endpoint,
        access_key=settings.access_key.get_secret_value() if settings.access_key else None,
        secret_key=settings.secret_key.get_secret_value() if settings.secret_key else None,
        secure=settings.secure,
        region=settings.region,
        http_client=http_client,
    )


class S3ObjectStore:
    """``ObjectStore`` over ``bucket``; keys are stored as ``{prefix}/{key}``."""

    def __init__(
        self,
        client: Minio,
        bucket: str,
        *,
        prefix: str = "",
        retry: RetryPolicy | None = None,
        part_size_bytes: int = DEFAULT_PART_SIZE_BYTES,
        parallel_uploads: int = 3,
    ) -> None:
        if not bucket:
            raise ValueError("bucket must not be empty")
        if not MIN_PART_SIZE_BYTES <= part_size_bytes <= MAX_PART_SIZE_BYTES:
            raise ValueError(
                f"part_size_bytes must be within S3's limits [{MIN_PART_SIZE_BYTES}, "
                f"{MAX_PART_SIZE_BYTES}], got {part_size_bytes}"
            )
        if parallel_uploads < 1:
            raise ValueError(f"parallel_uploads must be >= 1, got {parallel_uploads}")
        prefix = prefix.strip("/")
        if prefix:
            validate_key(prefix)
        self._client = client
        self._bucket = bucket
        self._prefix = prefix
        self._retry = retry if retry is not None else RetryPolicy()
        self._part_size = part_size_bytes
        self._parallel_uploads = parallel_uploads

    @classmethod
    def from_settings(
        cls,
        settings: ObjectStoreSettings,
        *,
        bucket: str | None = None,
        prefix: str = "",
        retry: RetryPolicy | None = None,
    ) -> S3ObjectStore:
        """A store as ``settings`` describe it; creates the bucket if ``create_bucket`` says so.

        ``bucket`` overrides ``settings.bucket``; ``retry`` overrides the policy built from
        ``settings.retry`` (tests pass one with a recording sleep).
        """
        store = cls(
            minio_client(settings),
            bucket or settings.bucket,
            prefix=prefix,
            retry=retry if retry is not None else RetryPolicy.from_settings(settings.retry),
            part_size_bytes=settings.part_size_bytes,
            parallel_uploads=settings.parallel_uploads,
        )
        if settings.create_bucket:
            store.ensure_bucket()
        return store

    @property
    def bucket(self) -> str:
        return self._bucket

    @property
    def prefix(self) -> str:
        return self._prefix

    def __repr__(self) -> str:
        return f"S3ObjectStore({self.uri()!r})"

    def ensure_bucket(self) -> None:
        """Create the bucket unless it exists (safe when several pods race to create it)."""

        def create() -> None:
            if self._client.bucket_exists(self._bucket):
                return
            try:
                self._client.make_bucket(self._bucket)
            except S3Error as error:
                if error.code == "BucketAlreadyOwnedByYou":
                    return  # another pod created it since we looked
                raise
            _logger.info("created bucket %s", self._bucket)

        self._call(f"creating bucket {self._bucket}", create)

    def _name(self, key: str) -> str:
        return join_key(self._prefix, validate_key(key))

    def _call(self, description: str, operation: Callable[[], T], *, key: str = "") -> T:
        """``operation()`` under the retry policy, its failures turned into store errors."""
        try:
            return self._retry.call(
                operation, description=description, is_transient=is_transient_s3_error
            )
        except S3Error as error:
            if error.code == "NoSuchKey":
                raise ObjectNotFound(self.uri(key)) from error
            if error.code == "NoSuchBucket":
                raise ObjectStoreError(
                    f"{description}: bucket {self._bucket!r} does not exist (create it, or set "
                    "create_bucket in the object store settings)"
                ) from error
            raise ObjectStoreError(f"{description}: {error.code}: {error.message}") from error
        except (MinioException, urllib3.exceptions.HTTPError) as error:
            raise ObjectStoreError(f"{description}: {type(error).__name__}: {error}") from error

    def put_bytes(self, key: str, data: bytes) -> None:
        name = self._name(key)
        self._call(
            f"uploading {self.uri(key)}",
            lambda: self._client.put_object(
                self._bucket,
                name,
                io.BytesIO(data),  # a fresh stream per attempt: a retry starts at byte 0
                len(data),
                part_size=self._part_size,
                num_parallel_uploads=self._parallel_uploads,
            ),
            key=key,
        )

    def get_bytes(self, key: str) -> bytes:
        name = self._name(key)

        def read() -> bytes:
            response = self._client.get_object(self._bucket, name)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

        return self._call(f"downloading {self.uri(key)}", read, key=key)

    def put_file(self, key: str, path: Path) -> None:
        name = self._name(key)
        if not Path(path).is_file():
            raise FileNotFoundError(f"no file to upload at {path}")
        self._call(
            f"uploading {path} to {self.uri(key)}",
            lambda: self._client.fput_object(
                self._bucket,
                name,
                str(path),
                part_size=self._part_size,
                num_parallel_uploads=self._parallel_uploads,
            ),
            key=key,
        )

    def get_file(self, key: str, path: Path) -> None:
        name = self._name(key)

        def download() -> None:
            response = self._client.get_object(self._bucket, name)
            try:

                def write(handle: BinaryIO) -> None:
                    for chunk in response.stream(_STREAM_CHUNK_BYTES):
                        handle.write(chunk)

                # minio's fget_object deletes the old file before renaming the new one in;
                # writing ourselves keeps the replacement atomic.
                write_file_atomically(Path(path), write)
            finally:
                response.close()
                response.release_conn()

        self._call(f"downloading {self.uri(key)} to {path}", download, key=key)

    def exists(self, key: str) -> bool:
        name = self._name(key)
        try:
            self._call(
                f"checking {self.uri(key)}",
                lambda: self._client.stat_object(self._bucket, name),
                key=key,
            )
        except ObjectNotFound:
            return False
        return True

    def list(self, prefix: str = "") -> builtins.list[ObjectInfo]:
        validate_prefix(prefix)
        # A string prefix, not a path: "run-1/step-" must match "run-1/step-000000200/...".
        full_prefix = self._prefix + "/" + prefix if self._prefix else prefix
        strip = len(self._prefix) + 1 if self._prefix else 0

        def collect() -> builtins.list[ObjectInfo]:
            found = []
            for item in self._client.list_objects(self._bucket, full_prefix, recursive=True):
                if item.is_dir or item.object_name is None:
                    continue
                if item.last_modified is None:
                    raise ObjectStoreError(f"listing gave no LastModified for {item.object_name}")
                found.append(
                    ObjectInfo(
                        key=item.object_name[strip:],
                        size=item.size or 0,
                        last_modified=item.last_modified,
                    )
                )
            return found

        found = self._call(f"listing {self.uri(prefix)}", collect)
        return sorted(found, key=lambda info: info.key)

    def delete(self, key: str) -> None:
        name = self._name(key)
        self._call(
            f"deleting {self.uri(key)}", lambda: self._client.remove_object(self._bucket, name)
        )

    def delete_many(self, keys: Iterable[str]) -> None:
        names = [self._name(key) for key in keys]
        if not names:
            return

        def remove() -> builtins.list[str]:
            # remove_objects is lazy: the requests go out while its errors are iterated.
            errors = self._client.remove_objects(
                self._bucket, [DeleteObject(name) for name in names]
            )
            return [f"{error.name}: {error.code}" for error in errors]

        failures = self._call(f"deleting {len(names)} objects under {self.uri()}", remove)
        if failures:
            raise ObjectStoreError(f"could not delete {len(failures)} object(s): {failures[:10]}")

    def uri(self, key: str = "") -> str:
        validate_prefix(key)
        if key == "":
            return f"s3://{self._bucket}/" + (self._prefix + "/" if self._prefix else "")
        return f"s3://{self._bucket}/{join_key(self._prefix, key)}"
