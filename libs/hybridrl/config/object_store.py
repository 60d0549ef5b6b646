"""Settings of the object store (MinIO or any S3) that holds checkpoints and large payloads.

The learner writes checkpoints there, rollout workers read the weights back, and the services
park Kafka payloads above the message limit there (claim checks). Each service builds these
settings once from its environment and hands them to ``hybridrl.store.open_object_store``.

Credentials are ``SecretStr``: they print as ``**********`` in a repr, a log line or a dump.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

MIB = 1024 * 1024

# S3's own limits on one multipart part (all but the last part).
MIN_PART_SIZE_BYTES = 5 * MIB
MAX_PART_SIZE_BYTES = 5 * 1024 * MIB

_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_HOST_PORT = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")


class RetrySettings(BaseModel):
    """How often and how patiently a failed S3 call is retried.

    Only transient failures are retried (connection errors, timeouts, HTTP 5xx); the wait
    before retry ``n`` (0-based) is drawn uniformly from
    ``[0, min(max_backoff_seconds, initial_backoff_seconds * 2**n)]`` ("full jitter"), so
    that many pods hitting one restarted server do not retry in lock-step.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    attempts: int = Field(
        default=5,
        ge=1,
        le=100,
        description="Calls in total, the first one included; 1 disables retries.",
    )
    initial_backoff_seconds: float = Field(
        default=0.2, gt=0.0, description="Upper bound of the wait before the first retry."
    )
    max_backoff_seconds: float = Field(
        default=10.0, gt=0.0, description="Cap on the upper bound of any single wait."
    )

    @model_validator(mode="after")
    def _cap_not_below_initial(self) -> Self:
        if self.max_backoff_seconds < self.initial_backoff_seconds:
            raise ValueError(
                f"max_backoff_seconds ({self.max_backoff_seconds}) must be >= "
                f"initial_backoff_seconds ({self.initial_backoff_seconds})"
            )
        return self


class ObjectStoreSettings(BaseModel):
    """Where the S3 server is, how to authenticate, and how to talk to it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    endpoint: str = Field(
        default="localhost:9000",
        description="``host:port`` of the S3 API, without scheme or path (MinIO's default port).",
    )
    secure: bool = Field(
        default=True, description="Use HTTPS. Off only for a server on a trusted network."
    )
    region: str = Field(
        default="us-east-1",
        min_length=1,
        description=(
            "Region used to sign requests. MinIO accepts us-east-1; stating it saves a "
            "GetBucketLocation round trip per bucket."
        ),
    )
    access_key: SecretStr | None = Field(
        default=None, description="Access key id; with secret_key, or neither for anonymous."
    )
    secret_key: SecretStr | None = Field(
        default=None, description="Secret access key; with access_key, or neither."
    )
    ca_bundle: Path | None = Field(
        default=None,
        description="PEM file of CA certificates to trust for HTTPS; None uses certifi's bundle.",
    )
    bucket: str = Field(
        default="hybridrl",
        description="Default bucket when a store is built from these settings alone.",
    )
    create_bucket: bool = Field(
        default=False,
        description=(
            "Create the bucket when it is missing. Off in a cluster, where the chart "
            "provisions it; on for the local runtime and the tests."
        ),
    )
    part_size_bytes: int = Field(
        default=16 * MIB,
        ge=MIN_PART_SIZE_BYTES,
        le=MAX_PART_SIZE_BYTES,
        description="Multipart upload part size; larger objects are uploaded in parts.",
    )
    parallel_uploads: int = Field(
        default=3, ge=1, le=32, description="Parts of one multipart upload sent concurrently."
    )
    connect_timeout_seconds: float = Field(default=5.0, gt=0.0)
    read_timeout_seconds: float = Field(
        default=60.0, gt=0.0, description="Longest silence while waiting for response bytes."
    )
    retry: RetrySettings = Field(default_factory=RetrySettings)

    @field_validator("endpoint")
    @classmethod
    def _endpoint_is_host_port(cls, value: str) -> str:
        port = value.rpartition("]")[2].rpartition(":")[2] if ":" in value else ""
        if not _HOST_PORT.match(value) or (port and not 0 < int(port) < 65536):
            raise ValueError(
                f"endpoint must be 'host:port' without scheme or path (got {value!r}); "
                "use `secure` to choose HTTPS"
            )
        return value

    @field_validator("bucket")
    @classmethod
    def _bucket_name_is_valid(cls, value: str) -> str:
        if not _BUCKET_NAME.match(value) or ".." in value:
            raise ValueError(
                f"bucket {value!r} is not a valid S3 bucket name (3-63 characters of "
                "lowercase letters, digits, '.' and '-', starting and ending alphanumeric)"
            )
        return value

    @model_validator(mode="after")
    def _keys_come_in_pairs(self) -> Self:
        if (self.access_key is None) != (self.secret_key is None):
            raise ValueError("access_key and secret_key must be given together, or neither")
        return self
