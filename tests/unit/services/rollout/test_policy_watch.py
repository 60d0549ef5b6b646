"""PolicyWatcher: the newest event of a poll is offered; junk is skipped; gRPC-only applies."""

import threading
from collections.abc import Sequence
from pathlib import Path

from hybridrl_services.rollout.policy_watch import PolicyWatcher

from hybridrl.bus.records import RawRecord
from hybridrl.models.policy_checkpoint import save_policy
from hybridrl.proto.v1 import events_pb2
from hybridrl.rollout.policy_source import tiny_policy
from hybridrl.rollout.policy_updates import PolicyUpdater, policy_version_event
from hybridrl.rollout.shared_engine import SharedEngine
from hybridrl.store import CheckpointStore, LocalObjectStore


class ListTail:
    """A policy tail that returns prepared polls, then nothing."""

    def __init__(self, polls: Sequence[Sequence[bytes | None]]) -> None:
        self.polls = [list(poll) for poll in polls]
        self.closed = False

    def poll(self, timeout_s: float) -> list[RawRecord]:
        values = self.polls.pop(0) if self.polls else []
        return [
            RawRecord("policy", 0, offset, b"run", value) for offset, value in enumerate(values)
        ]

    def caught_up(self) -> bool:
        return not self.polls

    def close(self) -> None:
        self.closed = True


def announced(tmp_path: Path, versions: Sequence[int]) -> list[events_pb2.PolicyVersionEvent]:
    checkpoints = CheckpointStore(LocalObjectStore(tmp_path), "run-1")
    events = []
    for version in versions:
        ref = save_policy(checkpoints, version, tiny_policy(version).model, "adapter", version)
        events.append(policy_version_event(checkpoints, ref, "adapter", version))
    return events


def test_only_the_newest_event_of_a_poll_is_read_and_left_for_the_prompt_loop(
    shared_engine: SharedEngine, tmp_path: Path
) -> None:
    first, second = announced(tmp_path, [1, 2])
    updater = PolicyUpdater(shared_engine)
    tail = ListTail([[second.SerializeToString(), first.SerializeToString()]])
    watcher = PolicyWatcher(tail, updater, apply_immediately=False)
    assert watcher.watch_once() == 2
    assert updater.pending_version == 2
    assert shared_engine.policy_version == 0
    assert updater.counters.ignored == 0
    assert watcher.watch_once() is None


def test_without_a_prompt_loop_the_watcher_applies_the_update_itself(
    shared_engine: SharedEngine, tmp_path: Path
) -> None:
    (event,) = announced(tmp_path, [3])
    updater = PolicyUpdater(shared_engine)
    watcher = PolicyWatcher(
        ListTail([[event.SerializeToString()]]), updater, apply_immediately=True
    )
    assert watcher.watch_once() == 3
    assert shared_engine.policy_version == 3
    assert updater.pending_version is None


def test_records_that_are_not_policy_events_are_skipped(
    shared_engine: SharedEngine, tmp_path: Path
) -> None:
    (event,) = announced(tmp_path, [1])
    tail = ListTail([[None, b"\xff\xff not protobuf", event.SerializeToString()]])
    watcher = PolicyWatcher(tail, PolicyUpdater(shared_engine), apply_immediately=True)
    assert watcher.watch_once() == 1
    assert watcher.skipped == 2


def test_catch_up_reads_to_the_end_and_loads_the_newest_version(
    shared_engine: SharedEngine, tmp_path: Path
) -> None:
    first, second = announced(tmp_path, [1, 2])
    tail = ListTail([[first.SerializeToString()], [], [second.SerializeToString()]])
    watcher = PolicyWatcher(tail, PolicyUpdater(shared_engine), apply_immediately=False)
    assert watcher.catch_up(timeout_s=30) == 2
    assert shared_engine.policy_version == 2
    assert tail.polls == []


def test_catch_up_with_nothing_announced_loads_nothing(shared_engine: SharedEngine) -> None:
    watcher = PolicyWatcher(ListTail([]), PolicyUpdater(shared_engine), apply_immediately=False)
    assert watcher.catch_up(timeout_s=30) is None
    assert shared_engine.policy_version == 0


def test_run_stops_on_the_event_and_closes_the_tail(shared_engine: SharedEngine) -> None:
    stop = threading.Event()
    tail = ListTail([])
    stop.set()
    PolicyWatcher(tail, PolicyUpdater(shared_engine), apply_immediately=True).run(stop)
    assert tail.closed
