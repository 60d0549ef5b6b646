"""Next-token sampling for the CPU engine: temperature, nucleus (top-p), greedy, seeded noise.

Pure functions over ``[rows, vocab]`` logits; ``hybridrl.engines.cpu`` calls them once per
decoding step. Each row (one response) draws its noise from its own ``torch.Generator``, seeded
from the request's seed and the response's index (``response_seeds``), so a seeded response is
the same whichever batch it runs in. The returned log-probs follow the convention of
``hybridrl.engines.base``: log softmax(logits / T) before top-p truncation, float32, T = 1 for
greedy rows.
"""

from collections.abc import Sequence

import torch

from hybridrl.engines.base import MAX_SEED


def response_seeds(seed: int, count: int) -> list[int]:
    """``count`` seeds for the responses of one request, derived from the request's ``seed``."""
    if not 0 <= seed <= MAX_SEED or count < 1:
        raise ValueError(f"need 0 <= seed <= 2**63 - 1 and count >= 1, got {seed}, {count}")
    generator = torch.Generator().manual_seed(seed)
    return [int(value) for value in torch.randint(0, MAX_SEED, (count,), generator=generator)]


def nucleus_filter(probs: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Zero all but the smallest set of most likely tokens whose mass reaches ``top_p``.

    Holtzman et al. (2020), nucleus sampling. The most likely token is always kept; a row with
    ``top_p >= 1`` is returned whole (float rounding in the cumulative sum must not drop its
    tail). Not renormalised: the caller samples in proportion to the kept mass.

    Args:
        probs: ``[rows, vocab]`` probabilities.
        top_p: ``[rows]`` in (0, 1].
    """
    if probs.dim() != 2 or top_p.shape != probs.shape[:1]:
        raise ValueError(f"probs {tuple(probs.shape)} and top_p {tuple(top_p.shape)} mismatch")
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
    keep_sorted = mass_before < top_p.unsqueeze(-1)
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    keep |= (top_p >= 1).unsqueeze(-1)
    return torch.where(keep, probs, torch.zeros_like(probs))


def sample_next_tokens(
    logits: torch.Tensor,
    temperature: torch.Tensor,
    top_p: torch.Tensor,
    generators: Sequence[torch.Generator],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick one token per row and return it with its behaviour log-prob.

    Rows with temperature 0 take the argmax; the others sample from softmax(logits / T)
    restricted to the nucleus, by the exponential race argmax(p / E), E ~ Exp(1) drawn from the
    row's generator (the sampler vLLM uses).

    Args:
        logits: ``[rows, vocab]``, any float dtype (computed in float32).
        temperature: ``[rows]``, >= 0.
        top_p: ``[rows]``, in (0, 1].
        generators: one per row.

    Returns:
        ``tokens`` ``[rows]`` int64 and ``logprobs`` ``[rows]`` float32:
        log softmax(logits / T)[token], T = 1 for greedy rows, before top-p truncation.
    """
    rows, vocab = logits.shape
    if temperature.shape != (rows,) or top_p.shape != (rows,) or len(generators) != rows:
        raise ValueError(f"temperature, top_p and generators must each have {rows} entries")
    logits = logits.float()
    greedy = temperature == 0
    scale = torch.where(greedy, torch.ones_like(temperature), temperature).float()
    logprobs = torch.log_softmax(logits / scale.unsqueeze(-1), dim=-1)
    tokens = logits.argmax(dim=-1)
    sampled_rows = torch.nonzero(~greedy).squeeze(-1)
    if sampled_rows.numel() > 0:
        kept = nucleus_filter(logprobs[sampled_rows].exp(), top_p[sampled_rows])
        noise = torch.stack(
            [
                torch.empty(vocab, device=logits.device).exponential_(generator=generators[row])
                for row in sampled_rows.tolist()
            ]
        )
        tokens[sampled_rows] = (kept / noise).argmax(dim=-1)
    return tokens, logprobs.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
