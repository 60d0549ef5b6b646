"""Chosen/rejected pairs for Mixed Preference Optimization (MPO, eqs. 2-5).

Where it sits: after a group of N responses to one prompt has been scored (eq. 7), the ssb
service turns the group into preference pairs (y_c, y_r) for the MPO loss. The paper's "MPO
Threshold Analysis" shows that only pairs whose reward margin reaches a threshold should be used:
a threshold of 15 trained more stably than 7 or 10, with which scores peaked and then fell as
the policy over-fitted the reward model.

Which pairs: responses are ranked by reward (highest first, ties by ascending sample id) and
paired from the outside in: best with worst, second best with second worst, and so on, while the
margin chosen.reward - rejected.reward >= threshold. This is the greedy maximum-margin matching in
which each response appears in at most one pair; it prefers large margins to many pairs (rewards
0, 1, 10, 11 at threshold 10 give the single pair 11/0, not 10/0 and 11/1). One pair
(``max_pairs=1``) is the best-vs-worst pair that InternVL MPO and R1V2 use. Using each response
at most once keeps pairs independent: taking all O(N^2) qualifying pairs would let the single
best response appear in up to N - 1 pairs and dominate the preference and generation terms
(eqs. 3 and 5).

Pairs come out in that order, so their margins never increase.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic

from hybridrl.algo.samples import PayloadT, ScoredResponse


@dataclass(frozen=True, slots=True)
class PreferencePair(Generic[PayloadT]):
    """One MPO pair from a single group: y_c (``chosen``) and y_r (``rejected``) of eq. (3)."""

    chosen: ScoredResponse[PayloadT]
    rejected: ScoredResponse[PayloadT]

    @property
    def margin(self) -> float:
        """chosen.reward - rejected.reward; >= the threshold it was built with."""
        return self.chosen.reward - self.rejected.reward


def build_mpo_pairs(
    group: Sequence[ScoredResponse[PayloadT]], threshold: float, max_pairs: int | None = None
) -> list[PreferencePair[PayloadT]]:
    """Pair the responses of one scored group whose reward margin is >= ``threshold``.

    Args:
        group: The scored responses to one prompt from one policy version (one group id),
            with distinct sample ids.
        threshold: Minimum reward margin, > 0 (a zero margin expresses no preference).
        max_pairs: At most this many pairs (>= 1); None for every qualifying disjoint pair.

    Returns:
        Pairs in decreasing order of margin; empty when no pair reaches the threshold or the
        group has fewer than two responses.

    Raises:
        ValueError: empty group, responses from different groups, repeated sample ids, or a
            threshold or max_pairs out of range.
    """
    if not threshold > 0.0:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    if max_pairs is not None and max_pairs < 1:
        raise ValueError(f"max_pairs must be >= 1 or None, got {max_pairs}")
    if len(group) == 0:
        raise ValueError("group must not be empty")
    group_ids = {response.group_id for response in group}
    if len(group_ids) != 1:
        raise ValueError(f"responses must belong to one group, got {sorted(group_ids)}")
    if len({response.sample_id for response in group}) != len(group):
        raise ValueError("sample ids within a group must be distinct")

    ranked = sorted(group, key=lambda response: (-response.reward, response.sample_id))
    limit = len(ranked) // 2 if max_pairs is None else min(max_pairs, len(ranked) // 2)
    pairs: list[PreferencePair[PayloadT]] = []
    for rank in range(limit):
        pair = PreferencePair(chosen=ranked[rank], rejected=ranked[-1 - rank])
        if pair.margin < threshold:
            break  # margins only shrink further in
        pairs.append(pair)
    return pairs
