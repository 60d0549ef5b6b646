"""SelectiveSampleBuffer: selection, |A|-weighted draws, de-dup, eviction, snapshots."""

import pickle
from collections import Counter
from typing import Any

import numpy as np
import pytest
from scipy.stats import chisquare

from hybridrl.algo.buffer import SelectiveSampleBuffer
from hybridrl.algo.samples import ScoredResponse, group_id_for, sample_id_for
from hybridrl.config.buffer import EvictionPolicy, SSBConfig


def response(prompt_id: str, index: int = 0, version: int = 0) -> ScoredResponse[None]:
    return ScoredResponse(
        sample_id=sample_id_for(prompt_id, version, index),
        group_id=group_id_for(prompt_id, version),
        prompt_id=prompt_id,
        policy_version=version,
        reward=0.0,
        payload=None,
    )


def group(prompt_id: str, size: int, version: int = 0) -> list[ScoredResponse[None]]:
    return [response(prompt_id, index, version) for index in range(size)]


def eq6_advantages(rewards: list[float]) -> list[float]:
    """Eq. (6) with population std; a zero-variance group gives zeros."""
    values = np.asarray(rewards, dtype=np.float64)
    std = values.std()
    return [0.0] * len(rewards) if std == 0.0 else ((values - values.mean()) / std).tolist()


def ids(buffer: SelectiveSampleBuffer[None]) -> set[str]:
    return {record.sample_id for record in buffer.snapshot()["records"]}


def buffer_of(**settings: object) -> SelectiveSampleBuffer[None]:
    return SelectiveSampleBuffer(SSBConfig.model_validate(settings))


def test_priorities_and_probabilities_hand_computed() -> None:
    # alpha=2, eps=0.5: |A|=1 -> 2.25, |A|=0.5 -> 1.0, |A|=2 -> 6.25; total 9.5.
    buffer = buffer_of(alpha=2.0, priority_epsilon=0.5, advantage_tolerance=0.1)
    samples = group("p", 4)
    assert buffer.add(samples, [1.0, -0.5, 0.05, 2.0]) == 3
    assert buffer.total_priority == 9.5
    assert buffer.snapshot()["priorities"].tolist() == [2.25, 1.0, 6.25]
    draw = buffer.sample(500, np.random.default_rng(0))
    probability_of = dict(zip((r.sample_id for r in draw.records), draw.probabilities, strict=True))
    assert probability_of == {
        "p/v0/0": pytest.approx(2.25 / 9.5),
        "p/v0/1": pytest.approx(1.0 / 9.5),
        "p/v0/3": pytest.approx(6.25 / 9.5),
    }
    advantage_of = dict(zip((r.sample_id for r in draw.records), draw.advantages, strict=True))
    assert advantage_of == {"p/v0/0": 1.0, "p/v0/1": -0.5, "p/v0/3": 2.0}
    assert buffer.stats().zero_advantage_dropped == 1


@pytest.mark.parametrize(("alpha", "eps"), [(1.0, 0.0), (0.6, 0.1), (0.0, 1e-6)])
def test_draw_frequencies_follow_priority_chi_square(alpha: float, eps: float) -> None:
    buffer = buffer_of(alpha=alpha, priority_epsilon=eps, advantage_tolerance=1e-3)
    advantages = [0.05, -0.3, 0.8, -1.5, 2.2, 0.01]
    samples = group("q", len(advantages))
    buffer.add(samples, advantages)
    draws = 120_000
    draw = buffer.sample(draws, np.random.default_rng(1234))
    counts = Counter(record.sample_id for record in draw.records)
    observed = np.array([counts[s.sample_id] for s in samples])
    priorities = (np.abs(advantages) + eps) ** alpha
    expected = draws * priorities / priorities.sum()
    assert chisquare(observed, expected).pvalue > 0.001


def test_every_group_with_reward_variance_is_buffered_whatever_its_position() -> None:
    # Regression for trl issue 6804 (GRPOWithReplayBufferTrainer buffered only the first group
    # of a batch). Groups 0 and 3 have no variance; 1, 2 and the last one do.
    rewards = [
        [1.0] * 4,
        [0.0, 1.0, 0.0, 0.0],
        [1.0, 0.0, 1.0, 1.0],
        [0.0] * 4,
        [0.2, 0.9, 0.5, 0.5],
    ]
    batch: list[ScoredResponse[None]] = []
    advantages: list[float] = []
    for index, group_rewards in enumerate(rewards):
        batch += group(f"g{index}", 4)
        advantages += eq6_advantages(group_rewards)
    buffer = buffer_of()
    assert buffer.add(batch, advantages) == 12
    assert {r.group_id for r in buffer.snapshot()["records"]} == {"g1/v0", "g2/v0", "g4/v0"}
    drawn_groups = {r.group_id for r in buffer.sample(2000, np.random.default_rng(0)).records}
    assert drawn_groups == {"g1/v0", "g2/v0", "g4/v0"}
    assert buffer.stats().zero_advantage_dropped == 8


