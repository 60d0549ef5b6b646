"""ReplayShard: offsets follow the records, waits end when a group completes, and a snapshot
plus the records after it rebuild exactly the state of a run that never stopped."""

from __future__ import annotations

import pickle
import random
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hybridrl.config.buffer import MPOPairConfig, SSBConfig
from hybridrl.replay.config import GroupAssemblyConfig, SampleStoreConfig
from hybridrl.replay.records import ScoredSample
from hybridrl.replay.shard import ReplayShard, ShardSettings
from hybridrl.replay.snapshots import ShardSnapshots
from hybridrl.store.local_object_store import LocalObjectStore

SampleFactory = Callable[..., ScoredSample]
GroupFactory = Callable[[str, int, list[float]], list[ScoredSample]]

SETTINGS = ShardSettings(
    assembly=GroupAssemblyConfig(expiry_policy_versions=1, expiry_seconds=30.0),
    store=SampleStoreConfig(effective_window_groups=5, batches_kept_per_rank=2),
    buffer=SSBConfig(capacity=6, buffered_fraction=0.25, max_staleness=3),
    pairs=MPOPairConfig(threshold=1.5, max_pairs_per_group=None),
)


@dataclass(frozen=True)
class Message:
    sample: ScoredSample
    partition: int
    offset: int
    event_time_s: float


def scored_stream(make_sample: SampleFactory, seed: int, groups: int = 40) -> list[Message]:
    """Groups of 4 from policies 0..6, shuffled a little, some responses twice, some lost."""
    rng = random.Random(seed)
    samples: list[ScoredSample] = []
    for number in range(groups):
        version = number // 6
        kind = rng.random()
        if kind < 0.3:
            rewards = [1.0] * 4  # zero variance
        elif kind < 0.6:
            rewards = [float(rng.randint(0, 1)) for _ in range(4)]
        else:
            rewards = [round(rng.uniform(0.0, 3.0), 3) for _ in range(4)]
        members = [
            make_sample(f"g{number}", version, index, 4, reward=reward)
            for index, reward in enumerate(rewards)
        ]
        if rng.random() < 0.1:
            members.pop(rng.randrange(4))  # lost upstream: the group must expire
        samples.extend(members)
        samples.extend(rng.sample(members, k=1) if rng.random() < 0.3 else [])  # redelivered
    for start in range(0, len(samples) - 5, 5):
        window = samples[start : start + 5]
        rng.shuffle(window)
        samples[start : start + 5] = window
    next_offset = [0, 0]
    messages = []
    for number, sample in enumerate(samples):
        partition = zlib.crc32(sample.response.group_id.encode()) % 2
        messages.append(Message(sample, partition, next_offset[partition], 10.0 + number))
        next_offset[partition] += 1
    return messages


def apply_all(shard: ReplayShard, messages: list[Message]) -> None:
    for message in messages:
        shard.apply(
            message.sample, "scored", message.partition, message.offset, message.event_time_s
        )


