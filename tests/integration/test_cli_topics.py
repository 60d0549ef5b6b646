"""``hybridrl topics create`` against a real broker."""

import subprocess
import sys

from hybridrl.bus.topics import Topics, describe_topics
from hybridrl.config.kafka import KafkaSettings
from hybridrl.local import LocalKafkaBroker


def run_cli(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hybridrl", *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def test_topics_create_makes_the_loop_topics_once(kafka_broker: LocalKafkaBroker) -> None:
    prefix = "clitest."
    first = run_cli(
        "topics",
        "create",
        "-b",
        kafka_broker.bootstrap_servers,
        "--prefix",
        prefix,
        "--partitions",
        "3",
    )
    assert first.stdout.count("created") == 5
    second = run_cli("topics", "create", "-b", kafka_broker.bootstrap_servers, "--prefix", prefix)
    assert second.stdout.count("existed") == 5
    topics = Topics(prefix=prefix)
    settings = KafkaSettings(bootstrap_servers=kafka_broker.bootstrap_servers)
    described = {
        d.name: d for d in describe_topics(settings, [topics.prompts, topics.policy, topics.scored])
    }
    assert described[topics.prompts].partitions == 3
    assert described[topics.policy].partitions == 1
    assert described[topics.policy].configs.get("cleanup.policy") == "compact"
