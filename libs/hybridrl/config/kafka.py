"""Connection settings of the Kafka clients that carry the training loop's events.

Every service that produces or consumes ``hybridrl.*`` topics (rollout, reward, ssb, learner,
gateway) nests one ``KafkaSettings`` in its own settings and hands it to ``hybridrl.bus``;
nothing else builds a Kafka client. The model is frozen and rejects unknown keys so that a typo
in YAML or in a ``HYBRIDRL_...`` variable fails at start-up, and the SASL password is a
``SecretStr`` so it never shows in a repr, a log line or a dumped config.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

ONE_MEBIBYTE = 1024 * 1024


class SecurityProtocol(StrEnum):
    """How the clients talk to the brokers (Kafka's ``security.protocol``)."""

    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"


class SaslMechanism(StrEnum):
    """SASL mechanisms that authenticate with a user name and a password."""

    PLAIN = "PLAIN"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"


_SASL_PROTOCOLS = frozenset({SecurityProtocol.SASL_PLAINTEXT, SecurityProtocol.SASL_SSL})
_SSL_PROTOCOLS = frozenset({SecurityProtocol.SSL, SecurityProtocol.SASL_SSL})


class KafkaSettings(BaseModel):
    """Where the brokers are, how to authenticate, and the client time and size limits."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        description="Comma-separated host:port list of brokers to bootstrap from.",
    )
    client_id: str = Field(
        default="hybridrl",
        min_length=1,
        description="Client name in broker logs and quotas; services use their own name.",
    )
    security_protocol: SecurityProtocol = SecurityProtocol.PLAINTEXT
    sasl_mechanism: SaslMechanism | None = Field(
        default=None, description="Required with SASL_PLAINTEXT and SASL_SSL."
    )
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = Field(
        default=None, description="CA bundle that signed the brokers' certificates."
    )
    ssl_certfile: Path | None = Field(
        default=None, description="Client certificate for mutual TLS; needs ssl_keyfile."
    )
    ssl_keyfile: Path | None = Field(default=None, description="Private key of ssl_certfile.")
    max_message_bytes: int = Field(
        default=ONE_MEBIBYTE,
        gt=0,
        description=(
            "Largest record the producer sends (key, value, headers and framing). Kafka's "
            "default; larger payloads go to the object store and travel as a URI."
        ),
    )
    request_timeout_ms: int = Field(
        default=30_000,
        gt=500,
        description="How long a client waits for one broker response (above fetch wait, 500).",
    )
    delivery_timeout_ms: int = Field(
        default=120_000,
        gt=0,
        description=(
            "How long the producer keeps retrying one record, broker outages included, before "
            "it reports the record as failed."
        ),
    )
    max_block_ms: int = Field(
        default=60_000,
        ge=0,
        description="How long send() may block for metadata or buffer space.",
    )
    retry_backoff_ms: int = Field(default=100, ge=0, description="Pause between retries.")
    reconnect_backoff_max_ms: int = Field(
        default=1_000,
        gt=0,
        description="Cap of the exponential back-off between reconnects to a broker that is down.",
    )
    linger_ms: int = Field(
        default=5,
        ge=0,
        description="How long the producer waits to fill a batch; a little latency, much less I/O.",
    )
    session_timeout_ms: int = Field(
        default=45_000,
        gt=0,
        description="A consumer silent for this long is dropped from its group.",
    )
    heartbeat_interval_ms: int = Field(
        default=3_000, gt=0, description="Consumer heartbeat period; below session_timeout_ms."
    )
    max_poll_interval_ms: int = Field(
        default=300_000,
        gt=0,
        description="A consumer that takes longer than this to process a batch leaves its group.",
    )

    @field_validator("bootstrap_servers")
    @classmethod
    def _check_bootstrap_servers(cls, value: str) -> str:
        servers = [server.strip() for server in value.split(",") if server.strip()]
        if not servers:
            raise ValueError("bootstrap_servers is empty; expected host:port[,host:port...]")
        for server in servers:
            host, _, port = server.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"bootstrap server {server!r} is not host:port")
        return ",".join(servers)

    @model_validator(mode="after")
    def _check_consistency(self) -> Self:
        sasl_fields = (self.sasl_mechanism, self.sasl_username, self.sasl_password)
        if self.security_protocol in _SASL_PROTOCOLS:
            if any(field is None for field in sasl_fields):
                raise ValueError(
                    f"security_protocol {self.security_protocol} needs sasl_mechanism, "
                    "sasl_username and sasl_password"
                )
        elif any(field is not None for field in sasl_fields):
            raise ValueError(
                f"SASL credentials are set but security_protocol is {self.security_protocol}; "
                "use SASL_PLAINTEXT or SASL_SSL"
            )
        ssl_files = (self.ssl_cafile, self.ssl_certfile, self.ssl_keyfile)
        if self.security_protocol not in _SSL_PROTOCOLS and any(f is not None for f in ssl_files):
            raise ValueError(
                f"ssl_* files are set but security_protocol is {self.security_protocol}; "
                "use SSL or SASL_SSL"
            )
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("ssl_certfile and ssl_keyfile go together (mutual TLS)")
        if self.heartbeat_interval_ms >= self.session_timeout_ms:
            raise ValueError(
                f"heartbeat_interval_ms ({self.heartbeat_interval_ms}) must be below "
                f"session_timeout_ms ({self.session_timeout_ms})"
            )
        if self.delivery_timeout_ms < self.linger_ms + self.request_timeout_ms:
            raise ValueError(
                f"delivery_timeout_ms ({self.delivery_timeout_ms}) must be at least linger_ms + "
                f"request_timeout_ms ({self.linger_ms + self.request_timeout_ms})"
            )
        return self

    @property
    def bootstrap_server_list(self) -> list[str]:
        """``bootstrap_servers`` split into ``host:port`` entries."""
        return self.bootstrap_servers.split(",")

    def to_kafka_python_kwargs(self) -> dict[str, Any]:
        """Keyword arguments every kafka-python client (producer, consumer, admin) accepts.

        The result holds the SASL password in clear, as kafka-python needs it: pass it straight
        to the client and never log it.
        """
        kwargs: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_server_list,
            "client_id": self.client_id,
            "security_protocol": self.security_protocol.value,
            "request_timeout_ms": self.request_timeout_ms,
            "retry_backoff_ms": self.retry_backoff_ms,
            "reconnect_backoff_max_ms": self.reconnect_backoff_max_ms,
        }
        if self.sasl_mechanism is not None:
            kwargs["sasl_mechanism"] = self.sasl_mechanism.value
            kwargs["sasl_plain_username"] = self.sasl_username
            if self.sasl_password is not None:
                kwargs["sasl_plain_password"] = self.sasl_password.get_secret_value()
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(self, name)
            if path is not None:
                kwargs[name] = str(path)
        return kwargs

    def producer_kwargs(self) -> dict[str, Any]:
        """``to_kafka_python_kwargs()`` plus kafka-python's producer names for these limits."""
        return {
            **self.to_kafka_python_kwargs(),
            "max_request_size": self.max_message_bytes,
            "delivery_timeout_ms": self.delivery_timeout_ms,
            "max_block_ms": self.max_block_ms,
            "linger_ms": self.linger_ms,
        }

    def consumer_kwargs(self) -> dict[str, Any]:
        """``to_kafka_python_kwargs()`` plus kafka-python's consumer names for these limits.

        A partition fetch may hold a whole record of ``max_message_bytes`` plus batch framing.
        """
        return {
            **self.to_kafka_python_kwargs(),
            "session_timeout_ms": self.session_timeout_ms,
            "heartbeat_interval_ms": self.heartbeat_interval_ms,
            "max_poll_interval_ms": self.max_poll_interval_ms,
            "max_partition_fetch_bytes": max(self.max_message_bytes + 1024, ONE_MEBIBYTE),
        }