def learner_calls(shard: ReplayShard, step: int) -> None:
    """What a learner with two ranks asks at one step (GRPO) and, every other step, MPO."""
    for rank in (0, 1):
        shard.next_grpo_batch(3, step // 2, 2, rank, 2, step)
        if step % 2:
            shard.next_mpo_batch(2, step // 2, 2, rank, 2, step)


def run(shard: ReplayShard, messages: list[Message], start: int, stop: int) -> None:
    """Apply messages[start:stop], with learner calls after every 10th message."""
    for number in range(start, stop):
        apply_all(shard, [messages[number]])
        if number % 10 == 9:
            learner_calls(shard, number // 10)


def assert_same(left: Any, right: Any, path: str = "state") -> None:
    """Deep equality that compares numpy arrays by value and dtype."""
    assert type(left) is type(right), f"{path}: {type(left)} vs {type(right)}"
    if isinstance(left, np.ndarray):
        assert left.dtype == right.dtype, path
        assert np.array_equal(left, right), path
    elif isinstance(left, dict):
        assert list(left) == list(right), f"{path}: keys differ"
        for key in left:
            assert_same(left[key], right[key], f"{path}[{key!r}]")
    elif isinstance(left, list | tuple):
        assert len(left) == len(right), f"{path}: lengths {len(left)} vs {len(right)}"
        for index, (a, b) in enumerate(zip(left, right, strict=True)):
            assert_same(a, b, f"{path}[{index}]")
    elif is_dataclass(left):
        for field in fields(left):
            assert_same(getattr(left, field.name), getattr(right, field.name), f"{path}.{field}")
    else:
        assert left == right, f"{path}: {left!r} vs {right!r}"


def test_snapshot_restore_and_replay_equal_a_run_without_restart(
    make_sample: SampleFactory,
) -> None:
    messages = scored_stream(make_sample, seed=7)
    straight = ReplayShard(SETTINGS)
    run(straight, messages, 0, len(messages))

    for cut in (0, 23, 61, len(messages)):
        first = ReplayShard(SETTINGS)
        run(first, messages, 0, cut)
        snapshot = first.snapshot()
        # The bytes a snapshot file holds; the restored shard must continue where it stopped.
        restored = ReplayShard.restore(pickle.loads(pickle.dumps(snapshot.data)), SETTINGS)
        assert restored.offsets() == snapshot.offsets
        run(restored, messages, cut, len(messages))
        assert_same(restored.snapshot().data, straight.snapshot().data)
        assert restored.stats() == straight.stats()

    stats = straight.stats()
    # The stream exercises every path the equality covers.
    assert stats.groups_zero_variance > 0
    assert stats.groups_expired > 0
    assert stats.duplicates_dropped > 0
    assert stats.samples_served_buffer > 0
    assert stats.pairs_served > 0


def test_offsets_move_with_applied_and_skipped_records(make_sample: SampleFactory) -> None:
    shard = ReplayShard()
    shard.apply(make_sample("p", 0, 0, 2), "scored", 1, 41, 1.0)
    shard.skip("scored", 0, 7)
    shard.apply(make_sample("p", 0, 0, 2), "scored", 1, 40, 1.0)  # a redelivery: no step back
    assert shard.offsets() == {("scored", 1): 42, ("scored", 0): 8}


def test_refused_record_leaves_the_offsets_alone(make_sample: SampleFactory) -> None:
    shard = ReplayShard()
    shard.apply(make_sample("p", 0, 0, 2), "scored", 0, 0, 1.0)
    with pytest.raises(ValueError, match="group_size"):
        shard.apply(make_sample("p", 0, 1, 3), "scored", 0, 1, 1.0)
    assert shard.offsets() == {("scored", 0): 1}


def test_waiting_request_is_answered_when_the_completing_group_arrives(
    make_group: GroupFactory,
) -> None:
    shard = ReplayShard()
    answered: list[int] = []

    def learner() -> None:
        batch = shard.next_grpo_batch(2, 0, 4, 0, 1, step=0, wait_s=30.0)
        answered.append(len(batch.samples))

    thread = threading.Thread(target=learner)
    thread.start()
    for offset, sample in enumerate(make_group("p", 0, [0.0, 1.0])):
        shard.apply(sample, "scored", 0, offset, 1.0)
    thread.join(timeout=30.0)
    assert not thread.is_alive()
    assert answered == [2]


def test_without_wait_a_short_batch_comes_back_at_once(make_group: GroupFactory) -> None:
    shard = ReplayShard()
    for offset, sample in enumerate(make_group("p", 0, [0.0, 1.0])):
        shard.apply(sample, "scored", 0, offset, 1.0)
    batch = shard.next_grpo_batch(8, 0, 4, 0, 1, step=0)
    assert len(batch.samples) == 2
    assert not batch.complete


def test_snapshots_in_the_object_store_restore_the_newest(
    make_group: GroupFactory, tmp_path: Path
) -> None:
    snapshots = ShardSnapshots.for_shard(LocalObjectStore(tmp_path), "shard-0", keep_last=2)
    assert snapshots.restore_latest() is None
    shard = ReplayShard(SETTINGS)
    saved = []
    for number, rewards in enumerate(([0.0, 1.0], [1.0, 1.0], [2.0, 0.0])):
        for index, sample in enumerate(make_group(f"p{number}", 0, rewards)):
            shard.apply(sample, "scored", 0, 2 * number + index, 1.0)
        saved.append(snapshots.save(shard.snapshot()))
    assert [s.sequence for s in saved] == [0, 1, 2]
    assert saved[-1].uri.endswith("ssb/shard-0/step-000000002/")
    assert saved[-1].offsets == {("scored", 0): 6}
    assert sorted(p.name for p in (tmp_path / "ssb" / "shard-0").iterdir()) == [
        "step-000000001",
        "step-000000002",
    ]
    restored = ShardSnapshots.for_shard(LocalObjectStore(tmp_path), "shard-0").restore_latest(
        SETTINGS
    )
    assert restored is not None
    assert restored.offsets == {("scored", 0): 6}
    assert restored.snapshot.sequence == 2
    assert_same(restored.shard.snapshot().data, shard.snapshot().data)
    assert restored.shard.stats().groups_completed == 3


def test_snapshot_sequence_continues_after_a_restore(
    make_group: GroupFactory, tmp_path: Path
) -> None:
    store = LocalObjectStore(tmp_path)
    shard = ReplayShard()
    ShardSnapshots.for_shard(store, "s").save(shard.snapshot())
    later = ShardSnapshots.for_shard(store, "s")
    restored = later.restore_latest()
    assert restored is not None
    assert later.save(restored.shard.snapshot()).sequence == 1


def test_shard_name_with_a_slash_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must not contain"):
        ShardSnapshots.for_shard(LocalObjectStore(tmp_path), "a/b")
