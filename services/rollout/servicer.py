"""gRPC ``RolloutService``: ``Generate`` and ``GenerateStream`` over the worker's engine.

A translation between the messages of ``protos/hybridrl/v1/rollout.proto`` and
``hybridrl.rollout.OnDemandGenerator``: ValueError (bad sampling, empty prompt, an image that
does not decode, a schema version this code does not read) answers INVALID_ARGUMENT with the
reason; an engine still busy when the caller's deadline runs out answers DEADLINE_EXCEEDED; an
object store that stays unreachable (images by URI) answers UNAVAILABLE.

The engine returns finished responses, so ``GenerateStream`` sends one message per response,
carrying all its tokens and its finish reason, whether or not ``stream_tokens`` is set;
joining the chunks of each response gives exactly what ``Generate`` returns.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np

from hybridrl.engines.base import Completion, GenerationResult, SamplingOptions
from hybridrl.proto.schema import SCHEMA_VERSION, check_schema_version
from hybridrl.proto.tensor_codec import tensor_from_array
from hybridrl.proto.v1 import common_pb2, rollout_pb2, rollout_pb2_grpc
from hybridrl.rollout.on_demand import OnDemandGenerator
from hybridrl.rollout.worker import FINISH_REASONS
from hybridrl.store.object_store import ObjectStoreUnavailable

logger = logging.getLogger(__name__)

SERVICE_NAME = rollout_pb2.DESCRIPTOR.services_by_name["RolloutService"].full_name


def sampling_options(params: common_pb2.SamplingParams) -> SamplingOptions:
    """The engine's options for a request's ``SamplingParams``; ValueError when invalid."""
    return SamplingOptions(
        n=params.n,
        temperature=params.temperature,
        top_p=params.top_p,
        max_new_tokens=params.max_new_tokens,
        seed=params.seed if params.HasField("seed") else None,
    )


def _logprobs(completion: Completion) -> common_pb2.Tensor:
    return tensor_from_array(np.asarray(completion.logprobs, dtype=np.float32))


class RolloutServicer(rollout_pb2_grpc.RolloutServiceServicer):
    """Serves ``RolloutService`` with an ``OnDemandGenerator``."""

    def __init__(self, generator: OnDemandGenerator) -> None:
        self._generator = generator

    def Generate(  # noqa: N802 - the RPC's name
        self, request: rollout_pb2.GenerateRequest, context: Any
    ) -> rollout_pb2.GenerateResponse:
        result = self._generate(request, context)
        return rollout_pb2.GenerateResponse(
            schema_version=SCHEMA_VERSION,
            prompt_token_ids=result.prompt_token_ids,
            completions=[
                rollout_pb2.Completion(
                    index=index,
                    token_ids=completion.token_ids,
                    text=completion.text,
                    behaviour_logprobs=_logprobs(completion),
                    policy_version=result.policy_version,
                    finish_reason=FINISH_REASONS[completion.finish_reason],
                )
                for index, completion in enumerate(result.completions)
            ],
        )

    def GenerateStream(  # noqa: N802 - the RPC's name
        self, request: rollout_pb2.GenerateStreamRequest, context: Any
    ) -> Iterator[rollout_pb2.GenerateStreamResponse]:
        result = self._generate(request, context)
        for index, completion in enumerate(result.completions):
            yield rollout_pb2.GenerateStreamResponse(
                schema_version=SCHEMA_VERSION,
                response_index=index,
                token_ids=completion.token_ids,
                text=completion.text,
                behaviour_logprobs=_logprobs(completion),
                policy_version=result.policy_version,
                finish_reason=FINISH_REASONS[completion.finish_reason],
                prompt_token_ids=result.prompt_token_ids if index == 0 else [],
            )

    def _generate(
        self,
        request: rollout_pb2.GenerateRequest | rollout_pb2.GenerateStreamRequest,
        context: Any,
    ) -> GenerationResult:
        try:
            check_schema_version(request)
            sampling = sampling_options(request.sampling)
            return self._generator.generate(
                request.prompt_text,
                request.images,
                sampling,
                timeout=context.time_remaining(),
            )
        except ValueError as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        except TimeoutError as error:
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, str(error))
        except ObjectStoreUnavailable as error:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(error))
        raise AssertionError("context.abort returns only by raising")
