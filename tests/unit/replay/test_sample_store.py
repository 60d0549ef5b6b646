"""SampleStore: eq. 6 advantages, vanishing-advantage accounting, SSB top-up, MPO pairs."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from hybridrl.algo.samples import ScoredResponse
from hybridrl.config.buffer import MPOPairConfig, SSBConfig
from hybridrl.config.losses import GRPOConfig
from hybridrl.replay.config import SampleStoreConfig
from hybridrl.replay.records import SamplePayload, ScoredSample
from hybridrl.replay.sample_store import SampleStore

GroupFactory = Callable[[str, int, list[float]], list[ScoredSample]]
Responses = list[ScoredResponse[SamplePayload]]


def responses(samples: list[ScoredSample]) -> Responses:
    return [sample.response for sample in samples]


def grpo(
    store: SampleStore, batch_size: int, step: int, **overrides: int
) -> list[tuple[str, float, bool]]:
    request = {"current_policy_version": 0, "max_staleness": 4, "rank": 0, "world_size": 1}
    request.update(overrides)
    batch = store.next_grpo_batch(batch_size, step=step, **request)
    return [(s.response.sample_id, s.advantage, s.from_buffer) for s in batch.samples]


def test_advantages_are_eq6_with_unbiased_std_plus_eps(make_group: GroupFactory) -> None:
    store = SampleStore()
    # [1, 0, 0, 0]: mean 0.25, unbiased std 0.5; A = 0.75 / 0.500001 and -0.25 / 0.500001.
    assert store.add_group(responses(make_group("p", 0, [1.0, 0.0, 0.0, 0.0])))
    served = grpo(store, 4, step=0)
    assert [sample_id for sample_id, _, _ in served] == ["p/v0/0", "p/v0/1", "p/v0/2", "p/v0/3"]
    assert [advantage for _, advantage, _ in served] == pytest.approx(
        [1.499997000006, -0.499999000002, -0.499999000002, -0.499999000002], abs=1e-12
    )
    assert [from_buffer for _, _, from_buffer in served] == [False] * 4


def test_two_response_group_gets_plus_minus_one_over_std(make_group: GroupFactory) -> None:
    store = SampleStore()
    # [2, 4]: mean 3, std sqrt(2) = 1.4142135623730951; A = -/+ 1 / (1.4142135623730951 + 1e-6).
    store.add_group(responses(make_group("q", 0, [2.0, 4.0])))
    served = grpo(store, 2, step=0)
    assert [advantage for _, advantage, _ in served] == pytest.approx(
        [-0.7071062811869011, 0.7071062811869011], abs=1e-12
    )


def test_dr_grpo_estimator_only_centres_the_rewards(make_group: GroupFactory) -> None:
    store = SampleStore(advantage_config=GRPOConfig(advantage_estimator="dr_grpo"))
    store.add_group(responses(make_group("p", 0, [0.0, 1.0, 3.0])))
    # mean 4/3: A = r - 4/3.
    assert [a for _, a, _ in grpo(store, 3, step=0)] == pytest.approx(
        [-4 / 3, -1 / 3, 5 / 3], abs=1e-12
    )


def test_zero_variance_groups_are_counted_and_never_served(make_group: GroupFactory) -> None:
    store = SampleStore(buffer_config=SSBConfig(enabled=False))
    assert not store.add_group(responses(make_group("same", 0, [1.0, 1.0, 1.0, 1.0])))
    assert store.add_group(responses(make_group("mixed", 0, [1.0, 0.0, 0.0, 0.0])))
    first = grpo(store, 4, step=0)  # the four signal-free rollouts: nothing to train on
    assert first == []
    second = grpo(store, 4, step=1)
    assert [sample_id for sample_id, _, _ in second] == [f"mixed/v0/{i}" for i in range(4)]
    counters = store.counters()
    assert counters["groups_zero_variance"] == 1
    assert counters["groups_effective"] == 1
    assert counters["fresh_zero_advantage_dropped"] == 4
    assert counters["samples_served_fresh"] == 4


def test_single_response_group_counts_as_zero_variance(make_group: GroupFactory) -> None:
    store = SampleStore()
    assert not store.add_group(responses(make_group("alone", 0, [5.0])))
    assert store.counters()["groups_zero_variance"] == 1


def test_effective_ratio_over_the_window_and_cumulative(make_group: GroupFactory) -> None:
    store = SampleStore(SampleStoreConfig(effective_window_groups=2))
    store.add_group(responses(make_group("a", 0, [1.0, 0.0])))  # effective
    store.add_group(responses(make_group("b", 0, [1.0, 1.0])))  # zero variance
    store.add_group(responses(make_group("c", 0, [0.0, 1.0])))  # effective
    assert store.effective_ratio_window == 0.5  # b, c
    counters = store.counters()
    assert counters["groups_effective"] / counters["groups_completed"] == pytest.approx(2 / 3)


def test_buffer_receives_only_effective_samples_served_in_an_earlier_step(
    make_group: GroupFactory,
) -> None:
    store = SampleStore()
    store.add_group(responses(make_group("a", 0, [2.0, 4.0])))
    store.add_group(responses(make_group("z", 0, [3.0, 3.0])))
    grpo(store, 4, step=0)
    buffer = store.buffer
    assert buffer is not None
    assert len(buffer) == 0  # step 0's samples wait for a later step
    grpo(store, 1, step=1)
    assert sorted(r for r in ("a/v0/0", "a/v0/1", "z/v0/0", "z/v0/1") if r in buffer) == [
        "a/v0/0",
        "a/v0/1",
    ]


def test_buffer_fills_the_places_of_zero_advantage_samples(make_group: GroupFactory) -> None:
    store = SampleStore()
    store.add_group(responses(make_group("a", 0, [2.0, 4.0])))
    grpo(store, 2, step=0)
    store.add_group(responses(make_group("z", 0, [1.0, 1.0])))
    served = grpo(store, 2, step=1)
    # Both places come from the buffer: only a/v0/* is there, with its eq. 6 advantages.
    assert [from_buffer for _, _, from_buffer in served] == [True, True]
    for sample_id, advantage, _ in served:
        expected = -0.7071062811869011 if sample_id == "a/v0/0" else 0.7071062811869011
        assert sample_id in {"a/v0/0", "a/v0/1"}
        assert advantage == pytest.approx(expected, abs=1e-12)
    assert store.counters()["samples_served_buffer"] == 2


def test_a_fresh_sample_is_handed_out_as_fresh_once(make_group: GroupFactory) -> None:
    store = SampleStore(buffer_config=SSBConfig(enabled=False))
    store.add_group(responses(make_group("a", 0, [0.0, 1.0, 2.0, 3.0])))
    first = grpo(store, 2, step=0)
    second = grpo(store, 2, step=1)
    third = grpo(store, 2, step=2)
    assert [s for s, _, _ in first] == ["a/v0/0", "a/v0/1"]
    assert [s for s, _, _ in second] == ["a/v0/2", "a/v0/3"]
    assert third == []


def test_batches_are_idempotent_per_step_and_rank(make_group: GroupFactory) -> None:
    store = SampleStore()
    store.add_group(responses(make_group("a", 0, [0.0, 1.0, 2.0, 3.0])))
    rank0 = grpo(store, 2, step=7, rank=0, world_size=2)
    rank1 = grpo(store, 2, step=7, rank=1, world_size=2)
    assert grpo(store, 2, step=7, rank=0, world_size=2) == rank0
    assert grpo(store, 2, step=7, rank=1, world_size=2) == rank1
    assert {s for s, _, _ in rank0}.isdisjoint({s for s, _, _ in rank1})
    assert store.counters()["samples_served_fresh"] == 4
    with pytest.raises(ValueError, match="same"):
        grpo(store, 3, step=7, rank=0, world_size=2)


def test_empty_batch_is_not_remembered_so_a_retry_gets_new_samples(
    make_group: GroupFactory,
) -> None:
    store = SampleStore()
    assert grpo(store, 2, step=0) == []
    store.add_group(responses(make_group("a", 0, [0.0, 1.0])))
    assert [s for s, _, _ in grpo(store, 2, step=0)] == ["a/v0/0", "a/v0/1"]


def test_fresh_samples_beyond_the_staleness_bound_are_dropped_and_counted(
    make_group: GroupFactory,
) -> None:
    store = SampleStore(buffer_config=SSBConfig(max_staleness=3))
    store.add_group(responses(make_group("old", 1, [0.0, 1.0])))
    store.add_group(responses(make_group("new", 4, [0.0, 1.0])))
    # current 5, request allows 10 but the configured 3 caps it: version 1 < 5 - 3 is stale.
    served = grpo(store, 4, step=0, current_policy_version=5, max_staleness=10)
    assert [s for s, _, _ in served] == ["new/v4/0", "new/v4/1"]
    assert store.counters()["fresh_stale_dropped"] == 2


def test_bad_requests_are_refused(make_group: GroupFactory) -> None:
    store = SampleStore()
    with pytest.raises(ValueError, match="batch_size"):
        grpo(store, 0, step=0)
    with pytest.raises(ValueError, match="rank"):
        grpo(store, 1, step=0, rank=2, world_size=2)


def test_mpo_pairs_take_only_margins_above_the_threshold(make_group: GroupFactory) -> None:
    store = SampleStore(pair_config=MPOPairConfig(threshold=15.0, max_pairs_per_group=None))
    store.add_group(responses(make_group("p", 0, [20.0, 0.0, 3.0, 10.0])))  # 20-0; 10-3 < 15
    store.add_group(responses(make_group("q", 0, [9.0, 1.0])))  # 8 < 15: no pair
    batch = store.next_mpo_batch(4, 0, 4, 0, 1, step=0)
    assert [(p.chosen.sample_id, p.rejected.sample_id) for p in batch.pairs] == [
        ("p/v0/0", "p/v0/1")
    ]
    assert batch.pairs[0].margin == 20.0
    assert store.next_mpo_batch(4, 0, 4, 0, 1, step=0) == batch
    assert store.counters()["pairs_built"] == 1


def test_stale_pairs_are_dropped_and_counted(make_group: GroupFactory) -> None:
    store = SampleStore(pair_config=MPOPairConfig(threshold=1.0))
    store.add_group(responses(make_group("p", 0, [2.0, 0.0])))
    batch = store.next_mpo_batch(1, 3, 2, 0, 1, step=0)
    assert batch.pairs == ()
    assert store.counters()["pairs_stale_dropped"] == 1


def test_fresh_queue_overflow_drops_the_oldest(make_group: GroupFactory) -> None:
    store = SampleStore(SampleStoreConfig(fresh_capacity=3))
    store.add_group(responses(make_group("a", 0, [0.0, 1.0])))
    store.add_group(responses(make_group("b", 0, [0.0, 1.0])))
    assert store.queue_sizes()[0] == 3
    assert store.counters()["fresh_overflow_dropped"] == 1
    assert [s for s, _, _ in grpo(store, 3, step=0)] == ["a/v0/1", "b/v0/0", "b/v0/1"]


def test_restore_with_a_larger_buffer_keeps_the_buffered_samples(
    make_group: GroupFactory,
) -> None:
    store = SampleStore(buffer_config=SSBConfig(capacity=8))
    store.add_group(responses(make_group("a", 0, [0.0, 1.0])))
    grpo(store, 2, step=0)
    grpo(store, 1, step=1)  # releases step 0's samples into the buffer
    bigger = SampleStore.restore(store.snapshot(), buffer_config=SSBConfig(capacity=16))
    assert bigger.buffer is not None
    assert bigger.buffer.stats().capacity == 16
    assert "a/v0/0" in bigger.buffer
    assert "a/v0/1" in bigger.buffer
