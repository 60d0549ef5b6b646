"""GroupAssembler: groups complete on their last response, duplicates drop, lost groups expire."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from hybridrl.replay.assembler import GroupAssembler
from hybridrl.replay.config import GroupAssemblyConfig
from hybridrl.replay.records import ScoredSample

SampleFactory = Callable[..., ScoredSample]


def test_group_completes_on_its_last_response_whatever_the_arrival_order(
    make_sample: SampleFactory,
) -> None:
    assembler = GroupAssembler()
    results = [
        assembler.add(make_sample("p", 0, index, 3, reward=float(index)), event_time_s=1.0)
        for index in (2, 0, 1)
    ]
    assert [r.completed is None for r in results] == [True, True, False]
    completed = results[-1].completed
    assert completed is not None
    assert [r.sample_id for r in completed] == ["p/v0/0", "p/v0/1", "p/v0/2"]
    assert [r.reward for r in completed] == [0.0, 1.0, 2.0]
    counters = assembler.counters()
    assert counters["groups_opened"] == 1
    assert counters["groups_completed"] == 1
    assert counters["samples_accepted"] == 3
    assert assembler.pending_groups == 0


def test_redelivered_response_of_a_pending_group_is_dropped_and_counted(
    make_sample: SampleFactory,
) -> None:
    assembler = GroupAssembler()
    assembler.add(make_sample("p", 0, 0, 2, reward=1.0), 1.0)
    again = assembler.add(make_sample("p", 0, 0, 2, reward=1.0), 1.0)
    assert again.duplicate
    assert again.completed is None
    last = assembler.add(make_sample("p", 0, 1, 2, reward=0.0), 1.0)
    assert last.completed is not None
    assert len(last.completed) == 2
    assert assembler.counters()["duplicates_dropped"] == 1


def test_redelivery_after_completion_does_not_reopen_the_group(
    make_sample: SampleFactory,
) -> None:
    assembler = GroupAssembler()
    for index in range(2):
        assembler.add(make_sample("p", 0, index, 2), 1.0)
    for index in range(2):
        result = assembler.add(make_sample("p", 0, index, 2), 1.0)
        assert result.duplicate
        assert result.completed is None
    assert assembler.pending_groups == 0
    assert assembler.counters()["duplicates_dropped"] == 2
    assert assembler.counters()["groups_completed"] == 1


def test_closed_group_memory_is_bounded_and_forgets_the_oldest(
    make_sample: SampleFactory,
) -> None:
    assembler = GroupAssembler(GroupAssemblyConfig(closed_group_memory=1))
    assembler.add(make_sample("a", 0, 0, 1), 1.0)
    assembler.add(make_sample("b", 0, 0, 1), 1.0)
    # "b" is remembered; "a" was forgotten, so its redelivery is taken as a new group.
    assert assembler.add(make_sample("b", 0, 0, 1), 1.0).duplicate
    reopened = assembler.add(make_sample("a", 0, 0, 1), 1.0)
    assert not reopened.duplicate
    assert reopened.completed is not None


def test_partial_group_expires_when_a_newer_policy_passes_the_version_limit(
    make_sample: SampleFactory,
) -> None:
    assembler = GroupAssembler(GroupAssemblyConfig(expiry_policy_versions=2))
    assembler.add(make_sample("lost", 0, 0, 4), 1.0)
    assembler.add(make_sample("lost", 0, 1, 4), 1.0)
    assembler.add(make_sample("other", 2, 0, 4), 2.0)  # 2 - 0 = 2: not beyond the limit yet
    assert assembler.pending_groups == 2
    assembler.add(make_sample("other", 3, 0, 4), 3.0)  # 3 - 0 > 2: "lost" expires
    counters = assembler.counters()
    assert counters["groups_expired"] == 1
    assert counters["samples_expired"] == 2
    assert assembler.pending_groups == 2  # other/v2 and other/v3
    late = assembler.add(make_sample("lost", 0, 2, 4), 3.0)
    assert late.duplicate
    assert assembler.pending_groups == 2


def test_partial_group_expires_on_event_time(make_sample: SampleFactory) -> None:
    assembler = GroupAssembler(GroupAssemblyConfig(expiry_seconds=60.0))
    assembler.add(make_sample("slow", 0, 0, 2), 100.0)
    assembler.add(make_sample("next", 0, 0, 2), 160.0)  # exactly 60 s later: kept
    assert assembler.counters()["groups_expired"] == 0
    assembler.add(make_sample("later", 0, 0, 2), 160.5)
    assert assembler.counters()["groups_expired"] == 1
    assert assembler.pending_groups == 2


def test_event_time_is_a_watermark_so_a_late_timestamp_does_not_move_it_back(
    make_sample: SampleFactory,
) -> None:
    assembler = GroupAssembler(GroupAssemblyConfig(expiry_seconds=10.0))
    assembler.add(make_sample("a", 0, 0, 2), 100.0)
    assembler.add(make_sample("b", 0, 0, 2), 120.0)  # expires "a"
    assembler.add(make_sample("c", 0, 0, 2), 50.0)  # an old stamp: "b" stays
    assert assembler.counters()["groups_expired"] == 1
    assembler.add(make_sample("d", 0, 0, 2), 131.0)  # watermark 131: "b" (120) and "c" (50) go
    assert assembler.counters()["groups_expired"] == 3


def test_response_that_contradicts_its_group_is_refused_without_changes(
    make_sample: SampleFactory,
) -> None:
    assembler = GroupAssembler()
    assembler.add(make_sample("p", 0, 0, 4), 1.0)
    before = assembler.snapshot()
    with pytest.raises(ValueError, match="group_size"):
        assembler.add(make_sample("p", 0, 1, 3), 1.0)
    with pytest.raises(ValueError, match="held by"):
        assembler.add(make_sample("p", 0, 0, 4, sample_id="impostor"), 1.0)
    assert assembler.snapshot() == before


def test_sample_index_outside_the_group_is_refused(make_sample: SampleFactory) -> None:
    with pytest.raises(ValueError, match="outside"):
        make_sample("p", 0, 4, 4)


def test_restored_assembler_continues_like_the_original(make_sample: SampleFactory) -> None:
    config = GroupAssemblyConfig(expiry_policy_versions=1)
    original = GroupAssembler(config)
    original.add(make_sample("a", 0, 0, 2), 1.0)
    original.add(make_sample("b", 1, 0, 2), 2.0)
    original.add(make_sample("b", 1, 1, 2), 2.0)
    copy = GroupAssembler.restore(original.snapshot(), config)
    for assembler in (original, copy):
        completed = assembler.add(make_sample("a", 0, 1, 2), 3.0).completed
        assert completed is not None
        assert assembler.add(make_sample("b", 1, 0, 2), 3.0).duplicate
    assert copy.snapshot() == original.snapshot()
