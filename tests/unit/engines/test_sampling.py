"""Next-token sampling: nucleus filter, greedy rows, temperature, and the log-prob convention."""

import math

import pytest
import torch

from hybridrl.engines.sampling import nucleus_filter, response_seeds, sample_next_tokens


def generators(count: int, first_seed: int = 0) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(first_seed + row) for row in range(count)]


@pytest.mark.parametrize(
    ("top_p", "kept"),
    [
        # Sorted: 0.5 (index 2), 0.3 (index 0), 0.2 (index 1); mass before each: 0, 0.5, 0.8.
        (0.4, [0.0, 0.0, 0.5]),
        (0.5, [0.0, 0.0, 0.5]),
        (0.6, [0.3, 0.0, 0.5]),
        (0.8, [0.3, 0.0, 0.5]),
        (0.9, [0.3, 0.2, 0.5]),
        (1.0, [0.3, 0.2, 0.5]),
    ],
)
def test_nucleus_keeps_the_smallest_top_set_reaching_top_p(top_p: float, kept: list[float]) -> None:
    probs = torch.tensor([[0.3, 0.2, 0.5]])
    torch.testing.assert_close(nucleus_filter(probs, torch.tensor([top_p])), torch.tensor([kept]))


def test_nucleus_at_one_keeps_a_tail_that_rounding_would_drop() -> None:
    # float32 cumulative sums of many small probabilities overshoot 1 before the last token.
    probs = torch.full((1, 1000), 1e-3)
    assert bool((nucleus_filter(probs, torch.tensor([1.0])) > 0).all())


def test_greedy_rows_take_the_argmax_with_temperature_one_log_prob() -> None:
    logits = torch.tensor([[0.0, math.log(3.0)], [math.log(4.0), 0.0]])
    tokens, logprobs = sample_next_tokens(
        logits, torch.tensor([0.0, 0.0]), torch.tensor([1.0, 1.0]), generators(2)
    )
    assert tokens.tolist() == [1, 0]
    torch.testing.assert_close(logprobs, torch.tensor([math.log(0.75), math.log(0.8)]))


def test_sampled_frequencies_follow_the_tempered_distribution() -> None:
    # logits [0, ln 3] at T = 0.5 become [0, 2 ln 3]: probabilities 0.1 and 0.9.
    rows = 4000
    logits = torch.tensor([[0.0, math.log(3.0)]]).expand(rows, 2)
    tokens, logprobs = sample_next_tokens(
        logits, torch.full((rows,), 0.5), torch.ones(rows), generators(rows)
    )
    # Binomial standard deviation: sqrt(0.1 * 0.9 / 4000) = 0.0047; allow 4 of them.
    assert abs(tokens.float().mean().item() - 0.9) < 0.019
    expected = torch.where(tokens == 1, math.log(0.9), math.log(0.1))
    torch.testing.assert_close(logprobs, expected)


def test_top_p_truncates_sampling_but_not_the_reported_log_prob() -> None:
    # probabilities [0.25, 0.75]: top_p = 0.5 keeps token 1 only; its log-prob stays log 0.75.
    rows = 200
    logits = torch.tensor([[0.0, math.log(3.0)]]).expand(rows, 2)
    tokens, logprobs = sample_next_tokens(
        logits, torch.ones(rows), torch.full((rows,), 0.5), generators(rows)
    )
    assert tokens.tolist() == [1] * rows
    torch.testing.assert_close(logprobs, torch.full((rows,), math.log(0.75)))


def test_a_row_generator_fixes_its_sample_whatever_the_other_rows() -> None:
    logits = torch.randn(3, 50, generator=torch.Generator().manual_seed(0))
    alone, _ = sample_next_tokens(logits[1:2], torch.ones(1), torch.ones(1), generators(1, 11))
    together, _ = sample_next_tokens(
        logits,
        torch.ones(3),
        torch.ones(3),
        [*generators(1, 99), *generators(1, 11), *generators(1, 5)],
    )
    assert together[1].item() == alone[0].item()


def test_response_seeds_are_deterministic_and_distinct() -> None:
    assert response_seeds(7, 4) == response_seeds(7, 4)
    assert response_seeds(7, 4)[:2] == response_seeds(7, 2)
    assert len(set(response_seeds(7, 64))) == 64
    assert response_seeds(7, 4) != response_seeds(8, 4)
    with pytest.raises(ValueError, match="seed"):
        response_seeds(-1, 4)
