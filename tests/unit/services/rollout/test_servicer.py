"""RolloutService over gRPC on loopback: completions, streams, invalid requests, deadlines."""

import math
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent import futures

import grpc
import numpy as np
import pytest
import torch
from hybridrl_services.rollout.servicer import RolloutServicer

from hybridrl.engines.base import GenerationRequest, GenerationResult
from hybridrl.models.images import encode_png, inline_image_ref
from hybridrl.proto.schema import SCHEMA_VERSION
from hybridrl.proto.tensor_codec import array_from_tensor
from hybridrl.proto.v1 import common_pb2, rollout_pb2, rollout_pb2_grpc
from hybridrl.rollout.on_demand import OnDemandGenerator
from hybridrl.rollout.prompt_inputs import PromptEncoder
from hybridrl.rollout.shared_engine import SharedEngine
from hybridrl.tasks.visual_reasoning import generate_prompts

CAP = 32
IMAGE_TOKEN_ID = 4


def serve(generator: OnDemandGenerator) -> tuple[grpc.Server, rollout_pb2_grpc.RolloutServiceStub]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    rollout_pb2_grpc.add_RolloutServiceServicer_to_server(RolloutServicer(generator), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    return server, rollout_pb2_grpc.RolloutServiceStub(channel)


@pytest.fixture
def stub(
    shared_engine: SharedEngine, encoder: PromptEncoder
) -> Iterator[rollout_pb2_grpc.RolloutServiceStub]:
    server, client = serve(OnDemandGenerator(shared_engine, encoder, max_new_tokens_cap=CAP))
    yield client
    server.stop(None)


def task_image() -> common_pb2.ImageRef:
    return inline_image_ref(encode_png(generate_prompts(1, seed=0)[0].image))


def sampling(**changes: object) -> common_pb2.SamplingParams:
    values: dict[str, object] = {
        "n": 3,
        "temperature": 1.0,
        "top_p": 1.0,
        "max_new_tokens": 6,
        "seed": 11,
    }
    values.update(changes)
    return common_pb2.SamplingParams(**values)  # type: ignore[arg-type]


def generate_request(**changes: object) -> rollout_pb2.GenerateRequest:
    request = rollout_pb2.GenerateRequest(
        schema_version=SCHEMA_VERSION,
        prompt_text="How many shapes are in the image?",
        images=[task_image()],
        sampling=sampling(),
    )
    for name, value in changes.items():
        if name == "images":
            del request.images[:]
            request.images.extend(value)  # type: ignore[arg-type]
        elif name == "sampling":
            request.sampling.CopyFrom(value)  # type: ignore[arg-type]
        else:
            setattr(request, name, value)
    return request


def test_generate_returns_n_completions_with_their_behaviour_logprobs(
    stub: rollout_pb2_grpc.RolloutServiceStub,
) -> None:
    response = stub.Generate(generate_request(), timeout=30)
    assert response.schema_version == SCHEMA_VERSION
    assert list(response.prompt_token_ids)[:17] == [1] + [IMAGE_TOKEN_ID] * 16
    assert [completion.index for completion in response.completions] == [0, 1, 2]
    for completion in response.completions:
        logprobs = array_from_tensor(completion.behaviour_logprobs)
        assert completion.behaviour_logprobs.dtype == common_pb2.DATA_TYPE_FLOAT32
        assert logprobs.shape == (len(completion.token_ids),)
        assert 1 <= len(completion.token_ids) <= 6
        assert bool(np.all(logprobs <= 0))
        assert completion.policy_version == 0
        assert completion.finish_reason in (
            common_pb2.FINISH_REASON_STOP,
            common_pb2.FINISH_REASON_LENGTH,
        )


def test_seeded_generate_is_reproducible(stub: rollout_pb2_grpc.RolloutServiceStub) -> None:
    first = stub.Generate(generate_request(), timeout=30)
    second = stub.Generate(generate_request(), timeout=30)
    assert first == second


def test_stream_chunks_join_to_the_generate_result(
    stub: rollout_pb2_grpc.RolloutServiceStub,
) -> None:
    whole = stub.Generate(generate_request(), timeout=30)
    for stream_tokens in (False, True):
        request = rollout_pb2.GenerateStreamRequest(
            schema_version=SCHEMA_VERSION,
            prompt_text="How many shapes are in the image?",
            images=[task_image()],
            sampling=sampling(),
            stream_tokens=stream_tokens,
        )
        chunks = list(stub.GenerateStream(request, timeout=30))
        assert list(chunks[0].prompt_token_ids) == list(whole.prompt_token_ids)
        assert all(not chunk.prompt_token_ids for chunk in chunks[1:])
        for completion in whole.completions:
            mine = [chunk for chunk in chunks if chunk.response_index == completion.index]
            assert [t for chunk in mine for t in chunk.token_ids] == list(completion.token_ids)
            assert "".join(chunk.text for chunk in mine) == completion.text
            joined = np.concatenate([array_from_tensor(c.behaviour_logprobs) for c in mine])
            np.testing.assert_array_equal(joined, array_from_tensor(completion.behaviour_logprobs))
            assert mine[-1].finish_reason == completion.finish_reason
            assert {chunk.policy_version for chunk in mine} == {completion.policy_version}


INVALID_REQUESTS = [
    ("n zero", generate_request(sampling=sampling(n=0)), "n must be an integer in [1, 256]"),
    ("n huge", generate_request(sampling=sampling(n=10**6)), "got 1000000"),
    ("negative temperature", generate_request(sampling=sampling(temperature=-0.5)), ">= 0"),
    ("nan temperature", generate_request(sampling=sampling(temperature=math.nan)), "finite"),
    ("top_p zero", generate_request(sampling=sampling(top_p=0.0)), "top_p must be in (0, 1]"),
    ("top_p above one", generate_request(sampling=sampling(top_p=1.5)), "top_p"),
    ("no new tokens", generate_request(sampling=sampling(max_new_tokens=0)), "max_new_tokens"),
    (
        "over the cap",
        generate_request(sampling=sampling(max_new_tokens=CAP + 1)),
        "at most 32, got 33",
    ),
    ("seed too large", generate_request(sampling=sampling(seed=2**63)), "seed must be"),
    ("empty prompt", generate_request(prompt_text="", images=[]), "the prompt is empty"),
    (
        "undecodable image",
        generate_request(
            images=[
                common_pb2.ImageRef(
                    inline_image=common_pb2.InlineImage(data=b"\x89PNG junk", mime_type="image/png")
                )
            ]
        ),
        "image does not decode",
    ),
    ("two images", generate_request(images=[task_image(), task_image()]), "at most 1 image"),
    ("unset schema version", generate_request(schema_version=0), "schema_version is 0"),
    ("future schema version", generate_request(schema_version=2), "schema_version is 2"),
    ("prompt too long", generate_request(prompt_text="x" * 600), "the model handles 512"),
]


@pytest.mark.parametrize(
    ("request_message", "message"),
    [(request, message) for _, request, message in INVALID_REQUESTS],
    ids=[name for name, _, _ in INVALID_REQUESTS],
)
def test_invalid_requests_are_invalid_argument_and_the_server_stays_healthy(
    stub: rollout_pb2_grpc.RolloutServiceStub,
    request_message: rollout_pb2.GenerateRequest,
    message: str,
) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        stub.Generate(request_message, timeout=30)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in raised.value.details()
    stream_request = rollout_pb2.GenerateStreamRequest(
        schema_version=request_message.schema_version,
        prompt_text=request_message.prompt_text,
        images=request_message.images,
        sampling=request_message.sampling,
    )
    with pytest.raises(grpc.RpcError) as streamed:
        list(stub.GenerateStream(stream_request, timeout=30))
    assert streamed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert len(stub.Generate(generate_request(), timeout=30).completions) == 3


class BusyEngine:
    """Blocks ``generate`` until released: the prompt loop in the middle of a long batch."""

    def __init__(self, inner: SharedEngine) -> None:
        self.inner = inner
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    @property
    def policy_version(self) -> int:
        return self.inner.policy_version

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        self.calls += 1
        if self.calls == 1:
            self.entered.set()
            self.release.wait(timeout=30)
        return self.inner.generate(requests)

    def load_weights(self, state: Mapping[str, torch.Tensor], policy_version: int) -> None:
        self.inner.load_weights(state, policy_version)

    def close(self) -> None:
        self.inner.close()


def test_a_call_behind_a_long_batch_ends_at_its_deadline_and_the_next_one_succeeds(
    shared_engine: SharedEngine, encoder: PromptEncoder
) -> None:
    busy = BusyEngine(shared_engine)
    engine = SharedEngine(busy)
    server, stub = serve(OnDemandGenerator(engine, encoder, max_new_tokens_cap=CAP))
    try:
        batch = threading.Thread(target=engine.generate, args=([GenerationRequest("b", [1])],))
        batch.start()
        assert busy.entered.wait(timeout=30)
        with pytest.raises(grpc.RpcError) as raised:
            stub.Generate(generate_request(), timeout=0.3)
        assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        busy.release.set()
        batch.join(timeout=30)
        assert len(stub.Generate(generate_request(), timeout=30).completions) == 3
    finally:
        busy.release.set()
        server.stop(None)
