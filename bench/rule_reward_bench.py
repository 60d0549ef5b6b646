"""Rule-reward throughput on a realistic mix of responses, one core, plus the worker pool.

Target (docs/benchmarks.md): >= 300 responses/s for ``rule_reward`` on one core (single
process, main thread, so math-verify runs with its own timeouts).

The mix imitates GRPO rollouts: prompts with 8 responses each sharing one gold answer, every
response a ``<think>`` block of a few thousand characters followed by the answer part. Kinds:
boxed integers, fractions against decimals (``\\frac{3}{4}`` vs 0.75), LaTeX expressions that
need math-verify (radicals, pi, polynomials, sets, intervals), multiple choice in English and
Chinese, "the answer is" phrasings in English and Chinese, wrong answers, no answer, and a few
pathological answers (a power tower, a 10^5-digit number, a megabyte of braces). Building the
pairs is not timed. Run: ``python bench/rule_reward_bench.py [--prompts 200 --pool-workers 2]``.
"""

import argparse
import datetime
import importlib.metadata
import os
import platform
import random
import time
from collections import defaultdict
from collections.abc import Callable

from hybridrl.config.rewards import RuleRewardConfig, ScorerPoolConfig
from hybridrl.rewards.rule import score_rule
from hybridrl.rewards.scorer_pool import RuleScorerPool

GROUP_SIZE = 8
Pair = tuple[str, str, str]  # (kind, response, gold)


def thinking(rng: random.Random) -> str:
    """A few thousand characters of reasoning with numbers and LaTeX, like a real CoT."""
    steps = [
        f"Step {index}: we have ${rng.randint(2, 99)}x + {rng.randint(1, 50)} = "
        f"{rng.randint(100, 999)}$, so subtracting gives \\frac{{{rng.randint(1, 9)}}}"
        f"{{{rng.randint(2, 9)}}} of the remaining part. Let me double-check this. "
        for index in range(rng.randint(15, 40))
    ]
    return "<think>\n" + "".join(steps) + "\n</think>\n\n"


def group(rng: random.Random) -> list[Pair]:
    """One prompt's gold answer and GROUP_SIZE responses of one kind, ~60% correct."""
    kind = rng.choices(
        ["integer", "fraction", "latex", "choice", "phrase", "no_answer", "pathological"],
        weights=[30, 15, 15, 15, 13, 10, 2],
    )[0]
    pairs = []
    for _ in range(GROUP_SIZE):
        correct = rng.random() < 0.6
        gold, answer_text = make_answer(kind, correct, rng)
        pairs.append((kind, thinking(rng) + answer_text, gold))
    return pairs


def make_answer(kind: str, correct: bool, rng: random.Random) -> tuple[str, str]:
    """(gold, answer part of the response) for one response of ``kind``."""
    value = rng.randint(1, 10_000)
    if kind == "integer":
        return str(value), f"So the total is $\\boxed{{{value if correct else value + 1}}}$."
    if kind == "fraction":
        numerator, denominator = rng.randint(1, 99), rng.choice([2, 4, 5, 8, 10, 20, 25])
        gold = f"{numerator / denominator:g}"
        shown = numerator if correct else numerator + 1
        return gold, f"Therefore $\\boxed{{\\frac{{{shown}}}{{{denominator}}}}}$."
    if kind == "latex":
        a, b = rng.randint(2, 99), rng.choice([2, 3, 5, 6, 7, 10, 11, 13, 14, 15, 17, 19])
        candidates = [
            (f"\\sqrt{{{a * a * b}}}", f"{a}\\sqrt{{{b}}}", f"{a + 1}\\sqrt{{{b}}}"),
            (f"\\frac{{{a}\\pi}}{{{b}}}", f"{a}\\pi/{b}", f"{a}\\pi/{b + 1}"),
            (f"x^2+{2 * a}x+{a * a}", f"(x+{a})^2", f"(x+{a + 1})^2"),
            (f"\\{{{a},{b}\\}}", f"\\{{{b},{a}\\}}", f"\\{{{a},{b + 10}\\}}"),
            (f"[{a},{a + b})", f"[{a}, {a + b})", f"({a},{a + b})"),
        ]
        gold, right, wrong = rng.choice(candidates)
        return gold, f"The final answer is $\\boxed{{{right if correct else wrong}}}$"
    if kind == "choice":
        letter = rng.choice("ABCD")
        option = letter if correct else "ABCD"[("ABCD".index(letter) + 1) % 4]
        phrasing = rng.choice(
            [
                f"The correct option is ({option}).",
                f"正确选项是{option}",
                f"答案是 {option}。",
                f"Answer: {option}",
                f"故选：{option}",
            ]
        )
        return letter, phrasing
    if kind == "phrase":
        shown = value if correct else value * 2
        phrasing = rng.choice([f"The answer is {shown:,}.", f"所以答案是{shown}。"])
        return str(value), phrasing
    if kind == "no_answer":
        return str(value), "I could not finish the computation in time, so I will stop here"
    pathological = rng.choice(
        ["\\boxed{9^{9^{9^9}}}", "The answer is " + "7" * 100_000, "{" * 1_000_000]
    )
    return str(value), pathological


