"""CPU generation engine benchmark: responses/s and tokens/s, batched against one at a time.

The workload is a rollout step of the local run: ``--prompts`` synthetic visual-reasoning prompts
(``hybridrl.tasks.visual_reasoning``, each with its 32x32 image) x ``--responses`` responses each,
up to ``--new-tokens`` tokens, temperature 1, seeded, on the tiny untrained policy
(``VisionLanguageModelConfig.tiny``). The untrained policy stops at eos now and then, so tokens/s
counts the tokens actually generated. For each intra-op thread count it times three batchings of
the same ``TransformersEngine.generate`` call:

- all: every response of every prompt decoded together (``max_batch_size`` = prompts x responses);
- per prompt: the responses of one prompt together (``max_batch_size`` = responses);
- one at a time: one response per batch (``max_batch_size`` = 1).

Seeded responses do not depend on the batching, so the three produce the same tokens. Each
figure is the median of ``--repeats`` timed calls after one warm-up call. Prints a markdown table.
Run: ``python bench/engine_bench.py [--prompts 16 --responses 8 --new-tokens 32 --threads 1 2]``.
"""

import argparse
import datetime
import os
import platform
import statistics
import time

import torch

from hybridrl.engines.base import GenerationRequest, SamplingOptions
from hybridrl.engines.cpu import TransformersEngine
from hybridrl.models.prompting import encode_prompt
from hybridrl.models.tokenizer import build_tokenizer
from hybridrl.models.vlm import VisionLanguageModel
from hybridrl.models.vlm_config import VisionLanguageModelConfig
from hybridrl.tasks.visual_reasoning import generate_prompts


def build_requests(
    prompts: int, responses: int, new_tokens: int, seed: int
) -> list[GenerationRequest]:
    tokenizer = build_tokenizer()
    config = VisionLanguageModelConfig.tiny(tokenizer)
    return [
        GenerationRequest(
            request_id=prompt.prompt_id,
            prompt_token_ids=encode_prompt(
                tokenizer, prompt.question, True, config.num_image_tokens
            ),
            pixel_values=torch.from_numpy(prompt.pixel_values()),
            sampling=SamplingOptions(
                n=responses, temperature=1.0, max_new_tokens=new_tokens, seed=seed + index
            ),
        )
        for index, prompt in enumerate(generate_prompts(prompts, seed=seed))
    ]


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, or the architecture where there is none."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def time_generate(
    engine: TransformersEngine, requests: list[GenerationRequest], repeats: int
) -> tuple[float, list[list[int]]]:
    """Median seconds per call, and the token ids of every response."""
    results = engine.generate(requests)  # warm-up
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        results = engine.generate(requests)
        timings.append(time.perf_counter() - start)
    tokens = [completion.token_ids for result in results for completion in result.completions]
    return statistics.median(timings), tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--responses", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    tokenizer = build_tokenizer()
    torch.manual_seed(args.seed)
    model = VisionLanguageModel(VisionLanguageModelConfig.tiny(tokenizer)).eval()
    requests = build_requests(args.prompts, args.responses, args.new_tokens, args.seed)
    batchings = {
        "all": args.prompts * args.responses,
        "per prompt": args.responses,
        "one at a time": 1,
    }

    print(f"# CPU generation engine ({datetime.date.today().isoformat()})\n")
    print(
        f"Machine: {cpu_model()}, {os.cpu_count()} logical cores, "
        f"{platform.platform()}, Python {platform.python_version()}, torch {torch.__version__}. "
        f"Workload: {args.prompts} prompts x {args.responses} responses, up to "
        f"{args.new_tokens} new tokens, temperature 1, tiny policy, median of {args.repeats}.\n"
    )
    print(
        "| threads | batching | rows per batch | s per call | responses/s | tokens/s | speed-up |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for threads in args.threads:
        torch.set_num_threads(threads)
        rows: list[tuple[str, int, float, list[list[int]]]] = []
        for name, batch_size in batchings.items():
            engine = TransformersEngine(model, tokenizer, max_batch_size=batch_size)
            seconds, tokens = time_generate(engine, requests, args.repeats)
            if rows and tokens != rows[0][3]:
                raise RuntimeError(f"batching {name!r} sampled other tokens than {rows[0][0]!r}")
            rows.append((name, batch_size, seconds, tokens))
        slowest = rows[-1][2]
        for name, batch_size, seconds, tokens in rows:
            responses = len(tokens)
            generated = sum(len(response) for response in tokens)
            print(
                f"| {threads} | {name} | {batch_size} | {seconds:.3f} | {responses / seconds:,.0f} "
                f"| {generated / seconds:,.0f} | {slowest / seconds:.1f}x |"
            )


if __name__ == "__main__":
    main()
