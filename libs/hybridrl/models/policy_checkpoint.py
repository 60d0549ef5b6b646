"""How a policy's weights are written to and read from a ``CheckpointStore``.

The learner saves the policy after an update with ``save_policy`` and announces it on the
policy topic; rollout workers read it back with ``load_policy_state`` and hot-reload it into
their engine. In adapter-only mode (the paper's best setting, Table 4) only the MLP adapter's
weights are written, so what travels to every rollout worker is a few kilobytes to megabytes;
in the other modes the full ``state_dict`` is written, which any engine accepts whatever its
own weight-update mode.

Layout of one checkpoint directory (``CheckpointStore`` adds the manifest, written last)::

    policy.safetensors   the weights, keyed as in ``VisionLanguageModel.state_dict()``
    manifest.json        sizes and SHA-256 of the files; metadata["policy"] describes them

``metadata["policy"]`` holds ``mode`` (the freeze mode trained), ``weights`` (``"adapter"`` or
``"full"``: which keys the file holds), ``policy_version``, ``step``, ``weights_files`` (the
files to merge, in order; one today, several for a sharded large model) and ``model_config``
(the ``VisionLanguageModelConfig``, so a reader can check it loads into the right model).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from hybridrl.models.freezing import trainable_state_dict
from hybridrl.models.vlm import VisionLanguageModel
from hybridrl.models.vlm_config import FreezeMode
from hybridrl.store.checkpoint_manifest import CheckpointCorrupt, JSONValue
from hybridrl.store.checkpoints import CheckpointRef, CheckpointStore

POLICY_WEIGHTS_FILE = "policy.safetensors"
POLICY_METADATA_KEY = "policy"

PolicyWeights = Literal["adapter", "full"]


@dataclass(frozen=True)
class PolicyMetadata:
    """What a policy checkpoint says about itself (``metadata["policy"]`` of its manifest).

    Attributes:
        mode: the freeze mode the learner trained in.
        weights: ``"adapter"`` when the files hold only the adapter, ``"full"`` otherwise.
        policy_version: the version rollouts sampled from these weights carry.
        step: the optimizer step of the checkpoint.
        weights_files: the safetensors files holding the weights, merged in this order.
        model_config: ``VisionLanguageModelConfig.model_dump()`` of the saved model.
        extra: the rest of the manifest's metadata (the learner's own keys).
    """

    mode: FreezeMode
    weights: PolicyWeights
    policy_version: int
    step: int
    weights_files: tuple[str, ...]
    model_config: Mapping[str, Any]
    extra: Mapping[str, Any]


def weights_kind(mode: FreezeMode) -> PolicyWeights:
    """Which weights a checkpoint of ``mode`` carries: the adapter alone in adapter-only mode."""
    if mode not in get_args(FreezeMode):
        raise ValueError(f"mode must be one of {get_args(FreezeMode)}, got {mode!r}")
    return "adapter" if mode == "adapter" else "full"


def _unshared_tensors(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached, contiguous CPU tensors; a tensor sharing storage with an earlier one (tied
    embeddings) is cloned, because safetensors refuses shared storage."""
    seen: set[int] = set()
    tensors: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        plain = tensor.detach().to("cpu").contiguous()
        pointer = plain.untyped_storage().data_ptr()
        if pointer in seen:
            plain = plain.clone()
        seen.add(plain.untyped_storage().data_ptr())
        tensors[name] = plain
    return tensors


def policy_checkpoint_files(
    model: VisionLanguageModel, mode: FreezeMode, policy_version: int, step: int
) -> tuple[dict[str, bytes], dict[str, JSONValue]]:
    """The files of a policy checkpoint and its ``metadata["policy"]``, not yet written.

    For writers that add files of their own to the same checkpoint (the learner's resumable
    checkpoints are policy checkpoints too); ``save_policy`` writes exactly these.
    """
    kind = weights_kind(mode)
    if isinstance(policy_version, bool) or not isinstance(policy_version, int):
        raise ValueError(f"policy_version must be an int, got {policy_version!r}")
    if policy_version < 0:
        raise ValueError(f"policy_version must be >= 0, got {policy_version}")
    state = trainable_state_dict(model, mode) if kind == "adapter" else model.state_dict()
    policy: dict[str, JSONValue] = {
        "mode": mode,
        "weights": kind,
        "policy_version": policy_version,
        "step": step,
        "weights_files": [POLICY_WEIGHTS_FILE],
        "model_config": model.config.model_dump(mode="json"),
    }
    return {POLICY_WEIGHTS_FILE: save_safetensors(_unshared_tensors(state))}, policy