def time_single_core(pairs: list[Pair], config: RuleRewardConfig) -> dict[str, tuple[int, float]]:
    """Seconds spent per kind, calling ``score_rule`` in this process's main thread."""
    spent: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    for kind, response, gold in pairs:
        start = time.perf_counter()
        score_rule(response, gold, config)
        spent[kind][1] += time.perf_counter() - start
        spent[kind][0] += 1
    return {kind: (int(count), seconds) for kind, (count, seconds) in spent.items()}


def time_pool(pairs: list[Pair], workers: int, batch: int) -> tuple[float, float]:
    """(responses/s through a pool of ``workers``, pool start-up seconds)."""
    started = time.perf_counter()
    with RuleScorerPool(ScorerPoolConfig(workers=workers)) as pool:
        start_up = time.perf_counter() - started
        plain = [(response, gold) for _, response, gold in pairs]
        start = time.perf_counter()
        for first in range(0, len(plain), batch):
            pool.score(plain[first : first + batch])
        elapsed = time.perf_counter() - start
    return len(pairs) / elapsed, start_up


def report(rows: dict[str, tuple[int, float]], header: Callable[[], None]) -> float:
    """Print the per-kind table and return overall responses/s."""
    header()
    print("| kind | responses | responses/s | mean ms |")
    print("| --- | ---: | ---: | ---: |")
    for kind, (count, seconds) in sorted(rows.items()):
        print(f"| {kind} | {count} | {count / seconds:,.0f} | {1e3 * seconds / count:.2f} |")
    total = sum(count for count, _ in rows.values())
    seconds = sum(seconds for _, seconds in rows.values())
    print(f"| **all** | {total} | **{total / seconds:,.0f}** | {1e3 * seconds / total:.2f} |")
    return total / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=200, help="groups of 8 responses")
    parser.add_argument("--pool-workers", type=int, default=2, help="0 skips the pool run")
    parser.add_argument("--pool-batch", type=int, default=256, help="pairs per score() call")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    pairs = [pair for _ in range(args.prompts) for pair in group(rng)]
    config = RuleRewardConfig()
    score_rule("\\boxed{2\\sqrt{2}}", "\\sqrt{8}", config)  # import and regex warm-up, untimed

    def header() -> None:
        print(f"# Rule reward benchmark, {datetime.date.today().isoformat()}")
        print(
            f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} CPUs; Python {platform.python_version()}, "
            f"math-verify {importlib.metadata.version('math-verify')}"
        )
        print(f"{len(pairs)} responses ({args.prompts} prompts x {GROUP_SIZE}), seed {args.seed}")
        print("single process, main thread, one core\n")

    overall = report(time_single_core(pairs, config), header)
    print(f"\nrule_reward: {overall:,.0f} responses/s on one core (target >= 300)")
    if args.pool_workers > 0:
        rate, start_up = time_pool(pairs, args.pool_workers, args.pool_batch)
        print(
            f"RuleScorerPool, {args.pool_workers} workers, batches of {args.pool_batch}: "
            f"{rate:,.0f} responses/s (start-up {start_up:.2f} s, not included)"
        )


if __name__ == "__main__":
    main()
