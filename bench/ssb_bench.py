"""Selective Sample Buffer benchmark: insert throughput and draw latency against buffer size.

Targets (docs/benchmarks.md): >= 200,000 inserts/s when whole groups arrive, and <= 0.5 ms per
``sample(256)`` from 1,000,000 entries.

For each size N it measures, on one process and one core:
- fill: inserts/s while adding N samples, one group per ``add`` call, into an empty buffer of
  capacity N (every sample effective, advantages ~ N(0, 1));
- full: inserts/s for N/10 more samples into the full buffer, each evicting one;
- sample(256): mean and 99th percentile time per call over ``--draws`` calls.

Building the records is not timed. Run: ``python bench/ssb_bench.py [--entries 10000 ...]``.
"""

import argparse
import datetime
import os
import platform
import time

import numpy as np

from hybridrl.algo.buffer import SelectiveSampleBuffer
from hybridrl.algo.samples import ScoredResponse, group_id_for, sample_id_for
from hybridrl.config.buffer import EvictionPolicy, SSBConfig


def make_records(
    count: int, group_size: int, policy_version: int, prefix: str
) -> list[ScoredResponse[None]]:
    """``count`` records in groups of ``group_size`` with deterministic ids."""
    records = []
    for index in range(count):
        prompt_id = f"{prefix}{index // group_size}"
        records.append(
            ScoredResponse(
                sample_id=sample_id_for(prompt_id, policy_version, index % group_size),
                group_id=group_id_for(prompt_id, policy_version),
                prompt_id=prompt_id,
                policy_version=policy_version,
                reward=1.0,
                payload=None,
            )
        )
    return records


def insert_rate(
    buffer: SelectiveSampleBuffer[None],
    records: list[ScoredResponse[None]],
    advantages: np.ndarray,
    group_size: int,
) -> float:
    """Samples per second for adding ``records`` one group per call."""
    start = time.perf_counter()
    for first in range(0, len(records), group_size):
        buffer.add(records[first : first + group_size], advantages[first : first + group_size])
    return len(records) / (time.perf_counter() - start)


def measure(
    entries: int, group_size: int, draws: int, eviction: EvictionPolicy, seed: int
) -> dict[str, float]:
    """One row of the table for a buffer of ``entries`` samples."""
    rng = np.random.default_rng(seed)
    extra = max(entries // 10, group_size)
    fill_records = make_records(entries, group_size, policy_version=0, prefix="fill-")
    more_records = make_records(extra, group_size, policy_version=1, prefix="more-")
    fill_advantages = rng.normal(size=entries)
    more_advantages = rng.normal(size=extra)
    buffer: SelectiveSampleBuffer[None] = SelectiveSampleBuffer(
        SSBConfig(capacity=entries, eviction=eviction, advantage_tolerance=0.0)
    )
    fill = insert_rate(buffer, fill_records, fill_advantages, group_size)
    full = insert_rate(buffer, more_records, more_advantages, group_size)
    for _ in range(20):  # warm-up
        buffer.sample(256, rng)
    timings = np.empty(draws)
    for index in range(draws):
        start = time.perf_counter()
        buffer.sample(256, rng)
        timings[index] = time.perf_counter() - start
    return {
        "entries": float(len(buffer)),
        "fill": fill,
        "full": full,
        "sample_mean_ms": float(timings.mean() * 1e3),
        "sample_p99_ms": float(np.percentile(timings, 99) * 1e3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--entries", type=int, nargs="+", default=[10_000, 100_000, 1_000_000], help="sizes N"
    )
    parser.add_argument("--group-size", type=int, default=8, help="samples per add() call")
    parser.add_argument("--draws", type=int, default=2_000, help="sample(256) calls per size")
    parser.add_argument(
        "--eviction", choices=[p.value for p in EvictionPolicy], default=EvictionPolicy.OLDEST
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    print(f"# SSB benchmark, {datetime.date.today().isoformat()}")
    print(
        f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs; Python {platform.python_version()}, numpy {np.__version__}"
    )
    print(f"group size {args.group_size}, eviction {args.eviction}, {args.draws} draws of 256\n")
    print("| entries | fill inserts/s | full inserts/s (evicting) | sample(256) mean ms | p99 ms |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for entries in args.entries:
        row = measure(
            entries, args.group_size, args.draws, EvictionPolicy(args.eviction), args.seed
        )
        print(
            f"| {int(row['entries']):,} | {row['fill']:,.0f} | {row['full']:,.0f} "
            f"| {row['sample_mean_ms']:.3f} | {row['sample_p99_ms']:.3f} |"
        )


if __name__ == "__main__":
    main()