def save_policy(
    checkpoint_store: CheckpointStore,
    step: int,
    model: VisionLanguageModel,
    mode: FreezeMode,
    policy_version: int,
    extra_metadata: Mapping[str, JSONValue] | None = None,
) -> CheckpointRef:
    """Write the policy's weights for ``mode`` as checkpoint ``step`` and return its reference.

    Adapter-only mode writes ``trainable_state_dict(model, "adapter")``; every other mode the
    full ``state_dict``. ``extra_metadata`` must be JSON and may not use the key ``"policy"``.
    Announce the result with the digest ``checkpoint_store.manifest_sha256(ref)``.
    """
    extra = dict(extra_metadata or {})
    if POLICY_METADATA_KEY in extra:
        raise ValueError(f"extra_metadata may not use the reserved key {POLICY_METADATA_KEY!r}")
    files, policy = policy_checkpoint_files(model, mode, policy_version, step)
    return checkpoint_store.save(step, dict(files), {**extra, POLICY_METADATA_KEY: policy})


def _policy_metadata(metadata: Mapping[str, Any], source: str) -> PolicyMetadata:
    policy = metadata.get(POLICY_METADATA_KEY)
    if not isinstance(policy, Mapping):
        raise CheckpointCorrupt(f"{source}: the manifest has no {POLICY_METADATA_KEY!r} metadata")
    try:
        mode = policy["mode"]
        weights = policy["weights"]
        version = policy["policy_version"]
        step = policy["step"]
        files = tuple(policy["weights_files"])
        model_config = policy["model_config"]
    except (KeyError, TypeError) as error:
        raise CheckpointCorrupt(f"{source}: policy metadata lacks {error}") from error
    if mode not in get_args(FreezeMode) or weights != weights_kind(mode):
        raise CheckpointCorrupt(f"{source}: policy metadata has mode {mode!r}, weights {weights!r}")
    if not isinstance(version, int) or version < 0 or not isinstance(step, int):
        raise CheckpointCorrupt(f"{source}: bad policy_version {version!r} or step {step!r}")
    if not files or not all(isinstance(name, str) for name in files):
        raise CheckpointCorrupt(f"{source}: weights_files must name at least one file")
    if not isinstance(model_config, Mapping):
        raise CheckpointCorrupt(f"{source}: model_config must be a mapping")
    extra = {key: value for key, value in metadata.items() if key != POLICY_METADATA_KEY}
    return PolicyMetadata(mode, weights, version, step, files, model_config, extra)


def load_policy_state(
    checkpoint_store: CheckpointStore,
    ref: CheckpointRef,
    *,
    expected_manifest_sha256: str | None = None,
) -> tuple[dict[str, torch.Tensor], PolicyMetadata]:
    """The weights of a policy checkpoint (CPU tensors) and what its manifest says of them.

    ``expected_manifest_sha256`` (from a policy event) must match the manifest's bytes; every
    weights file is checked against the size and SHA-256 the manifest lists.
    ``CheckpointCorrupt`` when a check fails, the metadata is not a policy's, or two files
    hold the same key.
    """
    manifest = checkpoint_store.read_manifest(ref, expected_sha256=expected_manifest_sha256)
    metadata = _policy_metadata(manifest.metadata, ref.uri)
    state: dict[str, torch.Tensor] = {}
    for name in metadata.weights_files:
        data = checkpoint_store.load_file(ref, name)
        try:
            tensors = load_safetensors(data)
        except Exception as error:  # safetensors raises its own error types on bad bytes
            what = f"{ref.uri}{name}"
            raise CheckpointCorrupt(f"{what} is not a safetensors file: {error}") from error
        repeated = sorted(set(tensors) & set(state))
        if repeated:
            raise CheckpointCorrupt(f"{ref.uri}{name} repeats keys {repeated[:5]}")
        state.update(tensors)
    return state, metadata
