"""compose_batch: fresh effective samples first, the buffer fills the reserve and any shortfall."""

import numpy as np
import pytest

from hybridrl.algo.batch_composer import compose_batch
from hybridrl.algo.buffer import SelectiveSampleBuffer
from hybridrl.algo.samples import ScoredResponse, group_id_for, sample_id_for
from hybridrl.config.buffer import SSBConfig


def responses(prompt_id: str, count: int, version: int = 0) -> list[ScoredResponse[None]]:
    return [
        ScoredResponse(
            sample_id=sample_id_for(prompt_id, version, index),
            group_id=group_id_for(prompt_id, version),
            prompt_id=prompt_id,
            policy_version=version,
            reward=0.0,
            payload=None,
        )
        for index in range(count)
    ]


def filled_buffer(count: int) -> SelectiveSampleBuffer[None]:
    buffer: SelectiveSampleBuffer[None] = SelectiveSampleBuffer(SSBConfig(capacity=100))
    buffer.add(responses("old", count), np.linspace(0.5, 2.0, count))
    return buffer


def test_without_fresh_effective_samples_the_whole_batch_comes_from_the_buffer() -> None:
    fresh = responses("new", 6, version=1)
    batch = compose_batch(
        fresh,
        [0.0] * 6,
        filled_buffer(10),
        batch_size=8,
        buffered_fraction=0.25,
        rng=np.random.default_rng(0),
    )
    assert len(batch.samples) == 8
    assert batch.from_buffer.tolist() == [True] * 8
    assert all(record.prompt_id == "old" for record in batch.samples)
    assert (batch.fresh_total, batch.fresh_effective, batch.fresh_count) == (6, 0, 0)
    assert batch.buffered_count == 8
    assert batch.effective_ratio == 0.0


def test_with_enough_fresh_samples_the_buffered_share_is_the_configured_fraction() -> None:
    fresh = responses("new", 20, version=1)
    advantages = np.where(np.arange(20) % 2 == 0, 1.0, 0.0)  # even positions are effective
    batch = compose_batch(
        fresh,
        advantages,
        filled_buffer(10),
        batch_size=8,
        buffered_fraction=0.25,
        rng=np.random.default_rng(0),
    )
    assert batch.from_buffer.tolist() == [False] * 6 + [True] * 2
    assert [r.sample_id for r in batch.samples[:6]] == [f"new/v1/{i}" for i in (0, 2, 4, 6, 8, 10)]
    assert (batch.fresh_count, batch.buffered_count) == (6, 2)
    assert (batch.fresh_total, batch.fresh_effective) == (20, 10)
    assert batch.effective_ratio == 0.5


def test_a_shortfall_of_fresh_samples_is_filled_from_the_buffer() -> None:
    fresh = responses("new", 10, version=1)
    advantages = [1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0]
    batch = compose_batch(
        fresh,
        advantages,
        filled_buffer(10),
        batch_size=8,
        buffered_fraction=0.25,
        rng=np.random.default_rng(0),
    )
    assert (batch.fresh_count, batch.buffered_count) == (3, 5)
    assert batch.advantages[:3].tolist() == [1.0, -1.0, 2.0]
    assert batch.effective_ratio == pytest.approx(0.3)


def test_buffered_advantages_are_the_stored_ones() -> None:
    buffer = filled_buffer(4)  # advantages 0.5, 1.0, 1.5, 2.0 for old/v0/0..3
    batch = compose_batch(
        [], [], buffer, batch_size=4, buffered_fraction=0.0, rng=np.random.default_rng(3)
    )
    stored = {f"old/v0/{i}": a for i, a in enumerate([0.5, 1.0, 1.5, 2.0])}
    assert batch.advantages.tolist() == [stored[r.sample_id] for r in batch.samples]
    assert batch.effective_ratio is None


def test_surplus_fresh_samples_take_the_places_the_buffer_cannot_fill() -> None:
    fresh = responses("new", 20, version=1)
    batch = compose_batch(
        fresh,
        [1.0] * 20,
        filled_buffer(1),
        batch_size=8,
        buffered_fraction=0.5,
        rng=np.random.default_rng(0),
    )
    assert (batch.fresh_count, batch.buffered_count) == (7, 1)


def test_draws_never_exceed_the_buffer_size() -> None:
    batch = compose_batch(
        [], [], filled_buffer(3), batch_size=8, buffered_fraction=0.0, rng=np.random.default_rng(0)
    )
    assert (len(batch.samples), batch.buffered_count) == (3, 3)


def test_without_a_buffer_only_fresh_samples_are_used() -> None:
    fresh = responses("new", 5)
    batch = compose_batch(
        fresh,
        [1.0, 0.0, 1.0, 0.0, 1.0],
        None,
        batch_size=4,
        buffered_fraction=0.5,
        rng=np.random.default_rng(0),
    )
    assert [r.sample_id for r in batch.samples] == ["new/v0/0", "new/v0/2", "new/v0/4"]
    assert batch.buffered_count == 0


def test_reserved_places_round_down_without_float_error() -> None:
    fresh = responses("new", 100, version=1)
    batch = compose_batch(
        fresh,
        [1.0] * 100,
        filled_buffer(50),
        batch_size=100,
        buffered_fraction=0.29,
        rng=np.random.default_rng(0),
    )
    assert batch.buffered_count == 29


def test_the_same_rng_seed_gives_the_same_batch_and_the_buffer_is_untouched() -> None:
    buffer = filled_buffer(10)
    before = buffer.snapshot()
    first = compose_batch([], [], buffer, 6, 0.0, np.random.default_rng(42))
    second = compose_batch([], [], buffer, 6, 0.0, np.random.default_rng(42))
    assert first.samples == second.samples
    assert buffer.snapshot()["records"] == before["records"]
    assert buffer.stats().size == 10


@pytest.mark.parametrize(
    ("advantages", "batch_size", "fraction", "message"),
    [
        ([1.0, 1.0], 0, 0.5, "batch_size"),
        ([1.0, 1.0], 4, 1.5, "buffered_fraction"),
        ([1.0, 1.0], 4, -0.1, "buffered_fraction"),
        ([np.nan, 1.0], 4, 0.5, "finite"),
        ([1.0], 4, 0.5, "expected 2"),
    ],
)
def test_invalid_arguments_raise_value_error(
    advantages: list[float], batch_size: int, fraction: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        compose_batch(
            responses("new", 2),
            advantages,
            filled_buffer(2),
            batch_size,
            fraction,
            np.random.default_rng(0),
        )
