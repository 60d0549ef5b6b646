"""SumTree: totals, prefix search against brute force, exactness and validation."""

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridrl.algo.sum_tree import SumTree


def brute_force_prefix(priorities: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """First slot whose inclusive prefix sum exceeds each target."""
    return np.searchsorted(np.cumsum(priorities), targets, side="right")


def test_update_sets_leaves_and_total_hand_computed() -> None:
    tree = SumTree(capacity=5, fanout=2)
    tree.update(np.array([0, 2, 4]), np.array([1.0, 2.0, 3.0]))
    assert tree.priorities().tolist() == [1.0, 0.0, 2.0, 0.0, 3.0]
    assert tree.total == 6.0
    tree.update(np.array([2]), np.array([0.5]))
    assert tree.total == 4.5
    assert tree.get(np.array([2, 4])).tolist() == [0.5, 3.0]


def test_find_prefix_hand_computed() -> None:
    # Inclusive prefix sums of [1, 0, 2, 0, 3] are [1, 1, 3, 3, 6].
    tree = SumTree.from_priorities([1.0, 0.0, 2.0, 0.0, 3.0], fanout=2)
    targets = np.array([0.0, 0.999, 1.0, 2.5, 3.0, 5.99])
    assert tree.find_prefix(targets).tolist() == [0, 0, 2, 2, 4, 4]


def test_target_at_or_above_total_returns_last_non_empty_slot() -> None:
    tree = SumTree.from_priorities([0.0, 2.0, 1.0, 0.0, 0.0], fanout=2)
    assert tree.find_prefix([3.0, 3.5]).tolist() == [2, 2]


@pytest.mark.parametrize("fanout", [2, 3, 16])
@pytest.mark.parametrize("capacity", [1, 17, 1000, 5000])
def test_find_prefix_matches_searchsorted_on_random_float_data(fanout: int, capacity: int) -> None:
    rng = np.random.default_rng(capacity * 31 + fanout)
    priorities = rng.exponential(size=capacity) * (rng.random(capacity) > 0.3)
    priorities[0] = max(priorities[0], 0.5)  # at least one non-empty slot
    tree = SumTree.from_priorities(priorities, fanout=fanout)
    targets = rng.random(4000) * priorities.sum()
    np.testing.assert_array_equal(
        tree.find_prefix(targets), brute_force_prefix(priorities, targets)
    )
    assert tree.total == pytest.approx(priorities.sum(), rel=1e-12)


@pytest.mark.parametrize("fanout", [2, 4, 16])
def test_find_prefix_is_exact_at_every_boundary_with_integer_priorities(fanout: int) -> None:
    # Integer priorities sum exactly in float64, so even targets on a boundary must agree.
    rng = np.random.default_rng(7)
    priorities = rng.integers(0, 4, size=300).astype(np.float64)
    tree = SumTree.from_priorities(priorities, fanout=fanout)
    boundaries = np.unique(np.concatenate([[0.0], np.cumsum(priorities)[:-1]]))
    targets = np.concatenate([boundaries, boundaries + 0.5])
    targets = targets[targets < priorities.sum()]
    np.testing.assert_array_equal(
        tree.find_prefix(targets), brute_force_prefix(priorities, targets)
    )
    assert not np.any(priorities[tree.find_prefix(targets)] == 0.0)


def test_incremental_updates_equal_a_rebuild_bit_for_bit() -> None:
    rng = np.random.default_rng(3)
    tree = SumTree(capacity=3000, fanout=16)
    for _ in range(500):
        slots = rng.choice(3000, size=8, replace=False)
        tree.update(slots, rng.exponential(size=8) * rng.choice([1e-3, 1.0, 1e3]))
    rebuilt = SumTree.from_priorities(tree.priorities(), fanout=16)
    assert rebuilt.total == tree.total
    targets = rng.random(10_000) * tree.total
    np.testing.assert_array_equal(rebuilt.find_prefix(targets), tree.find_prefix(targets))


def test_emptied_tree_sums_to_exactly_zero_and_cannot_be_searched() -> None:
    rng = np.random.default_rng(5)
    tree = SumTree(capacity=100, fanout=4)
    tree.update(np.arange(100), rng.random(100) * 1e-3 + np.pi)
    tree.update(np.arange(100), np.zeros(100))
    assert tree.total == 0.0
    with pytest.raises(ValueError, match="all zero"):
        tree.find_prefix([0.0])


@settings(max_examples=60, deadline=None)
@given(
    fanout=st.integers(min_value=2, max_value=9),
    updates=st.lists(
        st.lists(st.tuples(st.integers(0, 63), st.integers(0, 5)), min_size=1, max_size=10),
        min_size=1,
        max_size=20,
    ),
)
def test_total_and_prefix_search_track_every_sequence_of_updates(
    fanout: int, updates: list[list[tuple[int, int]]]
) -> None:
    tree = SumTree(capacity=64, fanout=fanout)
    expected = np.zeros(64)
    for batch in updates:
        last = dict(batch)  # one value per slot within an update
        slots = np.array(list(last.keys()))
        values = np.array(list(last.values()), dtype=np.float64)
        tree.update(slots, values)
        expected[slots] = values
        assert tree.total == expected.sum()
    np.testing.assert_array_equal(tree.priorities(), expected)
    if expected.sum() > 0:
        targets = np.arange(0.0, expected.sum(), 0.5)
        np.testing.assert_array_equal(
            tree.find_prefix(targets), brute_force_prefix(expected, targets)
        )


@pytest.mark.parametrize(
    ("slots", "priorities", "message"),
    [
        ([5], [1.0], "slots must lie in"),
        ([-1], [1.0], "slots must lie in"),
        ([1, 1], [1.0, 2.0], "distinct"),
        ([1], [-1.0], ">= 0"),
        ([1], [np.nan], "finite"),
        ([1], [np.inf], "finite"),
        ([1, 2], [1.0], "same shape"),
        ([[1]], [[1.0]], "1-D"),
        ([1.0], [1.0], "integers"),
    ],
)
def test_update_rejects_invalid_input(
    slots: list[Any], priorities: list[Any], message: str
) -> None:
    tree = SumTree(capacity=5)
    with pytest.raises(ValueError, match=message):
        tree.update(np.array(slots), np.array(priorities))


@pytest.mark.parametrize(
    ("targets", "message"),
    [([], "non-empty"), ([-0.1], ">= 0"), ([np.nan], "finite"), ([[0.0]], "1-D")],
)
def test_find_prefix_rejects_invalid_targets(targets: list[Any], message: str) -> None:
    tree = SumTree.from_priorities([1.0, 2.0])
    with pytest.raises(ValueError, match=message):
        tree.find_prefix(np.array(targets))


@pytest.mark.parametrize(("capacity", "fanout"), [(0, 16), (-3, 16), (4, 1)])
def test_constructor_rejects_bad_sizes(capacity: int, fanout: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        SumTree(capacity, fanout)


def test_from_priorities_rejects_negative_values() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        SumTree.from_priorities([1.0, -2.0])