def test_readding_same_ids_leaves_contents_unchanged_and_counts_duplicates() -> None:
    buffer = buffer_of()
    samples = group("d", 4)
    buffer.add(samples, [1.0, -1.0, 2.0, -2.0])
    before = buffer.snapshot()
    assert buffer.add(samples, [5.0, 5.0, 5.0, 5.0]) == 0
    after = buffer.snapshot()
    assert after["records"] == before["records"]
    np.testing.assert_array_equal(after["advantages"], before["advantages"])
    np.testing.assert_array_equal(after["priorities"], before["priorities"])
    stats = buffer.stats()
    assert (stats.size, stats.inserted, stats.duplicates_dropped) == (4, 4, 4)


def test_repeated_id_within_one_batch_is_stored_once() -> None:
    buffer = buffer_of()
    one = response("x")
    assert buffer.add([one, one], [1.0, 3.0]) == 1
    assert buffer.snapshot()["advantages"].tolist() == [1.0]
    assert buffer.stats().duplicates_dropped == 1


def test_oldest_eviction_keeps_the_newest_samples() -> None:
    buffer = buffer_of(capacity=3, eviction="oldest")
    buffer.add([response(name) for name in "abc"], [1.0, 3.0, 2.0])
    buffer.add([response(name) for name in "de"], [0.5, 0.7])
    assert ids(buffer) == {"c/v0/0", "d/v0/0", "e/v0/0"}
    assert buffer.stats().evicted_capacity == 2


def test_batch_larger_than_capacity_keeps_its_last_samples() -> None:
    buffer = buffer_of(capacity=2, eviction="oldest")
    assert buffer.add([response(name) for name in "abcde"], [1.0, 2.0, 3.0, 4.0, 5.0]) == 5
    assert ids(buffer) == {"d/v0/0", "e/v0/0"}
    assert buffer.total_priority == pytest.approx(4.0 + 5.0)
    stats = buffer.stats()
    assert (stats.size, stats.inserted, stats.evicted_capacity) == (2, 5, 3)


def test_lowest_priority_eviction_keeps_the_largest_advantages() -> None:
    buffer = buffer_of(capacity=3, eviction="lowest_priority", priority_epsilon=0.0)
    buffer.add([response(name) for name in "abc"], [1.0, -3.0, 2.0])
    buffer.add([response("d")], [2.5])  # evicts a (|A| = 1)
    assert ids(buffer) == {"b/v0/0", "c/v0/0", "d/v0/0"}
    buffer.add([response("e")], [0.5])  # below every stored priority: refused
    assert ids(buffer) == {"b/v0/0", "c/v0/0", "d/v0/0"}
    buffer.add([response("f")], [-2.0])  # ties with c: the older one, c, leaves
    assert ids(buffer) == {"b/v0/0", "d/v0/0", "f/v0/0"}
    assert buffer.stats().evicted_capacity == 3


def test_lowest_priority_eviction_sees_updated_advantages() -> None:
    buffer = buffer_of(capacity=2, eviction="lowest_priority", priority_epsilon=0.0)
    buffer.add([response("a"), response("b")], [1.0, 2.0])
    assert buffer.update_advantages(["a/v0/0"], [5.0]) == 1
    buffer.add([response("c")], [3.0])  # b is now the lowest
    assert ids(buffer) == {"a/v0/0", "c/v0/0"}


def test_evict_stale_removes_exactly_the_versions_below_the_bound() -> None:
    buffer = buffer_of(max_staleness=2)
    buffer.add([response("s", 0, version) for version in range(6)], [1.0] * 6)
    assert buffer.evict_stale(current_policy_version=5) == 3  # bound 5 - 2 = 3
    assert ids(buffer) == {"s/v3/0", "s/v4/0", "s/v5/0"}
    stats = buffer.stats()
    assert (stats.evicted_stale, stats.min_policy_version, stats.max_policy_version) == (3, 3, 5)
    assert buffer.evict_stale(current_policy_version=5, max_staleness=0) == 2
    assert ids(buffer) == {"s/v5/0"}
    assert buffer.total_priority == pytest.approx(1.0 + 1e-6)


def test_freed_slots_are_reused_without_eviction() -> None:
    buffer = buffer_of(capacity=2)
    buffer.add([response("a", 0, 0), response("b", 0, 1)], [1.0, 1.0])
    buffer.evict_stale(current_policy_version=1, max_staleness=0)
    buffer.add([response("c", 0, 1)], [1.0])
    assert ids(buffer) == {"b/v1/0", "c/v1/0"}
    assert buffer.stats().evicted_capacity == 0


