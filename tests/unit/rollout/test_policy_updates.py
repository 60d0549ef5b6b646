"""PolicyUpdater: verified checkpoints swap in between batches; bad or old ones are ignored."""

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import torch

from hybridrl.engines.base import GenerationRequest, SamplingOptions
from hybridrl.engines.cpu import TransformersEngine
from hybridrl.models.policy_checkpoint import save_policy
from hybridrl.models.prompting import encode_prompt
from hybridrl.models.vlm import VisionLanguageModel
from hybridrl.models.vlm_config import FreezeMode, VisionLanguageModelConfig
from hybridrl.proto.schema import SCHEMA_VERSION
from hybridrl.proto.v1 import common_pb2, events_pb2
from hybridrl.rollout.policy_source import tiny_policy
from hybridrl.rollout.policy_updates import PolicyUpdater, policy_version_event
from hybridrl.store import CheckpointStore, LocalObjectStore
from hybridrl.tasks.visual_reasoning import generate_prompts

EngineFactory = Callable[..., TransformersEngine]
CREATED_AT = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
GREEDY = SamplingOptions(n=1, temperature=0.0, max_new_tokens=10)


@pytest.fixture
def checkpoints(tmp_path: Path) -> CheckpointStore:
    return CheckpointStore(LocalObjectStore(tmp_path), "run-1", clock=lambda: CREATED_AT)


def greedy_tokens(engine: TransformersEngine) -> list[int]:
    """Greedy response to an image prompt: the adapter acts on image features only."""
    task = generate_prompts(1, seed=0)[0]
    request = GenerationRequest(
        "probe",
        encode_prompt(tiny_policy(0).tokenizer, task.question, True, 16),
        pixel_values=torch.from_numpy(task.pixel_values()),
        sampling=GREEDY,
    )
    return engine.generate([request])[0].completions[0].token_ids


def publish(
    checkpoints: CheckpointStore,
    model: VisionLanguageModel,
    mode: FreezeMode,
    version: int,
    step: int | None = None,
) -> events_pb2.PolicyVersionEvent:
    ref = save_policy(checkpoints, version * 100 if step is None else step, model, mode, version)
    return policy_version_event(checkpoints, ref, mode, version, created_at=CREATED_AT)


def test_policy_event_names_the_checkpoint_and_its_manifest_digest(
    checkpoints: CheckpointStore, tmp_path: Path
) -> None:
    event = publish(checkpoints, tiny_policy(1).model, "adapter", 3)
    ref = checkpoints.latest()
    assert ref is not None
    assert event.schema_version == SCHEMA_VERSION
    assert event.checkpoint_uri == (tmp_path / "run-1" / "step-000000300").as_uri() + "/"
    assert event.manifest_sha256 == checkpoints.manifest_sha256(ref)
    assert event.mode == common_pb2.TRAIN_MODE_ADAPTER_ONLY
    assert (event.policy_version, event.step) == (3, 300)
    assert event.created_at.ToDatetime(tzinfo=UTC) == CREATED_AT


def test_adapter_update_is_verified_then_applied_between_batches(
    make_engine: EngineFactory, checkpoints: CheckpointStore
) -> None:
    engine = make_engine(seed=0)
    before = greedy_tokens(engine)
    updater = PolicyUpdater(engine)
    assert updater.offer(publish(checkpoints, tiny_policy(1).model, "adapter", 1))
    pending_before = updater.pending_version
    assert engine.policy_version == 0  # nothing changes until the worker applies it
    assert greedy_tokens(engine) == before
    assert updater.apply_pending() == 1
    assert (pending_before, updater.pending_version) == (1, None)
    assert engine.policy_version == 1
    reference = make_engine(seed=0)
    reference.load_weights(
        {k: v for k, v in tiny_policy(1).model.state_dict().items() if k.startswith("adapter.")},
        policy_version=1,
    )
    assert greedy_tokens(engine) == greedy_tokens(reference)
    assert greedy_tokens(engine) != before
    assert updater.counters.applied == 1
    assert updater.apply_pending() is None


def test_full_update_makes_the_engine_sample_like_the_saved_model(
    make_engine: EngineFactory, checkpoints: CheckpointStore
) -> None:
    engine = make_engine(seed=0)
    updater = PolicyUpdater(engine)
    assert updater.offer(publish(checkpoints, tiny_policy(2).model, "full", 5))
    assert updater.apply_pending() == 5
    assert greedy_tokens(engine) == greedy_tokens(make_engine(seed=2))


