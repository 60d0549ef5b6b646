"""save_policy / load_policy_state: what a policy checkpoint holds and how it is verified."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import torch

from hybridrl.models.freezing import trainable_state_dict
from hybridrl.models.policy_checkpoint import (
    POLICY_WEIGHTS_FILE,
    load_policy_state,
    save_policy,
)
from hybridrl.models.vlm import VisionLanguageModel
from hybridrl.models.vlm_config import VisionLanguageModelConfig
from hybridrl.rollout.policy_source import tiny_policy
from hybridrl.store import CheckpointCorrupt, CheckpointStore, LocalObjectStore

CREATED_AT = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
# The tiny adapter: LayerNorm(32) + Linear(32 -> 64) + Linear(64 -> 64), float32:
# (32 + 32) + (32 * 64 + 64) + (64 * 64 + 64) = 6336 values = 25344 bytes.
ADAPTER_TENSOR_BYTES = 25_344


@pytest.fixture
def checkpoints(tmp_path: Path) -> CheckpointStore:
    return CheckpointStore(LocalObjectStore(tmp_path), "run-1", clock=lambda: CREATED_AT)


def weights_file(tmp_path: Path, step: int) -> Path:
    return tmp_path / "run-1" / f"step-{step:09d}" / POLICY_WEIGHTS_FILE


def test_adapter_only_checkpoint_holds_the_adapter_alone(
    checkpoints: CheckpointStore, tmp_path: Path
) -> None:
    model = tiny_policy(1).model
    ref = save_policy(checkpoints, 200, model, "adapter", 7, {"bco_delta": 0.25})
    state, metadata = load_policy_state(checkpoints, ref)
    assert set(state) == set(trainable_state_dict(model, "adapter"))
    assert all(name.startswith("adapter.") for name in state)
    for name, tensor in trainable_state_dict(model, "adapter").items():
        assert torch.equal(state[name], tensor)
    assert sum(tensor.numel() * tensor.element_size() for tensor in state.values()) == (
        ADAPTER_TENSOR_BYTES
    )
    size = weights_file(tmp_path, 200).stat().st_size
    assert ADAPTER_TENSOR_BYTES < size < ADAPTER_TENSOR_BYTES + 1024  # plus the JSON header
    assert (metadata.mode, metadata.weights, metadata.policy_version, metadata.step) == (
        "adapter",
        "adapter",
        7,
        200,
    )
    assert metadata.weights_files == (POLICY_WEIGHTS_FILE,)
    assert metadata.extra == {"bco_delta": 0.25}
    assert VisionLanguageModelConfig.model_validate(metadata.model_config) == model.config


def test_full_checkpoint_holds_the_whole_state_dict_and_is_twenty_times_larger_for_the_tiny_model(
    checkpoints: CheckpointStore, tmp_path: Path
) -> None:
    model = tiny_policy(1).model
    adapter_ref = save_policy(checkpoints, 1, model, "adapter", 1)
    full_ref = save_policy(checkpoints, 2, model, "llm+adapter", 2)
    state, metadata = load_policy_state(checkpoints, full_ref)
    assert metadata.weights == "full"
    assert metadata.mode == "llm+adapter"
    assert set(state) == set(model.state_dict())
    for name, tensor in model.state_dict().items():
        assert torch.equal(state[name], tensor)
    adapter_bytes = weights_file(tmp_path, adapter_ref.step).stat().st_size
    full_bytes = weights_file(tmp_path, full_ref.step).stat().st_size
    assert 19 * adapter_bytes < full_bytes < 21 * adapter_bytes  # 517,416 vs 25,872 bytes


def test_tied_weights_are_saved_as_separate_tensors(checkpoints: CheckpointStore) -> None:
    tiny = VisionLanguageModelConfig.tiny()
    tied = tiny.model_copy(
        update={"language_config": {**tiny.language_config, "tie_word_embeddings": True}}
    )
    model = VisionLanguageModel(tied)
    ref = save_policy(checkpoints, 3, model, "full", 3)
    state, _ = load_policy_state(checkpoints, ref)
    assert torch.equal(
        state["language_model.lm_head.weight"],
        state[next(name for name in state if name.endswith("embed_tokens.weight"))],
    )


def test_manifest_digest_other_than_the_expected_one_is_refused(
    checkpoints: CheckpointStore,
) -> None:
    ref = save_policy(checkpoints, 4, tiny_policy(0).model, "adapter", 4)
    with pytest.raises(CheckpointCorrupt, match="SHA-256"):
        load_policy_state(checkpoints, ref, expected_manifest_sha256="0" * 64)
    state, _ = load_policy_state(
        checkpoints, ref, expected_manifest_sha256=checkpoints.manifest_sha256(ref)
    )
    assert state


def test_altered_weights_file_is_detected(checkpoints: CheckpointStore, tmp_path: Path) -> None:
    ref = save_policy(checkpoints, 5, tiny_policy(0).model, "adapter", 5)
    path = weights_file(tmp_path, 5)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointCorrupt, match=POLICY_WEIGHTS_FILE):
        load_policy_state(checkpoints, ref)


def test_checkpoint_without_policy_metadata_is_not_a_policy(checkpoints: CheckpointStore) -> None:
    ref = checkpoints.save(6, {"optimizer.pt": b"state"}, {"policy_version": 6})
    with pytest.raises(CheckpointCorrupt, match="no 'policy' metadata"):
        load_policy_state(checkpoints, ref)


def test_policy_metadata_is_recorded_in_the_manifest(
    checkpoints: CheckpointStore, tmp_path: Path
) -> None:
    save_policy(checkpoints, 8, tiny_policy(0).model, "adapter", 9)
    manifest = json.loads((tmp_path / "run-1" / "step-000000008" / "manifest.json").read_text())
    policy = manifest["metadata"]["policy"]
    assert {key: policy[key] for key in ("mode", "weights", "policy_version", "step")} == {
        "mode": "adapter",
        "weights": "adapter",
        "policy_version": 9,
        "step": 8,
    }
    assert policy["model_config"]["image_token_id"] == 4


def test_bad_arguments_are_refused_before_anything_is_written(
    checkpoints: CheckpointStore,
) -> None:
    model = tiny_policy(0).model
    with pytest.raises(ValueError, match="reserved key 'policy'"):
        save_policy(checkpoints, 1, model, "adapter", 1, {"policy": "mine"})
    with pytest.raises(ValueError, match="policy_version must be >= 0"):
        save_policy(checkpoints, 1, model, "adapter", -1)
    with pytest.raises(ValueError, match="mode must be one of"):
        save_policy(checkpoints, 1, model, "vision", 1)  # type: ignore[arg-type]
    assert checkpoints.list() == []
