"""build_mpo_pairs: thresholded, disjoint, best-vs-worst-first preference pairs."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridrl.algo.pairs import PreferencePair, build_mpo_pairs
from hybridrl.algo.samples import ScoredResponse


def scored(rewards: dict[str, float], group_id: str = "q/v0") -> list[ScoredResponse[None]]:
    return [
        ScoredResponse(
            sample_id=name,
            group_id=group_id,
            prompt_id="q",
            policy_version=0,
            reward=reward,
            payload=None,
        )
        for name, reward in rewards.items()
    ]


def names(pairs: list[PreferencePair[None]]) -> list[tuple[str, str]]:
    return [(pair.chosen.sample_id, pair.rejected.sample_id) for pair in pairs]


GROUP = {"a": 20.0, "b": 3.0, "c": 10.0, "d": 0.0, "e": 18.0}


def test_pairs_go_best_with_worst_then_inwards_while_the_margin_reaches_the_threshold() -> None:
    pairs = build_mpo_pairs(scored(GROUP), threshold=15.0)
    assert names(pairs) == [("a", "d"), ("e", "b")]  # margins 20 and exactly 15
    assert [pair.margin for pair in pairs] == [20.0, 15.0]


def test_a_higher_threshold_keeps_fewer_pairs() -> None:
    assert names(build_mpo_pairs(scored(GROUP), threshold=16.0)) == [("a", "d")]
    assert build_mpo_pairs(scored(GROUP), threshold=20.5) == []


def test_max_pairs_keeps_the_largest_margins() -> None:
    assert names(build_mpo_pairs(scored(GROUP), threshold=1.0, max_pairs=1)) == [("a", "d")]


def test_input_order_does_not_matter_and_ties_go_by_sample_id() -> None:
    rewards = {"d": 0.0, "b": 5.0, "c": 0.0, "a": 5.0}
    # Ranked a, b (reward 5), c, d (reward 0): pairs (a, d) then (b, c).
    assert names(build_mpo_pairs(scored(rewards), threshold=1.0)) == [("a", "d"), ("b", "c")]


def test_greedy_margin_is_preferred_over_more_pairs() -> None:
    rewards = {"w": 0.0, "x": 1.0, "y": 10.0, "z": 11.0}
    assert names(build_mpo_pairs(scored(rewards), threshold=10.0)) == [("z", "w")]


def test_a_single_response_gives_no_pair() -> None:
    assert build_mpo_pairs(scored({"only": 3.0}), threshold=1.0) == []


@settings(max_examples=200, deadline=None)
@given(
    rewards=st.lists(st.integers(-20, 20), min_size=1, max_size=12),
    threshold=st.sampled_from([0.5, 1.0, 7.0, 15.0]),
    max_pairs=st.one_of(st.none(), st.integers(1, 4)),
)
def test_pairs_are_disjoint_thresholded_and_ordered(
    rewards: list[int], threshold: float, max_pairs: int | None
) -> None:
    group = scored({f"s{i:02d}": float(r) for i, r in enumerate(rewards)})
    pairs = build_mpo_pairs(group, threshold, max_pairs)
    used = [pair.chosen.sample_id for pair in pairs] + [pair.rejected.sample_id for pair in pairs]
    assert len(used) == len(set(used))  # nobody paired twice, nor with itself
    assert all(pair.margin >= threshold for pair in pairs)
    assert [p.margin for p in pairs] == sorted((p.margin for p in pairs), reverse=True)
    assert len(pairs) <= (len(group) // 2 if max_pairs is None else max_pairs)
    if pairs:
        assert pairs[0].margin == max(rewards) - min(rewards)
    else:
        assert max(rewards) - min(rewards) < threshold


@pytest.mark.parametrize(
    ("group", "threshold", "max_pairs", "message"),
    [
        (scored(GROUP), 0.0, None, "threshold"),
        (scored(GROUP), -1.0, None, "threshold"),
        (scored(GROUP), 1.0, 0, "max_pairs"),
        ([], 1.0, None, "empty"),
        (scored({"a": 1.0}) + scored({"b": 0.0}, group_id="other/v0"), 0.5, None, "one group"),
        (scored({"a": 1.0}) + scored({"a": 0.0}), 0.5, None, "distinct"),
    ],
)
def test_invalid_input_raises_value_error(
    group: list[ScoredResponse[None]], threshold: float, max_pairs: int | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build_mpo_pairs(group, threshold, max_pairs)
