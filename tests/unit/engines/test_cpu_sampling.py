"""The CPU engine's sampling: n responses per prompt, seeds, greedy, top-p, eos, log-probs.

The log-prob tests are the ones that matter most: the engine's behaviour log-probs are pi_old
in the ratio of eq. (8), and the learner recomputes pi_theta with
``VisionLanguageModel.sequence_logprobs``; any gap between the two biases every GRPO update.
"""

from collections.abc import Callable, Sequence

import pytest
import torch
from transformers import PreTrainedTokenizerFast

from hybridrl.engines.base import GenerationEngine, GenerationRequest, SamplingOptions
from hybridrl.engines.cpu import TransformersEngine
from hybridrl.models.vlm import VisionLanguageModel, token_logprobs_from_logits

TaskRequests = Callable[..., list[GenerationRequest]]
EOS, IMAGE = 2, 4


def engine_for(
    model: VisionLanguageModel, tokenizer: PreTrainedTokenizerFast, max_batch_size: int = 64
) -> TransformersEngine:
    return TransformersEngine(model, tokenizer, max_batch_size=max_batch_size)


def tokens_of(engine: TransformersEngine, requests: Sequence[GenerationRequest]) -> list[list[int]]:
    return [c.token_ids for result in engine.generate(requests) for c in result.completions]


def learner_logprobs(
    model: VisionLanguageModel, request: GenerationRequest, response: list[int], temperature: float
) -> torch.Tensor:
    """What the learner computes for one unpadded row: ``sequence_logprobs`` on the response."""
    prompt = list(request.prompt_token_ids)
    input_ids = torch.tensor([prompt + response])
    response_mask = torch.zeros_like(input_ids)
    response_mask[0, len(prompt) :] = 1
    pixels = None if request.pixel_values is None else request.pixel_values.unsqueeze(0)
    with torch.no_grad():
        logprobs = model.sequence_logprobs(
            input_ids, torch.ones_like(input_ids), pixels, response_mask, temperature
        )
    return logprobs[0, len(prompt) :]


def test_engine_implements_the_interface(
    model: VisionLanguageModel, tokenizer: PreTrainedTokenizerFast
) -> None:
    assert isinstance(engine_for(model, tokenizer), GenerationEngine)


def test_each_request_gets_n_completions_in_request_order(
    model: VisionLanguageModel, tokenizer: PreTrainedTokenizerFast, task_requests: TaskRequests
) -> None:
    requests = task_requests(tokenizer, SamplingOptions(n=3, max_new_tokens=5, seed=1))
    requests[1] = GenerationRequest(
        "text-only", [1, 17, 18], None, SamplingOptions(n=1, max_new_tokens=4, seed=9)
    )
    results = engine_for(model, tokenizer).generate(requests)
    assert [r.request_id for r in results] == [
        requests[0].request_id,
        "text-only",
        requests[2].request_id,
    ]
    assert [len(r.completions) for r in results] == [3, 1, 3]
    assert results[1].prompt_token_ids == [1, 17, 18]
    for result, request in zip(results, requests, strict=True):
        assert result.policy_version == 0
        for completion in result.completions:
            assert 1 <= len(completion.token_ids) <= request.sampling.max_new_tokens
            assert len(completion.logprobs) == len(completion.token_ids)
            assert all(-20.0 < logprob < 0.0 for logprob in completion.logprobs)


