"""How a service reads its settings: a YAML file, then ``HYBRIDRL_<SERVICE>_...`` variables.

Every service has one frozen settings model, a subclass of :class:`ServiceSettings`, parsed once
in its ``main()`` and passed down; nothing else reads the environment. Environment variables
override the file, as Kubernetes sets them over a mounted ConfigMap; nested fields use ``__``
(``HYBRIDRL_REWARD_KAFKA__BOOTSTRAP_SERVERS=kafka:9092``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from hybridrl.config.object_store import ObjectStoreSettings


def default_claim_check_uri(
    explicit: str | None, object_store: ObjectStoreSettings | None
) -> str | None:
    """Where rollouts over the Kafka limit park their tokens: ``explicit`` if set, else
    ``s3://<bucket>/claim-checks/rollouts`` when an object store is configured, else None.
    Rollout, reward, SSB and learner must agree on it, hence one function."""
    if explicit is not None:
        return explicit
    if object_store is None:
        return None
    return f"s3://{object_store.bucket}/claim-checks/rollouts"


class ServiceSettings(BaseSettings):
    """Base of the per-service settings; subclasses set ``env_prefix``."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid", env_nested_delimiter="__")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Earlier sources win: the environment over the file's values (passed as init kwargs).
        return env_settings, init_settings, file_secret_settings

    @classmethod
    def load(cls, config_file: Path | None = None, **overrides: Any) -> Self:
        """Settings from ``config_file`` (YAML mapping, optional), overridden by the environment.

        ``overrides`` (used by the CLI and the local run) are merged over the file's values.
        """
        values: dict[str, Any] = {}
        if config_file is not None:
            loaded = yaml.safe_load(config_file.read_text())
            if loaded is not None and not isinstance(loaded, dict):
                raise ValueError(f"{config_file}: expected a YAML mapping at the top level")
            values = dict(loaded or {})
        values.update(overrides)
        return cls(**values)


class GrpcServerSettings(BaseModel):
    """Where a gRPC server listens and its limits."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field(default="0.0.0.0", description="Interface to bind; 0.0.0.0 in a pod.")
    port: int = Field(default=50051, ge=0, le=65535, description="0 picks a free port.")
    max_workers: int = Field(default=8, ge=1, description="Threads serving requests.")
    max_message_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="Largest request or response; larger requests get RESOURCE_EXHAUSTED.",
    )
    grace_seconds: float = Field(
        default=10.0, ge=0, description="On SIGTERM, how long in-flight calls may finish."
    )