def test_digest_mismatch_is_rejected_and_the_old_weights_stay(
    make_engine: EngineFactory, checkpoints: CheckpointStore
) -> None:
    engine = make_engine(seed=0)
    before = greedy_tokens(engine)
    updater = PolicyUpdater(engine)
    event = publish(checkpoints, tiny_policy(1).model, "adapter", 1)
    event.manifest_sha256 = "0" * 64
    assert not updater.offer(event)
    assert updater.apply_pending() is None
    assert engine.policy_version == 0
    assert greedy_tokens(engine) == before
    assert updater.counters.failed == 1
    assert "SHA-256" in updater.counters.last_error


def test_versions_not_newer_than_the_engine_are_ignored(
    make_engine: EngineFactory, checkpoints: CheckpointStore
) -> None:
    engine = make_engine(seed=0, policy_version=2)
    updater = PolicyUpdater(engine)
    assert not updater.offer(publish(checkpoints, tiny_policy(1).model, "adapter", 1))
    assert not updater.offer(publish(checkpoints, tiny_policy(1).model, "adapter", 2))
    assert updater.counters.ignored == 2
    assert updater.counters.failed == 0
    assert updater.apply_pending() is None
    assert engine.policy_version == 2


def test_newest_verified_version_wins_when_several_arrive_between_batches(
    make_engine: EngineFactory, checkpoints: CheckpointStore
) -> None:
    engine = make_engine(seed=0)
    updater = PolicyUpdater(engine)
    assert updater.offer(publish(checkpoints, tiny_policy(1).model, "adapter", 1))
    assert updater.offer(publish(checkpoints, tiny_policy(2).model, "adapter", 2))
    assert not updater.offer(publish(checkpoints, tiny_policy(3).model, "full", 1, step=150))
    assert updater.apply_pending() == 2
    assert engine.policy_version == 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda event: setattr(event, "policy_version", 9), "holds policy version 1"),
        (lambda event: setattr(event, "mode", common_pb2.TRAIN_MODE_FULL), "holds adapter"),
        (lambda event: setattr(event, "mode", common_pb2.TRAIN_MODE_UNSPECIFIED), "UNSPECIFIED"),
        (lambda event: setattr(event, "manifest_sha256", ""), "no manifest_sha256"),
        (lambda event: setattr(event, "schema_version", 2), "schema_version is 2"),
        (
            lambda event: setattr(event, "checkpoint_uri", event.checkpoint_uri + "x/"),
            "does not name a checkpoint directory",
        ),
    ],
)
def test_inconsistent_events_are_counted_as_failures(
    make_engine: EngineFactory,
    checkpoints: CheckpointStore,
    change: Callable[[events_pb2.PolicyVersionEvent], None],
    message: str,
) -> None:
    updater = PolicyUpdater(make_engine(seed=0))
    event = publish(checkpoints, tiny_policy(1).model, "adapter", 1)
    change(event)
    assert not updater.offer(event)
    assert updater.counters.failed == 1
    assert message in updater.counters.last_error


def test_missing_checkpoint_is_a_failure_not_a_crash(
    make_engine: EngineFactory, tmp_path: Path
) -> None:
    updater = PolicyUpdater(make_engine(seed=0))
    event = events_pb2.PolicyVersionEvent(
        schema_version=SCHEMA_VERSION,
        policy_version=1,
        checkpoint_uri=(tmp_path / "run-9" / "step-000000100").as_uri() + "/",
        manifest_sha256="a" * 64,
        mode=common_pb2.TRAIN_MODE_ADAPTER_ONLY,
    )
    assert not updater.offer(event)
    assert updater.counters.failed == 1
    assert "ObjectNotFound" in updater.counters.last_error


def test_weights_of_another_architecture_fail_to_load_and_the_engine_keeps_its_own(
    make_engine: EngineFactory, checkpoints: CheckpointStore
) -> None:
    tiny = VisionLanguageModelConfig.tiny()
    wider = tiny.model_copy(
        update={
            "language_config": {**tiny.language_config, "hidden_size": 32, "intermediate_size": 64}
        }
    )
    engine = make_engine(seed=0)
    before = greedy_tokens(engine)
    updater = PolicyUpdater(engine)
    assert updater.offer(publish(checkpoints, VisionLanguageModel(wider), "adapter", 1))
    assert updater.apply_pending() is None
    assert engine.policy_version == 0
    assert greedy_tokens(engine) == before
    assert updater.counters.failed == 1
    assert "adapter.input_projection" in updater.counters.last_error


def test_initial_checkpoint_loads_with_its_own_version(
    make_engine: EngineFactory, checkpoints: CheckpointStore
) -> None:
    publish(checkpoints, tiny_policy(2).model, "full", 4)
    ref = checkpoints.latest()
    assert ref is not None
    engine = make_engine(seed=0)
    assert PolicyUpdater(engine).load_checkpoint(ref.uri) == 4
    assert engine.policy_version == 4
    assert greedy_tokens(engine) == greedy_tokens(make_engine(seed=2))