def test_same_seed_gives_the_same_completions_and_another_seed_does_not(
    model: VisionLanguageModel, tokenizer: PreTrainedTokenizerFast, task_requests: TaskRequests
) -> None:
    engine = engine_for(model, tokenizer)
    first = engine.generate(
        task_requests(tokenizer, SamplingOptions(n=2, max_new_tokens=8, seed=5))
    )
    again = engine.generate(
        task_requests(tokenizer, SamplingOptions(n=2, max_new_tokens=8, seed=5))
    )
    other = engine.generate(
        task_requests(tokenizer, SamplingOptions(n=2, max_new_tokens=8, seed=6))
    )
    assert [c.token_ids for r in first for c in r.completions] == [
        c.token_ids for r in again for c in r.completions
    ]
    assert [c.logprobs for r in first for c in r.completions] == [
        c.logprobs for r in again for c in r.completions
    ]
    assert [c.token_ids for r in first for c in r.completions] != [
        c.token_ids for r in other for c in r.completions
    ]
    # The two responses of one request differ: each has its own generator.
    assert first[0].completions[0].token_ids != first[0].completions[1].token_ids


def test_seeded_samples_do_not_depend_on_batch_company_or_batch_size(
    model: VisionLanguageModel, tokenizer: PreTrainedTokenizerFast, task_requests: TaskRequests
) -> None:
    requests = task_requests(tokenizer, SamplingOptions(n=3, max_new_tokens=8, seed=21))
    batched = tokens_of(engine_for(model, tokenizer), requests)
    one_row_at_a_time = tokens_of(engine_for(model, tokenizer, max_batch_size=1), requests)
    # The shortest prompt, alone, has no left padding.
    alone = tokens_of(engine_for(model, tokenizer), [requests[0]])
    assert batched == one_row_at_a_time
    assert batched[:3] == alone


def test_greedy_takes_the_argmax_at_every_step(
    model: VisionLanguageModel, tokenizer: PreTrainedTokenizerFast, task_requests: TaskRequests
) -> None:
    requests = task_requests(tokenizer, SamplingOptions(n=2, temperature=0.0, max_new_tokens=10))
    results = engine_for(model, tokenizer).generate(requests)
    for result, request in zip(results, requests, strict=True):
        first, second = result.completions
        assert first.token_ids == second.token_ids
        prompt = list(request.prompt_token_ids)
        input_ids = torch.tensor([prompt + first.token_ids])
        assert request.pixel_values is not None
        with torch.no_grad():
            logits = model(input_ids, torch.ones_like(input_ids), request.pixel_values[None]).logits
        predicted = logits[0, len(prompt) - 1 : -1].argmax(dim=-1)
        assert predicted.tolist() == first.token_ids


def test_tiny_top_p_samples_like_greedy(
    model: VisionLanguageModel, tokenizer: PreTrainedTokenizerFast, task_requests: TaskRequests
) -> None:
    engine = engine_for(model, tokenizer)
    greedy = engine.generate(
        task_requests(tokenizer, SamplingOptions(n=1, temperature=0.0, max_new_tokens=10))
    )
    nucleus = engine.generate(
        task_requests(tokenizer, SamplingOptions(n=3, top_p=1e-6, max_new_tokens=10, seed=3))
    )
    for greedy_result, nucleus_result in zip(greedy, nucleus, strict=True):
        for completion in nucleus_result.completions:
            assert completion.token_ids == greedy_result.completions[0].token_ids
            # At T = 1 both report log softmax(logits), untruncated.
            torch.testing.assert_close(
                torch.tensor(completion.logprobs),
                torch.tensor(greedy_result.completions[0].logprobs),
            )


def test_eos_stops_a_response_and_the_budget_ends_the_others(
    model: VisionLanguageModel, tokenizer: PreTrainedTokenizerFast, task_requests: TaskRequests
) -> None:
    # The untrained model puts ~1/114 on eos at every step: with this seed some of the 24
    # responses stop early, and the batch shrinks under the ones still running.
    requests = task_requests(tokenizer, SamplingOptions(n=8, max_new_tokens=40, seed=12))
    completions = [
        c for r in engine_for(model, tokenizer).generate(requests) for c in r.completions
    ]
    stopped = [c for c in completions if c.finish_reason == "stop"]
    capped = [c for c in completions if c.finish_reason == "length"]
    assert stopped
    assert capped
    for completion in stopped:
        assert completion.token_ids[-1] == EOS
        assert EOS not in completion.token_ids[:-1]
        assert len(completion.token_ids) <= 40
    for completion in capped:
        assert len(completion.token_ids) == 40
        assert EOS not in completion.token_ids


