"""What a GRPO batch reports about the fresh samples it consumed: counts, mean reward parts
(eq. 7) and mean response length, the zero-advantage samples it dropped included."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest

from hybridrl.algo.samples import ScoredResponse
from hybridrl.config.buffer import SSBConfig
from hybridrl.replay.records import GrpoBatch, RewardBreakdown, SamplePayload, ScoredSample
from hybridrl.replay.sample_store import SampleStore

GroupFactory = Callable[[str, int, list[float]], list[ScoredSample]]
Response = ScoredResponse[SamplePayload]
CLAIM_URI = "s3://claims/ab/" + "ab" * 32


def responses(samples: list[ScoredSample]) -> list[Response]:
    return [sample.response for sample in samples]


def reshaped(
    response: Response, parts: RewardBreakdown, tokens: int | None, claim_check: bool = False
) -> Response:
    """``response`` with other reward parts and ``tokens`` response tokens (or a claim check)."""
    payload = replace(
        response.payload,
        response_token_ids=np.arange(tokens or 0, dtype=np.uint32),
        behaviour_logprobs=np.zeros(tokens or 0, dtype=np.float32),
        reward_parts=parts,
        payload_uri=CLAIM_URI if claim_check else "",
        payload_sha256="ab" * 32 if claim_check else "",
    )
    return replace(response, reward=parts.total, payload=payload)


def grpo(store: SampleStore, batch_size: int, step: int) -> GrpoBatch:
    return store.next_grpo_batch(batch_size, 0, 4, 0, 1, step=step)


def test_batch_means_cover_served_and_zero_advantage_fresh_samples(
    make_group: GroupFactory,
) -> None:
    store = SampleStore(buffer_config=SSBConfig(enabled=False))
    # Zero variance: two responses of 2 tokens, parts (total 1, rule 1, model 0, format 0).
    store.add_group(responses(make_group("z", 0, [1.0, 1.0])))
    a0, a1 = responses(make_group("a", 0, [0.5, 2.5]))
    store.add_group(
        [
            reshaped(a0, RewardBreakdown(total=0.5, rule=0.0, model=0.25, format=0.25), 3),
            reshaped(a1, RewardBreakdown(total=2.5, rule=2.0, model=0.25, format=0.25), None, True),
        ]
    )
    batch = grpo(store, 4, step=0)
    assert [served.response.sample_id for served in batch.samples] == ["a/v0/0", "a/v0/1"]
    assert (batch.fresh_offered, batch.fresh_zero_advantage) == (4, 2)
    # total (1 + 1 + 0.5 + 2.5) / 4, rule (1 + 1 + 0 + 2) / 4, model and format 0.5 / 4.
    assert batch.fresh_reward_mean == RewardBreakdown(
        total=1.25, rule=1.0, model=0.125, format=0.125
    )
    # 2 + 2 + 3 tokens over three samples; a/v0/1's tokens are behind a claim check.
    assert batch.fresh_response_length_mean == pytest.approx(7 / 3, abs=1e-12)
    assert grpo(store, 4, step=0) == batch


def test_a_batch_without_signal_still_reports_the_rollouts_it_dropped(
    make_group: GroupFactory,
) -> None:
    store = SampleStore(buffer_config=SSBConfig(enabled=False))
    store.add_group(responses(make_group("z", 0, [3.0, 3.0, 3.0])))
    batch = grpo(store, 4, step=0)
    assert batch.samples == ()
    assert (batch.fresh_offered, batch.fresh_zero_advantage) == (3, 3)
    assert batch.fresh_reward_mean == RewardBreakdown(total=3.0, rule=3.0)
    assert batch.fresh_response_length_mean == 2.0


def test_a_batch_without_fresh_samples_reports_zeros() -> None:
    batch = grpo(SampleStore(), 2, step=0)
    assert (batch.fresh_offered, batch.fresh_zero_advantage) == (0, 0)
    assert batch.fresh_reward_mean == RewardBreakdown(total=0.0, rule=0.0, model=0.0, format=0.0)
    assert batch.fresh_response_length_mean == 0.0


def test_only_claim_checked_samples_give_length_zero(make_group: GroupFactory) -> None:
    store = SampleStore(buffer_config=SSBConfig(enabled=False))
    group = responses(make_group("long", 0, [0.0, 1.0]))
    store.add_group([reshaped(r, RewardBreakdown(total=r.reward), None, True) for r in group])
    batch = grpo(store, 2, step=0)
    assert batch.fresh_offered == 2
    assert batch.fresh_reward_mean.total == 0.5
    assert batch.fresh_response_length_mean == 0.0


def test_fresh_samples_put_back_for_the_buffer_share_are_not_counted(
    make_group: GroupFactory,
) -> None:
    store = SampleStore(buffer_config=SSBConfig(buffered_fraction=0.5))
    store.add_group(responses(make_group("a", 0, [0.0, 1.0])))
    grpo(store, 2, step=0)  # an empty buffer leaves both places to a's samples
    store.add_group(responses(make_group("b", 0, [3.0, 1.0])))
    # Step 1 reserves one of two places for the buffer (now holding a's samples): b/v0/0 is
    # served, b/v0/1 goes back to the queue and is the next batch's.
    second = grpo(store, 2, step=1)
    assert [s.from_buffer for s in second.samples] == [False, True]
    assert second.samples[0].response.sample_id == "b/v0/0"
    assert (second.fresh_offered, second.fresh_zero_advantage) == (1, 0)
    assert second.fresh_reward_mean == RewardBreakdown(total=3.0, rule=3.0)
    third = grpo(store, 2, step=2)
    assert third.samples[0].response.sample_id == "b/v0/1"
    assert third.fresh_offered == 1
    assert third.fresh_reward_mean == RewardBreakdown(total=1.0, rule=1.0)


def test_a_snapshot_from_before_the_means_restores_them_as_zeros(
    make_group: GroupFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SampleStore()
    store.add_group(responses(make_group("a", 0, [0.0, 1.0])))
    served = grpo(store, 2, step=0)
    # A batch as the code before fields 7 and 8 pickled it: its first six field values.
    monkeypatch.setattr(
        GrpoBatch,
        "__getstate__",
        lambda batch: [
            batch.step,
            batch.rank,
            batch.batch_size,
            batch.samples,
            batch.fresh_offered,
            batch.fresh_zero_advantage,
        ],
    )
    old_snapshot = pickle.dumps(store.snapshot(), protocol=5)
    monkeypatch.undo()
    restored = SampleStore.restore(pickle.loads(old_snapshot))
    again = grpo(restored, 2, step=0)
    assert again.samples == served.samples
    assert (again.fresh_offered, again.fresh_zero_advantage) == (2, 0)
    assert again.fresh_reward_mean == RewardBreakdown(total=0.0)
    assert again.fresh_response_length_mean == 0.0


def test_a_snapshot_round_trip_keeps_the_means(make_group: GroupFactory) -> None:
    store = SampleStore()
    store.add_group(responses(make_group("a", 0, [0.0, 1.0])))
    served = grpo(store, 2, step=0)
    restored = SampleStore.restore(pickle.loads(pickle.dumps(store.snapshot(), protocol=5)))
    again = grpo(restored, 2, step=0)
    assert again == served
    assert again.fresh_reward_mean == RewardBreakdown(total=0.5, rule=0.5)
    assert again.fresh_response_length_mean == 2.0


def test_a_batch_state_with_too_few_values_is_refused() -> None:
    batch = GrpoBatch.__new__(GrpoBatch)
    with pytest.raises(ValueError, match="3 values"):
        batch.__setstate__([0, 0, 1])