def test_update_advantages_reprioritises_and_drops_vanishing_ones() -> None:
    buffer = buffer_of(priority_epsilon=0.0)
    buffer.add([response("a"), response("b")], [1.0, 1.0])
    assert buffer.update_advantages(["a/v0/0", "b/v0/0", "missing"], [3.0, 0.0, 9.0]) == 2
    assert ids(buffer) == {"a/v0/0"}
    assert buffer.total_priority == 3.0
    assert buffer.stats().zero_advantage_dropped == 1


@pytest.mark.parametrize("eviction", list(EvictionPolicy))
def test_snapshot_restore_round_trips_contents_and_future_behaviour(
    eviction: EvictionPolicy,
) -> None:
    rng = np.random.default_rng(11)
    buffer = buffer_of(capacity=50, eviction=eviction, alpha=0.7)
    for step in range(12):
        buffer.add(group(f"r{step}", 8, version=step // 3), rng.normal(size=8))
    buffer.evict_stale(current_policy_version=3, max_staleness=1)
    buffer.update_advantages(["r11/v3/0", "r10/v3/1"], [4.0, 0.0])
    restored = SelectiveSampleBuffer.restore(pickle.loads(pickle.dumps(buffer.snapshot())))

    assert restored.stats() == buffer.stats()
    assert restored.total_priority == buffer.total_priority
    left, right = buffer.snapshot(), restored.snapshot()
    assert left.keys() == right.keys()
    for key, value in left.items():
        if isinstance(value, np.ndarray):
            assert value.dtype == right[key].dtype, key
            np.testing.assert_array_equal(value, right[key], err_msg=key)
        else:
            assert value == right[key], key
    first = buffer.sample(300, np.random.default_rng(99))
    second = restored.sample(300, np.random.default_rng(99))
    assert first.records == second.records
    np.testing.assert_array_equal(first.advantages, second.advantages)
    more, more_advantages = group("later", 30, version=4), rng.normal(size=30)
    buffer.add(more, more_advantages)
    restored.add(more, more_advantages)
    assert buffer.snapshot()["records"] == restored.snapshot()["records"]
    np.testing.assert_array_equal(buffer.snapshot()["slots"], restored.snapshot()["slots"])


def test_restore_rejects_inconsistent_snapshots() -> None:
    buffer = buffer_of(capacity=4)
    buffer.add([response("a"), response("b")], [1.0, 2.0])
    snapshot = buffer.snapshot()
    with pytest.raises(ValueError, match="format"):
        SelectiveSampleBuffer.restore({**snapshot, "format": "other/9"})
    with pytest.raises(ValueError, match="partition"):
        SelectiveSampleBuffer.restore({**snapshot, "free_slots": np.array([0, 1], np.int64)})
    with pytest.raises(ValueError, match="differ in length"):
        SelectiveSampleBuffer.restore({**snapshot, "records": snapshot["records"][:1]})
    with pytest.raises(ValueError, match="tolerance"):
        SelectiveSampleBuffer.restore({**snapshot, "advantages": np.array([0.0, 2.0])})


@pytest.mark.parametrize(
    ("advantages", "message"),
    [
        ([np.nan, 1.0], "finite"),
        ([np.inf, 1.0], "finite"),
        ([1.0], "expected 2"),
        ([[1.0, 2.0]], "expected 2"),
    ],
)
def test_add_rejects_invalid_advantages(advantages: list[Any], message: str) -> None:
    buffer = buffer_of()
    with pytest.raises(ValueError, match=message):
        buffer.add(group("v", 2), advantages)
    assert len(buffer) == 0


def test_sample_rejects_non_positive_k_and_an_empty_buffer() -> None:
    buffer = buffer_of()
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="empty"):
        buffer.sample(4, rng)
    buffer.add([response("a")], [1.0])
    for k in (0, -1):
        with pytest.raises(ValueError, match="k must be > 0"):
            buffer.sample(k, rng)


def test_other_operations_reject_invalid_arguments() -> None:
    buffer = buffer_of()
    buffer.add([response("a")], [1.0])
    with pytest.raises(ValueError, match="distinct"):
        buffer.update_advantages(["a/v0/0", "a/v0/0"], [1.0, 2.0])
    with pytest.raises(ValueError, match="finite"):
        buffer.update_advantages(["a/v0/0"], [np.nan])
    with pytest.raises(ValueError, match=">= 0"):
        buffer.evict_stale(current_policy_version=-1)
    with pytest.raises(ValueError, match=">= 0"):
        buffer.evict_stale(current_policy_version=3, max_staleness=-1)


@pytest.mark.parametrize(("field", "value"), [("alpha", -0.5), ("capacity", 0), ("capacity", -2)])
def test_bad_buffer_settings_raise_value_error(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        buffer_of(**{field: value})


def test_priority_underflow_is_reported() -> None:
    buffer = buffer_of(alpha=1000.0, priority_epsilon=0.0, advantage_tolerance=0.0)
    with pytest.raises(ValueError, match="under- or overflowed"):
        buffer.add([response("a")], [1e-5])
