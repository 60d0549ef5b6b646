"""SelectiveSampleBuffer invariants under arbitrary operation sequences, against a plain model.

The model keeps a dict of stored samples and applies the documented rules one sample at a time:
drop |A| <= tolerance, ignore stored ids, evict the oldest (or the lowest (priority, age), refusing
a newcomer below it) when full, evict versions below current - max_staleness.
"""

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridrl.algo.buffer import SelectiveSampleBuffer
from hybridrl.algo.samples import ScoredResponse, group_id_for, sample_id_for
from hybridrl.config.buffer import EvictionPolicy, SSBConfig

TOLERANCE = 1e-6
ADVANTAGES = [0.0, 5e-7, -0.25, 0.5, -1.0, 1.5, 2.0]


def response(prompt: int, index: int, version: int) -> ScoredResponse[None]:
    prompt_id = f"p{prompt}"
    return ScoredResponse(
        sample_id=sample_id_for(prompt_id, version, index),
        group_id=group_id_for(prompt_id, version),
        prompt_id=prompt_id,
        policy_version=version,
        reward=0.0,
        payload=None,
    )


@dataclass
class ModelBuffer:
    """Reference behaviour: sample id -> (advantage, version, insertion order)."""

    capacity: int
    eviction: EvictionPolicy
    stored: dict[str, tuple[float, int, int]] = field(default_factory=dict)
    order: int = 0

    def add(self, records: list[ScoredResponse[None]], advantages: list[float]) -> None:
        for record, advantage in zip(records, advantages, strict=True):
            if abs(advantage) <= TOLERANCE or record.sample_id in self.stored:
                continue
            if len(self.stored) == self.capacity:
                if self.eviction is EvictionPolicy.OLDEST:
                    victim = min(self.stored, key=lambda sid: self.stored[sid][2])
                else:
                    victim = min(
                        self.stored, key=lambda sid: (abs(self.stored[sid][0]), self.stored[sid][2])
                    )
                    if abs(advantage) < abs(self.stored[victim][0]):
                        continue
                del self.stored[victim]
            self.stored[record.sample_id] = (advantage, record.policy_version, self.order)
            self.order += 1

    def evict_stale(self, bound: int) -> None:
        self.stored = {sid: value for sid, value in self.stored.items() if value[1] >= bound}

    def update(self, sample_ids: list[str], advantages: list[float]) -> None:
        for sample_id, advantage in zip(sample_ids, advantages, strict=True):
            if sample_id not in self.stored:
                continue
            if abs(advantage) <= TOLERANCE:
                del self.stored[sample_id]
            else:
                _, version, order = self.stored[sample_id]
                self.stored[sample_id] = (advantage, version, order)


keys = st.tuples(st.integers(0, 5), st.integers(0, 3), st.integers(0, 4))
operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("add"), st.lists(st.tuples(keys, st.sampled_from(ADVANTAGES)), max_size=12)
        ),
        st.tuples(st.just("evict"), st.tuples(st.integers(0, 6), st.integers(0, 2))),
        st.tuples(
            st.just("update"),
            st.lists(
                st.tuples(keys, st.sampled_from(ADVANTAGES)), max_size=5, unique_by=lambda x: x[0]
            ),
        ),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(
    capacity=st.integers(1, 10),
    eviction=st.sampled_from(list(EvictionPolicy)),
    alpha=st.sampled_from([0.0, 0.5, 1.0, 2.0]),
    operations=operations,
)
def test_buffer_matches_model_and_keeps_its_invariants(
    capacity: int, eviction: EvictionPolicy, alpha: float, operations: list[tuple[str, Any]]
) -> None:
    config = SSBConfig(
        capacity=capacity,
        eviction=eviction,
        alpha=alpha,
        priority_epsilon=0.0,
        advantage_tolerance=TOLERANCE,
    )
    buffer: SelectiveSampleBuffer[None] = SelectiveSampleBuffer(config)
    # With alpha = 0 every priority is 1 and lowest-priority eviction degenerates to oldest.
    model = ModelBuffer(capacity, EvictionPolicy.OLDEST if alpha == 0.0 else eviction)
    for kind, argument in operations:
        bound = None
        if kind == "add":
            records = [response(*key) for key, _ in argument]
            advantages = [advantage for _, advantage in argument]
            buffer.add(records, advantages)
            model.add(records, advantages)
        elif kind == "evict":
            current, staleness = argument
            buffer.evict_stale(current, staleness)
            bound = current - staleness
            model.evict_stale(bound)
        else:
            sample_ids = [response(*key).sample_id for key, _ in argument]
            advantages = [advantage for _, advantage in argument]
            buffer.update_advantages(sample_ids, advantages)
            model.update(sample_ids, advantages)

        snapshot = buffer.snapshot()
        stored_ids = [record.sample_id for record in snapshot["records"]]
        assert len(buffer) == len(stored_ids) <= capacity
        assert len(set(stored_ids)) == len(stored_ids)
        assert np.all(np.abs(snapshot["advantages"]) > TOLERANCE)
        np.testing.assert_allclose(
            snapshot["priorities"], np.abs(snapshot["advantages"]) ** alpha, rtol=1e-12
        )
        assert np.isclose(buffer.total_priority, snapshot["priorities"].sum(), rtol=1e-12)
        if bound is not None and len(buffer):
            assert buffer.stats().min_policy_version >= bound
        assert {sid: value[0] for sid, value in model.stored.items()} == dict(
            zip(stored_ids, snapshot["advantages"].tolist(), strict=True)
        )

    restored = SelectiveSampleBuffer.restore(buffer.snapshot())
    assert restored.stats() == buffer.stats()
    if len(buffer):
        first = buffer.sample(64, np.random.default_rng(5))
        second = restored.sample(64, np.random.default_rng(5))
        assert first.records == second.records