def test_a_certain_eos_gives_an_empty_stopped_response(
    tiny_model: Callable[[int], VisionLanguageModel],
    tokenizer: PreTrainedTokenizerFast,
    task_requests: TaskRequests,
) -> None:
    model = tiny_model(0)
    head = model.language_model.lm_head
    biased = torch.nn.Linear(head.in_features, head.out_features, bias=True)
    with torch.no_grad():
        biased.weight.copy_(head.weight)
        biased.bias.zero_()
        biased.bias[EOS] = 50.0
    model.language_model.lm_head = biased
    requests = task_requests(tokenizer, SamplingOptions(n=2, max_new_tokens=5, seed=0), count=1)
    (completion, _) = engine_for(model, tokenizer).generate(requests)[0].completions
    assert completion.token_ids == [EOS]
    assert completion.finish_reason == "stop"
    assert completion.text == ""
    assert completion.logprobs[0] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
@pytest.mark.parametrize("with_image", [True, False])
def test_engine_logprobs_equal_the_learners_sequence_logprobs(
    model: VisionLanguageModel,
    tokenizer: PreTrainedTokenizerFast,
    task_requests: TaskRequests,
    temperature: float,
    with_image: bool,
) -> None:
    # Three questions of 33, 63 and 38 characters: the batch is left-padded, and the learner
    # sees each row alone, unpadded, without a cache.
    sampling = SamplingOptions(n=3, temperature=temperature, max_new_tokens=10, seed=22)
    requests = task_requests(tokenizer, sampling, with_image=with_image)
    results = engine_for(model, tokenizer).generate(requests)
    for result, request in zip(results, requests, strict=True):
        for completion in result.completions:
            # sequence_logprobs reads every placeholder as an image slot; these seeds sample none.
            assert IMAGE not in completion.token_ids
            expected = learner_logprobs(model, request, completion.token_ids, temperature)
            torch.testing.assert_close(
                torch.tensor(completion.logprobs), expected, atol=1e-5, rtol=0.0
            )


def test_a_sampled_placeholder_token_is_embedded_as_plain_text(
    model: VisionLanguageModel, tokenizer: PreTrainedTokenizerFast, task_requests: TaskRequests
) -> None:
    # With this seed a response samples the <image> token; its log-probs match a forward pass
    # that puts image features at the prompt's placeholders only.
    requests = task_requests(tokenizer, SamplingOptions(n=8, max_new_tokens=10, seed=0), count=1)
    completions = engine_for(model, tokenizer).generate(requests)[0].completions
    with_placeholder = [c for c in completions if IMAGE in c.token_ids]
    assert with_placeholder
    request = requests[0]
    prompt = torch.tensor([request.prompt_token_ids])
    assert request.pixel_values is not None
    for completion in with_placeholder:
        response = torch.tensor([completion.token_ids])
        with torch.no_grad():
            prompt_embeddings = model.embed_inputs(
                prompt, torch.ones_like(prompt), request.pixel_values[None]
            )
            response_embeddings = model.language_model.get_input_embeddings()(response)
            embeddings = torch.cat([prompt_embeddings, response_embeddings], dim=1)
            logits = model.language_model(inputs_embeds=embeddings).logits
        input_ids = torch.cat([prompt, response], dim=1)
        response_mask = torch.zeros_like(input_ids)
        response_mask[0, prompt.shape[1] :] = 1
        expected = token_logprobs_from_logits(logits, input_ids, response_mask)[
            0, prompt.shape[1] :
        ]
        torch.testing.assert_close(torch.tensor(completion.logprobs), expected, atol=1e-5, rtol=0.0)
