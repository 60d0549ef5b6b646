"""Settings of the rollout service: one frozen model, from YAML and ``HYBRIDRL_ROLLOUT_...``.

Parsed once by ``main.serve`` and passed down. Nested fields take ``__`` in the environment,
e.g. ``HYBRIDRL_ROLLOUT_KAFKA__BOOTSTRAP_SERVERS=kafka:9092`` or
``HYBRIDRL_ROLLOUT_MODEL__SOURCE=s3://models/r1v2/``.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from hybridrl.bus.topics import DEFAULT_PREFIX, Topics
from hybridrl.config.kafka import KafkaSettings
from hybridrl.config.object_store import ObjectStoreSettings
from hybridrl.config.service_settings import (
    GrpcServerSettings,
    ServiceSettings,
    default_claim_check_uri,
)
from hybridrl.engines.base import MAX_SEED
from hybridrl.models.vlm_config import FreezeMode
from hybridrl.rollout.policy_source import BUILTIN_TOKENIZER
from hybridrl.rollout.worker import RolloutSampling

TINY_MODEL = "tiny"


class PolicyModelSettings(BaseModel):
    """Which policy the worker starts from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str = Field(
        default=TINY_MODEL,
        description=(
            "'tiny' (the CPU test model, built from tiny_seed), or a directory written by "
            "VisionLanguageModel.save_pretrained: a local path or s3://bucket/prefix/."
        ),
    )
    tiny_seed: int = Field(default=0, ge=0, description="Initial weights of the tiny model.")
    tokenizer: str = Field(
        default="",
        description=(
            f"'{BUILTIN_TOKENIZER}', a local tokenizer directory, or '' for the model "
            "directory's tokenizer/. The tiny model always uses the built-in one."
        ),
    )
    dtype: Literal["float32", "bfloat16", "float16"] | None = Field(
        default=None, description="Load the weights in this dtype; None keeps the saved one."
    )
    cache_dir: Path = Field(
        default=Path("/tmp/hybridrl/models"),
        description="Where an s3:// model directory is copied before loading.",
    )
    initial_checkpoint_uri: str | None = Field(
        default=None,
        description=(
            "A policy checkpoint (save_policy) loaded at start-up, before the policy topic "
            "is read; its policy version becomes the worker's."
        ),
    )


class EngineSettings(BaseModel):
    """The generation engine."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["cpu", "vllm"] = Field(
        default="cpu", description="'cpu': transformers (tests, local runs); 'vllm': GPU nodes."
    )
    device: str = Field(default="cpu", description="torch device of the cpu engine.")
    max_batch_size: int = Field(
        default=64, ge=1, description="Responses the cpu engine decodes together."
    )
    weight_update_mode: FreezeMode = Field(
        default="adapter",
        description="Freeze mode whose trainable weights a policy update may carry alone.",
    )
    torch_threads: int = Field(
        default=1,
        ge=1,
        description="torch intra-op threads; on 2 cores a second thread only adds contention.",
    )
    seed: int | None = Field(
        default=None,
        ge=0,
        le=MAX_SEED,
        description="Seeds gRPC requests that bring no seed; None draws from the OS.",
    )
    vllm_model_path: str | None = Field(
        default=None, description="Local directory vLLM serves (required for kind 'vllm')."
    )
    vllm_options: dict[str, Any] = Field(
        default_factory=dict, description="More vllm.LLM arguments (tensor_parallel_size, ...)."
    )

    @model_validator(mode="after")
    def _vllm_needs_a_model_path(self) -> Self:
        if self.kind == "vllm" and not self.vllm_model_path:
            raise ValueError("engine kind 'vllm' needs vllm_model_path")
        return self


class SamplingSettings(BaseModel):
    """How responses to prompts from the prompts topic are sampled; a cap for gRPC callers."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    temperature: float = Field(default=1.0, ge=0, description="0 is greedy decoding.")
    top_p: float = Field(default=1.0, gt=0, le=1, description="Nucleus mass; 1 keeps all.")
    max_new_tokens: int = Field(default=256, ge=1, description="Longest response, eos included.")
    run_seed: int = Field(
        default=0, ge=0, le=MAX_SEED, description="Mixed into every group's sampling seed."
    )
    max_new_tokens_cap: int = Field(
        default=1024, ge=1, description="Longest response a gRPC Generate caller may ask for."
    )

    def rollout_sampling(self) -> RolloutSampling:
        return RolloutSampling(self.temperature, self.top_p, self.max_new_tokens, self.run_seed)


class RolloutSettings(ServiceSettings):
    """Everything the rollout service reads at start-up."""

    model_config = SettingsConfigDict(env_prefix="HYBRIDRL_ROLLOUT_")

    kafka: KafkaSettings = Field(
        default_factory=lambda: KafkaSettings(client_id="hybridrl-rollout")
    )
    object_store: ObjectStoreSettings | None = Field(
        default=None, description="S3 for checkpoints, s3:// images and claim checks."
    )
    grpc: GrpcServerSettings = Field(default_factory=GrpcServerSettings)
    topic_prefix: str = Field(
        default=DEFAULT_PREFIX, description="Prefix of the loop's topic names (one per run)."
    )
    group_id: str = Field(default="hybridrl-rollout", min_length=1)
    worker_id: str = Field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}",
        min_length=1,
        description="Names this worker in a header of its rollouts; the pod name by default.",
    )
    model: PolicyModelSettings = Field(default_factory=PolicyModelSettings)
    engine: EngineSettings = Field(default_factory=EngineSettings)
    sampling: SamplingSettings = Field(default_factory=SamplingSettings)
    max_batch_prompts: int = Field(
        default=8, ge=1, description="Prompts polled and generated together in one batch."
    )
    poll_timeout_seconds: float = Field(default=1.0, gt=0)
    consume: bool = Field(
        default=True, description="Consume prompts; off serves gRPC Generate only."
    )
    watch_policy: bool = Field(default=True, description="Hot-reload from the policy topic.")
    policy_catch_up_seconds: float = Field(
        default=60.0,
        gt=0,
        description="At start-up, how long to wait for the newest announced policy to load.",
    )
    claim_check_uri: str | None = Field(
        default=None,
        description=(
            "Where rollouts over the Kafka limit park their tokens; default "
            "s3://<object_store.bucket>/claim-checks/rollouts when an object store is set."
        ),
    )

    @field_validator("topic_prefix")
    @classmethod
    def _legal_prefix(cls, value: str) -> str:
        Topics(value)
        return value

    @model_validator(mode="after")
    def _sampling_is_valid(self) -> Self:
        self.sampling.rollout_sampling()
        return self

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    @property
    def resolved_claim_check_uri(self) -> str | None:
        return default_claim_check_uri(self.claim_check_uri, self.object_store)
