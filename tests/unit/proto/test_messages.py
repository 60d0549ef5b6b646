"""The hybridrl.v1 messages survive the wire, follow the contract rules, and the services exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor, FileDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from hybridrl.proto import v1
from hybridrl.proto.schema import SCHEMA_VERSION, check_schema_version
from hybridrl.proto.v1 import (
    buffer_pb2,
    buffer_pb2_grpc,
    common_pb2,
    events_pb2,
    learner_pb2,
    learner_pb2_grpc,
    reward_pb2,
    reward_pb2_grpc,
    rollout_pb2,
    rollout_pb2_grpc,
)

PROTO_DIR = Path(__file__).resolve().parents[3] / "protos" / "hybridrl" / "v1"
ALL_FILES: list[FileDescriptor] = [
    module.DESCRIPTOR
    for module in (common_pb2, events_pb2, rollout_pb2, reward_pb2, buffer_pb2, learner_pb2)
]
CREATED_AT = Timestamp(seconds=1_767_225_600, nanos=500)
# float32-exact values, so the round trip compares equal bit for bit.
LOGPROBS = common_pb2.Tensor(
    dtype=common_pb2.DATA_TYPE_FLOAT32,
    shape=[3],
    data=b"\x00\x00\x00\xbf\x00\x00\xa0\xbf\x00\x00\x00\xc0",  # -0.5, -1.25, -2.0
)
IMAGES = [
    common_pb2.ImageRef(uri="s3://prompts/images/0001.png"),
    common_pb2.ImageRef(
        inline_image=common_pb2.InlineImage(data=b"\x89PNG\r\n", mime_type="image/png")
    ),
]


def _rollout_event() -> events_pb2.RolloutEvent:
    return events_pb2.RolloutEvent(
        schema_version=SCHEMA_VERSION,
        sample_id="geo-17@v3/2",
        group_id="geo-17@v3",
        prompt_id="geo-17",
        sample_index=2,
        group_size=8,
        policy_version=3,
        prompt_token_ids=[151644, 872, 198],
        response_token_ids=[785, 4226, 151645],
        behaviour_logprobs=LOGPROBS,
        response_text="The answer is \\boxed{42}",
        finish_reason=common_pb2.FINISH_REASON_STOP,
        prompt_text="How many degrees?",
        reference_answer="42",
        images=IMAGES,
        task_kind=common_pb2.TASK_KIND_MATH,
        created_at=CREATED_AT,
        payload_uri="s3://payloads/geo-17@v3/2.pb",
        payload_sha256="ab" * 32,
    )


def _events() -> list[Message]:
    return [
        events_pb2.PromptEvent(
            schema_version=SCHEMA_VERSION,
            prompt_id="geo-17",
            text="How many degrees?",
            images=IMAGES,
            reference_answer="42",
            task_kind=common_pb2.TASK_KIND_MATH,
            group_size=8,
            dataset_name="geometry3k",
            created_at=CREATED_AT,
        ),
        events_pb2.RolloutPayload(
            schema_version=SCHEMA_VERSION,
            prompt_token_ids=[151644, 872, 198],
            response_token_ids=[785, 4226, 151645],
            behaviour_logprobs=LOGPROBS,
        ),
        _rollout_event(),
        events_pb2.ScoredEvent(
            schema_version=SCHEMA_VERSION,
            rollout=_rollout_event(),
            reward=common_pb2.RewardParts(rule=1.0, model=0.25, format=0.5, total=1.75),
            extracted_answer="42",
            status=common_pb2.SCORER_STATUS_MODEL_SKIPPED,
            status_detail="reward model disabled",
            scored_at=CREATED_AT,
        ),
        events_pb2.PolicyVersionEvent(
            schema_version=SCHEMA_VERSION,
            policy_version=4,
            checkpoint_uri="s3://ckpt/run-1/step-000200/",
            manifest_sha256="cd" * 32,
            mode=common_pb2.TRAIN_MODE_ADAPTER_ONLY,
            step=200,
            created_at=CREATED_AT,
        ),
        events_pb2.DeadLetterEvent(
            schema_version=SCHEMA_VERSION,
            original_value=b"\xff\x00not a proto",
            original_topic="hybridrl.rollouts",
            original_partition=3,
            original_offset=1_234_567,
            original_key=b"geo-17@v3",
            reason="cannot decode RolloutEvent",
            error_class="DecodeError",
            service_name="reward",
            dead_lettered_at=CREATED_AT,
        ),
    ]


@pytest.mark.parametrize("event", _events(), ids=lambda event: type(event).__name__)
def test_event_round_trips_through_bytes_with_every_field_set(event: Message) -> None:
    assert len(event.ListFields()) == len(event.DESCRIPTOR.fields), "fixture leaves a field unset"
    decoded = type(event).FromString(event.SerializeToString())
    assert decoded == event
    check_schema_version(decoded)


def test_scored_event_keeps_rollout_tensor_and_images_after_round_trip() -> None:
    scored = events_pb2.ScoredEvent.FromString(_events()[3].SerializeToString())
    assert list(scored.rollout.response_token_ids) == [785, 4226, 151645]
    assert scored.rollout.behaviour_logprobs.data == LOGPROBS.data
    assert list(scored.rollout.behaviour_logprobs.shape) == [3]
    assert scored.rollout.images[0].WhichOneof("source") == "uri"
    assert scored.rollout.images[1].inline_image.mime_type == "image/png"
    assert scored.reward.total == 1.75
    assert scored.scored_at.ToNanoseconds() == 1_767_225_600_000_000_500


def test_sampling_seed_distinguishes_zero_from_unset() -> None:
    unset = common_pb2.SamplingParams(n=4, temperature=1.0, top_p=1.0, max_new_tokens=64)
    zero = common_pb2.SamplingParams(n=4, temperature=1.0, top_p=1.0, max_new_tokens=64, seed=0)
    assert not common_pb2.SamplingParams.FromString(unset.SerializeToString()).HasField("seed")
    assert common_pb2.SamplingParams.FromString(zero.SerializeToString()).HasField("seed")


def test_schema_version_check_accepts_current_version() -> None:
    check_schema_version(reward_pb2.ScoreRequest(schema_version=SCHEMA_VERSION))


def test_schema_version_check_rejects_unset_version() -> None:
    with pytest.raises(ValueError, match=r"hybridrl\.v1\.PromptEvent\.schema_version is 0"):
        check_schema_version(events_pb2.PromptEvent(prompt_id="p"))


def test_schema_version_check_rejects_future_version() -> None:
    message = events_pb2.RolloutEvent(schema_version=SCHEMA_VERSION + 1)
    with pytest.raises(ValueError, match=rf"is {SCHEMA_VERSION + 1}, but this code reads"):
        check_schema_version(message)


def test_schema_version_check_rejects_message_without_the_field() -> None:
    with pytest.raises(ValueError, match=r"hybridrl\.v1\.Tensor has no schema_version"):
        check_schema_version(common_pb2.Tensor())


def _messages_that_travel_alone() -> list[Descriptor]:
    """RPC requests and responses, and every message of events.proto (events, claim checks)."""
    rpc_messages = [
        message_type
        for file in ALL_FILES
        for service in file.services_by_name.values()
        for method in service.methods
        for message_type in (method.input_type, method.output_type)
    ]
    return rpc_messages + list(events_pb2.DESCRIPTOR.message_types_by_name.values())


def test_every_request_response_and_event_has_schema_version_as_field_one() -> None:
    travelling = _messages_that_travel_alone()
    assert len(travelling) == 24
    for message in travelling:
        field = message.fields_by_number[1]
        assert (field.name, field.type) == ("schema_version", FieldDescriptor.TYPE_UINT32), (
            message.full_name
        )


def test_every_enum_starts_with_unspecified_zero() -> None:
    enums = [enum for file in ALL_FILES for enum in file.enum_types_by_name.values()]
    assert len(enums) == 8
    for enum in enums:
        prefix = re.sub(r"(?<!^)(?=[A-Z])", "_", enum.name).upper()
        assert enum.values_by_number[0].name == f"{prefix}_UNSPECIFIED", enum.full_name
        for value in enum.values:
            assert value.name.startswith(f"{prefix}_"), value.name


EXPECTED_METHODS = {
    "RolloutService": {"Generate": False, "GenerateStream": True},
    "RewardService": {"Score": False, "ScoreBatch": False},
    "BufferService": {"Sample": False, "Stats": False, "Snapshot": False},
    "LearnerService": {"Status": False, "Checkpoint": False},
}


def test_services_have_expected_methods_and_streaming_flags() -> None:
    services = {
        service.name: service for file in ALL_FILES for service in file.services_by_name.values()
    }
    assert set(services) == set(EXPECTED_METHODS)
    for name, methods in EXPECTED_METHODS.items():
        service = services[name]
        assert service.full_name == f"hybridrl.v1.{name}"
        actual = {method.name: method.server_streaming for method in service.methods}
        assert actual == methods, name
        for method in service.methods:
            assert not method.client_streaming, method.full_name
            assert method.input_type.name == f"{method.name}Request"
            assert method.output_type.name == f"{method.name}Response"


@pytest.mark.parametrize(
    ("grpc_module", "service"),
    [
        (rollout_pb2_grpc, "RolloutService"),
        (reward_pb2_grpc, "RewardService"),
        (buffer_pb2_grpc, "BufferService"),
        (learner_pb2_grpc, "LearnerService"),
    ],
)
def test_grpc_module_has_stub_servicer_and_registration(grpc_module: object, service: str) -> None:
    servicer_class = getattr(grpc_module, f"{service}Servicer")
    assert isinstance(servicer_class, type)
    assert isinstance(getattr(grpc_module, f"{service}Stub"), type)
    assert callable(getattr(grpc_module, f"add_{service}Servicer_to_server"))
    for method in EXPECTED_METHODS[service]:
        assert callable(getattr(servicer_class, method))


def test_generated_package_lives_under_hybridrl_proto() -> None:
    assert v1.__name__ == "hybridrl.proto.v1"
    assert events_pb2.RolloutEvent.__module__ == "hybridrl.proto.v1.events_pb2"
    assert events_pb2.RolloutEvent.DESCRIPTOR.full_name == "hybridrl.v1.RolloutEvent"


_DECLARATION = re.compile(
    r"^\s*(message|service|enum|rpc|oneof)\s"  # a block
    r"|^\s*(repeated\s+|optional\s+)?[\w.<>, ]+\s+\w+\s*=\s*\d+;"  # a field
    r"|^\s*[A-Z][A-Z0-9_]*\s*=\s*\d+;"  # an enum value
)


@pytest.mark.parametrize("proto", sorted(PROTO_DIR.glob("*.proto")), ids=lambda path: path.name)
def test_every_proto_declaration_has_a_comment(proto: Path) -> None:
    lines = proto.read_text(encoding="utf-8").splitlines()
    uncommented = [
        f"{proto.name}:{number}: {line.strip()}"
        for number, line in enumerate(lines, start=1)
        if _DECLARATION.match(line) and not lines[number - 2].strip().startswith("//")
    ]
    assert not uncommented, "\n".join(uncommented)
