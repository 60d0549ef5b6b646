"""Where the policy comes from: the seeded tiny model, a saved directory, an object-store copy."""

from pathlib import Path

import pytest
import torch

import hybridrl.rollout.policy_source as policy_source
from hybridrl.config.object_store import ObjectStoreSettings
from hybridrl.rollout.policy_source import (
    local_model_directory,
    policy_config_from_directory,
    policy_from_directory,
    tiny_policy,
)
from hybridrl.store import LocalObjectStore, ObjectStore


def same_weights(first: torch.nn.Module, second: torch.nn.Module) -> bool:
    other = second.state_dict()
    return all(torch.equal(tensor, other[name]) for name, tensor in first.state_dict().items())


def test_tiny_policy_is_a_function_of_its_seed() -> None:
    assert same_weights(tiny_policy(3).model, tiny_policy(3).model)
    assert not same_weights(tiny_policy(3).model, tiny_policy(4).model)
    assert tiny_policy(3).config.num_image_tokens == 16


def test_saved_directory_loads_the_same_weights_and_tokenizer(tmp_path: Path) -> None:
    saved = tiny_policy(5)
    saved.model.save_pretrained(tmp_path / "model")
    saved.tokenizer.save_pretrained(tmp_path / "model" / "tokenizer")
    loaded = policy_from_directory(tmp_path / "model")
    assert same_weights(loaded.model, saved.model)
    assert loaded.tokenizer.encode("2+3") == saved.tokenizer.encode("2+3")
    assert policy_from_directory(tmp_path / "model", "builtin").tokenizer.eos_token_id == 2


def test_config_reads_from_the_json_files_alone(tmp_path: Path) -> None:
    tiny_policy(0).model.save_pretrained(tmp_path)
    config = policy_config_from_directory(tmp_path)
    assert config.num_image_tokens == 16
    assert config.image_size == (32, 32)
    assert config.image_token_id == 4


def test_missing_directory_or_tokenizer_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        policy_from_directory(tmp_path / "absent")
    tiny_policy(0).model.save_pretrained(tmp_path / "model")
    with pytest.raises(ValueError, match="tokenizer directory"):
        policy_from_directory(tmp_path / "model")


def test_object_store_directory_is_copied_once_into_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = tmp_path / "bucket"
    tiny_policy(6).model.save_pretrained(bucket / "models" / "tiny")
    opened: list[str] = []

    def open_local(uri: str, settings: ObjectStoreSettings | None = None) -> ObjectStore:
        opened.append(uri)
        return LocalObjectStore(bucket / uri.removeprefix("s3://b/"))

    monkeypatch.setattr(policy_source, "open_object_store", open_local)
    source = "s3://b/models/tiny/"
    directory = local_model_directory(source, tmp_path / "cache")
    assert directory.parent == tmp_path / "cache"
    assert same_weights(policy_from_directory(directory, "builtin").model, tiny_policy(6).model)
    assert local_model_directory(source, tmp_path / "cache") == directory
    assert opened == ["s3://b/models/tiny"]
    assert local_model_directory(str(bucket), tmp_path / "cache") == bucket
