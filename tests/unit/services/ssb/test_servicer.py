"""BufferService on a real gRPC server on loopback: batches with eq. 6 advantages, Stats,
Snapshot, and INVALID_ARGUMENT for bad requests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import grpc
import numpy as np
import pytest
from hybridrl_services.common.grpc_server import ServiceServer
from hybridrl_services.ssb.scored_events import scored_sample_from_event
from hybridrl_services.ssb.servicer import SERVICE_NAME, BufferServicer, SnapshotRequester

from hybridrl.config.buffer import MPOPairConfig
from hybridrl.config.service_settings import GrpcServerSettings
from hybridrl.proto.schema import SCHEMA_VERSION
from hybridrl.proto.tensor_codec import array_from_tensor, tensor_from_array
from hybridrl.proto.v1 import buffer_pb2, buffer_pb2_grpc, common_pb2, events_pb2
from hybridrl.replay.shard import ReplayShard, ShardSettings
from hybridrl.replay.snapshots import SavedSnapshot

EventFactory = Callable[..., events_pb2.ScoredEvent]
MAX_BATCH = 64


class Harness:
    """A shard behind a BufferServicer on a loopback gRPC server, and a stub to call it."""

    def __init__(self, requester: SnapshotRequester | None = None) -> None:
        self.shard = ReplayShard(ShardSettings(pairs=MPOPairConfig(threshold=1.0)))
        servicer = BufferServicer(self.shard, requester, max_batch_size=MAX_BATCH, max_wait_s=0.0)
        self.server = ServiceServer(
            GrpcServerSettings(host="127.0.0.1", port=0, max_workers=2),
            [SERVICE_NAME],
            lambda server: buffer_pb2_grpc.add_BufferServiceServicer_to_server(servicer, server),
        )
        port = self.server.start()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = buffer_pb2_grpc.BufferServiceStub(self.channel)
        self.offset = 0

    def feed(self, events: list[events_pb2.ScoredEvent]) -> None:
        for event in events:
            sample = scored_sample_from_event(event, None)
            self.shard.apply(sample, "scored", 0, self.offset, 1.0)
            self.offset += 1

    def close(self) -> None:
        self.channel.close()
        self.server.stop(0)


@pytest.fixture
def harness() -> Iterator[Harness]:
    running = Harness()
    yield running
    running.close()


def sample_request(**fields: object) -> buffer_pb2.SampleRequest:
    values: dict[str, object] = {
        "schema_version": SCHEMA_VERSION,
        "kind": buffer_pb2.BATCH_KIND_GRPO,
        "batch_size": 4,
        "current_policy_version": 0,
        "max_staleness": 2,
        "learner_rank": 0,
        "learner_world_size": 1,
        "learner_step": 0,
    }
    values.update(fields)
    return buffer_pb2.SampleRequest(**values)  # type: ignore[arg-type]


def group(
    make_event: EventFactory, prompt: str, rewards: list[float], version: int = 0
) -> list[events_pb2.ScoredEvent]:
    return [make_event(prompt, version, i, len(rewards), reward=r) for i, r in enumerate(rewards)]


def test_sample_returns_the_group_with_its_eq6_advantages(
    harness: Harness, make_event: EventFactory
) -> None:
    harness.feed(group(make_event, "geo", [1.0, 0.0, 0.0, 0.0]))
    response = harness.stub.Sample(sample_request(), timeout=10)
    assert response.schema_version == SCHEMA_VERSION
    samples = response.grpo.samples
    assert [s.sample_id for s in samples] == [f"geo/v0/{i}" for i in range(4)]
    # mean 0.25, unbiased std 0.5: A = 0.75 / 0.500001 and -0.25 / 0.500001.
    assert [s.advantage for s in samples] == pytest.approx(
        [1.499997000006, -0.499999000002, -0.499999000002, -0.499999000002], abs=1e-12
    )
    first = samples[0]
    assert (first.group_id, first.prompt_id, first.policy_version) == ("geo/v0", "geo", 0)
    assert list(first.prompt_token_ids) == [1, 2, 3]
    assert list(first.response_token_ids) == [10, 20]
    assert array_from_tensor(first.behaviour_logprobs).tolist() == [-0.5, -0.25]
    assert first.reward == 1.0
    assert first.reward_parts == common_pb2.RewardParts(rule=1.0, total=1.0)
    assert first.origin == buffer_pb2.SAMPLE_ORIGIN_FRESH
    assert [image.uri for image in first.images] == ["s3://images/cat.png"]


def test_grpo_batch_reports_the_fresh_samples_it_took_including_dropped_ones(
    harness: Harness, make_event: EventFactory
) -> None:
    harness.feed(group(make_event, "same", [2.0, 2.0]))
    mixed = group(make_event, "mixed", [1.0, 0.0])
    mixed[0].reward.CopyFrom(common_pb2.RewardParts(rule=0.5, model=0.25, format=0.25, total=1.0))
    mixed[1].rollout.response_token_ids.extend([30, 40])
    mixed[1].rollout.behaviour_logprobs.CopyFrom(
        tensor_from_array(np.array([-1.0, -1.0, -1.0, -1.0], dtype=np.float32))
    )
    harness.feed(mixed)
    batch = harness.stub.Sample(sample_request(batch_size=4), timeout=10).grpo
    assert [s.sample_id for s in batch.samples] == ["mixed/v0/0", "mixed/v0/1"]
    assert batch.samples[0].reward_parts == common_pb2.RewardParts(
        rule=0.5, model=0.25, format=0.25, total=1.0
    )
    assert (batch.fresh_offered, batch.fresh_zero_advantage) == (4, 2)
    # total (2 + 2 + 1 + 0) / 4; rule (2 + 2 + 0.5 + 0) / 4; model and format 0.25 / 4.
    assert batch.fresh_reward_mean == common_pb2.RewardParts(
        rule=1.125, model=0.0625, format=0.0625, total=1.25
    )
    # 2 + 2 + 2 + 4 response tokens over four samples.
    assert batch.fresh_response_length_mean == 2.5


def test_retried_sample_for_the_same_step_returns_the_same_batch(
    harness: Harness, make_event: EventFactory
) -> None:
    harness.feed(group(make_event, "a", [0.0, 1.0, 2.0, 3.0]))
    first = harness.stub.Sample(sample_request(batch_size=2, learner_step=5), timeout=10)
    again = harness.stub.Sample(sample_request(batch_size=2, learner_step=5), timeout=10)
    following = harness.stub.Sample(sample_request(batch_size=2, learner_step=6), timeout=10)
    assert again == first
    assert [s.sample_id for s in first.grpo.samples] == ["a/v0/0", "a/v0/1"]
    assert [s.sample_id for s in following.grpo.samples] == ["a/v0/2", "a/v0/3"]


def test_sample_with_too_few_samples_returns_a_short_batch(harness: Harness) -> None:
    response = harness.stub.Sample(sample_request(batch_size=8), timeout=10)
    assert response.WhichOneof("batch") == "grpo"
    assert len(response.grpo.samples) == 0


def test_mpo_pairs_come_with_both_responses(harness: Harness, make_event: EventFactory) -> None:
    harness.feed(group(make_event, "p", [3.0, 0.0, 1.0, 1.0]))
    response = harness.stub.Sample(
        sample_request(kind=buffer_pb2.BATCH_KIND_MPO_PAIRS, batch_size=2), timeout=10
    )
    pairs = response.mpo_pairs.pairs
    assert len(pairs) == 1
    pair = pairs[0]
    assert pair.pair_id == "p/v0/0>p/v0/1"
    assert (pair.chosen.sample_id, pair.chosen.reward) == ("p/v0/0", 3.0)
    assert (pair.rejected.sample_id, pair.rejected.reward) == ("p/v0/1", 0.0)
    assert list(pair.prompt_token_ids) == [1, 2, 3]
    assert list(pair.rejected.response_token_ids) == [11, 21]


def test_stats_count_zero_variance_groups_and_the_effective_ratio(
    harness: Harness, make_event: EventFactory
) -> None:
    harness.feed(group(make_event, "same", [1.0, 1.0]))
    harness.feed(group(make_event, "mixed", [1.0, 0.0], version=3))
    harness.feed([make_event("mixed", 3, 0, 2, reward=1.0)])  # a redelivery
    harness.stub.Sample(sample_request(batch_size=4, current_policy_version=3), timeout=10)
    # The next step moves step 0's two effective samples into the buffer.
    harness.stub.Sample(
        sample_request(batch_size=1, learner_step=1, current_policy_version=4), timeout=10
    )
    stats = harness.stub.Stats(buffer_pb2.StatsRequest(schema_version=SCHEMA_VERSION), timeout=10)
    assert stats.groups_seen == 2
    assert stats.groups_dropped_zero_variance == 1
    assert stats.effective_sample_ratio == 0.5
    assert stats.duplicates_dropped == 1
    assert stats.newest_policy_version == 4
    assert (stats.buffer_size, stats.buffer_capacity) == (2, 100_000)
    assert (stats.staleness_min, stats.staleness_max) == (1, 1)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": MAX_BATCH + 1}, "batch_size"),
        ({"learner_rank": 2, "learner_world_size": 2}, "learner_rank"),
        ({"learner_world_size": 0}, "learner_rank"),
        ({"schema_version": 0}, "schema_version"),
        ({"schema_version": SCHEMA_VERSION + 1}, "schema_version"),
        ({"kind": buffer_pb2.BATCH_KIND_UNSPECIFIED}, "kind"),
    ],
)
def test_bad_sample_requests_are_invalid_argument(
    harness: Harness, fields: dict[str, object], message: str
) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        harness.stub.Sample(sample_request(**fields), timeout=10)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in raised.value.details()


def test_retry_with_another_batch_size_is_invalid_argument(
    harness: Harness, make_event: EventFactory
) -> None:
    harness.feed(group(make_event, "a", [0.0, 1.0]))
    harness.stub.Sample(sample_request(batch_size=2), timeout=10)
    with pytest.raises(grpc.RpcError) as raised:
        harness.stub.Sample(sample_request(batch_size=3), timeout=10)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_stats_with_a_wrong_schema_version_is_invalid_argument(harness: Harness) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        harness.stub.Stats(buffer_pb2.StatsRequest(), timeout=10)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_snapshot_without_a_location_is_failed_precondition(harness: Harness) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        harness.stub.Snapshot(buffer_pb2.SnapshotRequest(schema_version=SCHEMA_VERSION), timeout=10)
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_snapshot_returns_where_it_was_written_and_its_offsets() -> None:
    saved = SavedSnapshot(
        uri="s3://ssb/ssb/shard-0/step-000000004/",
        sequence=4,
        offsets={("hybridrl.scored", 1): 17, ("hybridrl.scored", 0): 5},
        buffer_size=12,
        revision=40,
        created_at=datetime(2026, 11, 25, 10, 0, tzinfo=UTC),
    )
    deadlines: list[float | None] = []

    def requester(timeout_s: float | None) -> SavedSnapshot:
        deadlines.append(timeout_s)
        return saved

    running = Harness(requester)
    try:
        response = running.stub.Snapshot(
            buffer_pb2.SnapshotRequest(schema_version=SCHEMA_VERSION), timeout=10
        )
    finally:
        running.close()
    assert response.snapshot_uri == saved.uri
    assert [(o.topic, o.partition, o.offset) for o in response.consumer_offsets] == [
        ("hybridrl.scored", 0, 5),
        ("hybridrl.scored", 1, 17),
    ]
    assert response.buffer_size == 12
    assert response.created_at.ToDatetime(tzinfo=UTC) == saved.created_at
    assert deadlines[0] is not None
    assert 5 < deadlines[0] < 11  # what is left of the call's 10 s deadline


def test_snapshot_that_does_not_finish_in_time_is_deadline_exceeded() -> None:
    def requester(timeout_s: float | None) -> SavedSnapshot:
        raise TimeoutError

    running = Harness(requester)
    try:
        with pytest.raises(grpc.RpcError) as raised:
            running.stub.Snapshot(
                buffer_pb2.SnapshotRequest(schema_version=SCHEMA_VERSION), timeout=10
            )
    finally:
        running.close()
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_offloaded_sample_carries_its_claim_check_instead_of_tokens(
    harness: Harness, make_event: EventFactory
) -> None:
    events = group(make_event, "long", [0.0, 1.0])
    for event in events:
        event.rollout.ClearField("prompt_token_ids")
        event.rollout.ClearField("response_token_ids")
        event.rollout.ClearField("behaviour_logprobs")
        event.rollout.payload_uri = "s3://claims/ab/" + "ab" * 32
        event.rollout.payload_sha256 = "ab" * 32
    for offset, event in enumerate(events):
        sample = scored_sample_from_event(event, None, fetch_offloaded=False)
        harness.shard.apply(sample, "scored", 0, offset, 1.0)
    samples = harness.stub.Sample(sample_request(batch_size=2), timeout=10).grpo.samples
    assert [s.payload_uri for s in samples] == ["s3://claims/ab/" + "ab" * 32] * 2
    assert not samples[0].HasField("behaviour_logprobs")
    assert list(samples[0].response_token_ids) == []
    assert np.isclose(abs(samples[0].advantage), 0.7071062811869011)
    batch = harness.stub.Sample(sample_request(batch_size=2), timeout=10).grpo
    # Tokens behind a claim check have no length here: they are left out of the mean.
    assert (batch.fresh_offered, batch.fresh_response_length_mean) == (2, 0.0)
