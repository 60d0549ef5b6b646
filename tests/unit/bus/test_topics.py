"""Topic names per run and the loop's topic layout."""

from __future__ import annotations

import pytest

from hybridrl.bus.topics import DLQ_RETENTION_MS, Topics, TopicSpec, default_topic_specs


def test_default_names_are_the_architecture_names() -> None:
    assert Topics().all() == (
        "hybridrl.prompts",
        "hybridrl.rollouts",
        "hybridrl.scored",
        "hybridrl.policy",
        "hybridrl.dlq",
    )


def test_a_run_prefix_separates_runs() -> None:
    topics = Topics(prefix="run-42.hybridrl.")
    assert topics.rollouts == "run-42.hybridrl.rollouts"
    assert topics.dlq == "run-42.hybridrl.dlq"


@pytest.mark.parametrize("prefix", ["run 42.", "run/42.", "x" * 250])
def test_an_illegal_prefix_is_rejected(prefix: str) -> None:
    with pytest.raises(ValueError, match="is not legal in Kafka"):
        Topics(prefix=prefix)


@pytest.mark.parametrize(
    ("name", "partitions", "replicas", "message"),
    [
        ("t", 0, 1, "partitions must be >= 1"),
        ("t", 1, 0, "replication_factor must be >= 1"),
        ("..", 1, 1, "is not legal"),
    ],
)
def test_a_bad_topic_spec_is_rejected(
    name: str, partitions: int, replicas: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        TopicSpec(name, partitions, replicas)


def test_default_layout_compacts_policy_and_keeps_dead_letters_long() -> None:
    specs = default_topic_specs(partitions=6)
    assert specs == [
        TopicSpec("hybridrl.prompts", 6, 1, {}),
        TopicSpec("hybridrl.rollouts", 6, 1, {}),
        TopicSpec("hybridrl.scored", 6, 1, {}),
        TopicSpec("hybridrl.policy", 1, 1, {"cleanup.policy": "compact"}),
        TopicSpec("hybridrl.dlq", 2, 1, {"retention.ms": "2592000000"}),
    ]
    assert DLQ_RETENTION_MS == 30 * 24 * 3600 * 1000


def test_replicated_layout_requires_two_in_sync_copies_and_sets_the_size_limit() -> None:
    specs = default_topic_specs(Topics("run-1."), replication_factor=3, max_message_bytes=2_097_152)
    policy = specs[3]
    assert policy.name == "run-1.policy"
    assert policy.replication_factor == 3
    assert dict(policy.configs) == {
        "min.insync.replicas": "2",
        "max.message.bytes": "2097152",
        "cleanup.policy": "compact",
    }
    assert dict(specs[0].configs) == {"min.insync.replicas": "2", "max.message.bytes": "2097152"}
