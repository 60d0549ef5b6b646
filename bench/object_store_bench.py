"""Object-store benchmark: upload and download throughput, and checkpoint save/load time.

For each backend (a local directory, and the local S3 server, moto, on loopback) and each
object size it measures, on one process:
- put / get: MB/s of ``put_file`` and ``get_file`` (multipart above the part size on S3);
- checkpoint: seconds for ``CheckpointStore.save`` of one shard of that size plus its manifest,
  and for ``download`` with its SHA-256 check.

moto keeps objects in memory in a Python process, so its numbers bound the client's overhead
and say little about MinIO on real disks. Run: ``python bench/object_store_bench.py
[--sizes-mib 1 16 64] [--repeats 3]``.
"""

import argparse
import datetime
import os
import platform
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import SecretStr

from hybridrl.config.object_store import ObjectStoreSettings
from hybridrl.local import LocalS3Server
from hybridrl.local.object_server import LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY
from hybridrl.store import CheckpointStore, ObjectStore, open_object_store

MIB = 1024 * 1024


def best_seconds(action: Callable[[], object], repeats: int) -> float:
    """The fastest of ``repeats`` runs: the least disturbed by other work on the machine."""
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        timings.append(time.perf_counter() - start)
    return min(timings)


def measure(store: ObjectStore, work: Path, size_mib: int, repeats: int) -> dict[str, float]:
    """One row: throughput of file transfers and time of a one-shard checkpoint."""
    source = work / f"source-{size_mib}.bin"
    source.write_bytes(random.Random(size_mib).randbytes(size_mib * MIB))
    key = f"bench/{size_mib}.bin"
    put = best_seconds(lambda: store.put_file(key, source), repeats)
    get = best_seconds(lambda: store.get_file(key, work / "download.bin"), repeats)
    checkpoints = CheckpointStore(store, f"bench-checkpoints-{size_mib}")
    steps = iter(range(repeats))
    save = best_seconds(lambda: checkpoints.save(next(steps), {"shard.bin": source}, {}), repeats)
    latest = checkpoints.latest()
    assert latest is not None
    load = best_seconds(lambda: checkpoints.download(latest, work / "checkpoint"), repeats)
    store.delete_many(info.key for info in store.list())
    return {
        "put_mb_s": size_mib * MIB / put / 1e6,
        "get_mb_s": size_mib * MIB / get / 1e6,
        "save_s": save,
        "download_s": load,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-mib", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    print(f"# Object-store benchmark, {datetime.date.today().isoformat()}")
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs; "
        f"Python {platform.python_version()}; best of {args.repeats}\n"
    )
    print("| backend | size MiB | put MB/s | get MB/s | checkpoint save s | download+verify s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as scratch, LocalS3Server(Path(scratch)) as server:
        settings = ObjectStoreSettings(
            endpoint=server.endpoint,
            secure=False,
            access_key=SecretStr(LOCAL_ACCESS_KEY),
            secret_key=SecretStr(LOCAL_SECRET_KEY),
            create_bucket=True,
        )
        backends = {
            "local directory": open_object_store(str(Path(scratch) / "objects")),
            "S3 (moto, loopback)": open_object_store("s3://hybridrl-bench/run", settings),
        }
        for name, store in backends.items():
            for size_mib in args.sizes_mib:
                work = Path(scratch) / f"work-{size_mib}"
                work.mkdir(exist_ok=True)
                row = measure(store, work, size_mib, args.repeats)
                print(
                    f"| {name} | {size_mib} | {row['put_mb_s']:,.0f} | {row['get_mb_s']:,.0f} "
                    f"| {row['save_s']:.3f} | {row['download_s']:.3f} |"
                )


if __name__ == "__main__":
    main()
