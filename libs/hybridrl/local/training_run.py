"""A whole training run on this machine: warm-up, services, a 2-rank learner, evaluation.

What ``hybridrl demo`` runs, in order:

1. ``LocalStack.start_backends``: a Kafka-protocol broker and an S3 server as child processes,
   the topics and the bucket;
2. ``prepare_base_policy``: the short supervised warm-up of the tiny model (the paper starts RL
   from a pretrained model; see ``hybridrl.learner.warmup``), its held-out "before" accuracy,
   and its full weights saved as policy version 0 — the start of every rollout worker and of
   the learner, and the learner's frozen reference;
3. rollout, reward and SSB services with settings derived from the one ``LearnerConfig``
   (``service_settings``), then the learner under torchrun;
4. ``PromptFeeder``: synthetic prompts published a few learner steps ahead, so that rollouts
   overlap learning but stay within the staleness bound;
5. at the end, held-out evaluations of the published policies ("during") and of the last one
   ("after"), written to ``evaluations.jsonl`` next to the learner's ``metrics.jsonl``.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hybridrl.bus.codec import decode
from hybridrl.bus.producer import EventProducer
from hybridrl.bus.reader import read_all
from hybridrl.config.learner import LearnerConfig
from hybridrl.config.object_store import ObjectStoreSettings
from hybridrl.engines.cpu import TransformersEngine
from hybridrl.learner.evaluation import EvalResult, evaluate
from hybridrl.learner.rollouts import tiny_model_config
from hybridrl.learner.warmup import supervised_warmup
from hybridrl.local.stack import LocalStack
from hybridrl.models.freezing import load_trainable_state_dict
from hybridrl.models.policy_checkpoint import load_policy_state, save_policy
from hybridrl.models.tokenizer import build_tokenizer
from hybridrl.models.vlm import VisionLanguageModel
from hybridrl.models.vlm_config import VisionLanguageModelConfig
from hybridrl.proto.v1 import events_pb2
from hybridrl.rollout.prompts import prompt_event_from_task
from hybridrl.store.checkpoints import CheckpointStore, open_checkpoint
from hybridrl.store.uris import open_object_store
from hybridrl.tasks.visual_reasoning import generate_prompts

__all__ = [
    "BasePolicy",
    "PromptFeeder",
    "append_jsonl",
    "evaluate_published_policies",
    "policy_propagation",
    "prepare_base_policy",
    "service_settings",
]


@dataclass(frozen=True)
class BasePolicy:
    """The warmed-up starting point of a run."""

    uri: str
    before: EvalResult
    warmup_losses: list[float]
    warmup_seconds: float


def _engine(model: VisionLanguageModel, config: LearnerConfig) -> TransformersEngine:
    return TransformersEngine(
        model,
        build_tokenizer(),
        max_batch_size=max(config.eval_prompts, 64),
        weight_update_mode=config.freeze_mode,
        seed=config.seed,
    )


def _evaluate(model: VisionLanguageModel, config: LearnerConfig, prompts: int) -> EvalResult:
    tokenizer = build_tokenizer()
    return evaluate(
        _engine(model, config),
        generate_prompts(prompts, seed=config.eval_seed, kinds=config.task_kinds, split="eval"),
        tokenizer,
        model.config.num_image_tokens,
        max_new_tokens=config.max_new_tokens,
        format_config=config.format_reward,
    )


def prepare_base_policy(
    config: LearnerConfig, run_uri: str, object_store: ObjectStoreSettings | None
) -> BasePolicy:
    """Warm up the tiny model, evaluate it, save its full weights as ``<run_uri>/base``."""
    torch.set_num_threads(config.torch_threads)
    tokenizer = build_tokenizer()
    model_config = tiny_model_config(tokenizer, config.language_initializer_range)
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        model = VisionLanguageModel(model_config)
    started = time.monotonic()
    prompts = generate_prompts(
        config.warmup.steps * config.warmup.batch_size,
        seed=max(config.prompt_seed - 1, 0),
        kinds=config.task_kinds,
        split="warmup",
    )
    result = supervised_warmup(model, tokenizer, prompts, config.warmup, seed=config.seed)
    seconds = time.monotonic() - started
    model.eval()
    before = _evaluate(model, config, config.eval_prompts)
    store = CheckpointStore(open_object_store(run_uri, object_store), "base")
    ref = save_policy(store, 0, model, "full", 0, {"warmup_steps": config.warmup.steps})
    return BasePolicy(ref.uri, before, result.losses, seconds)


def service_settings(
    config: LearnerConfig, base_uri: str, *, run_name: str, metrics_file: Path
) -> dict[str, dict[str, Any]]:
    """Settings overrides of rollout, reward, SSB and learner that follow from one recipe."""
    dump = config.model_dump(mode="json")
    return {
        "rollout": {
            "model": {"initial_checkpoint_uri": base_uri},
            "sampling": {
                "temperature": config.temperature,
                "top_p": config.top_p,
                "max_new_tokens": config.max_new_tokens,
                "run_seed": config.seed,
            },
            "engine": {
                # Two threads: while the learner waits for samples the rollout worker has both
                # cores, and rollouts then arrive faster than the learner consumes them.
                "torch_threads": 2,
                "weight_update_mode": config.freeze_mode,
                "max_batch_size": 256,
            },
            # A whole step's prompts decode together: the CPU engine's best batch.
            "max_batch_prompts": config.prompts_per_step,
            "poll_timeout_seconds": 0.2,
        },
        "reward": {
            "rewards": {
                "pool": {"workers": 1},
                "weights": dump["reward_weights"],
                "format": dump["format_reward"],
            },
            "reward_model": {"source": "none"},
            "poll_timeout_seconds": 0.2,
        },
        "ssb": {
            "shard": "local",
            "buffer": dump["ssb"],
            "mpo_pairs": dump["mpo_pairs"],
            "advantages": dump["grpo"],
            "poll_timeout_seconds": 0.2,
            "max_sample_wait_seconds": 10.0,
        },
        "learner": {
            "run_name": run_name,
            "run": dump,
            "initial_checkpoint_uri": base_uri,
            "metrics_file": str(metrics_file),
            "deepspeed": {"accelerator": "cpu", "backend": "gloo"},
            "checkpoints": {"every_steps": 25},
        },
    }


class PromptFeeder:
    """Publishes ``prompts_per_step`` synthetic prompts per learner step, ``lookahead`` steps
    ahead of the learner: enough queued to keep rollout workers busy, few enough that their
    samples are not stale when the learner gets to them.

    Progress is counted in steps the learner has taken, which only grows: a learner that
    resumes from a checkpoint repeats steps, and the prompts published for them before it
    died are still in the pipeline for it.
    """

    def __init__(self, stack: LocalStack, config: LearnerConfig, *, lookahead: int = 2) -> None:
        self._producer = EventProducer(stack.kafka)
        self._topic = stack.topics.prompts
        self._config = config
        self._lookahead = lookahead
        self._last_step = 0
        self.steps_seen = 0
        self.batches_published = 0

    def feed(self, learner_step: int) -> int:
        """Note the learner's step; publish up to ``steps_seen + lookahead`` batches; return
        how many were new."""
        self.steps_seen += max(learner_step - self._last_step, 0)
        self._last_step = learner_step
        config = self._config
        new = 0
        while self.batches_published < self.steps_seen + self._lookahead:
            for prompt in generate_prompts(
                config.prompts_per_step,
                seed=config.prompt_seed + self.batches_published,
                kinds=config.task_kinds,
            ):
                event = prompt_event_from_task(prompt, config.group_size)
                self._producer.send(self._topic, event.prompt_id, event)
            self.batches_published += 1
            new += 1
        if new:
            self._producer.flush(30.0)
        return new

    def close(self) -> None:
        self._producer.close(5.0)


def _load_policy(base: VisionLanguageModel, store: CheckpointStore, version: int) -> None:
    ref = next(ref for ref in store.list() if ref.step == version)
    state, metadata = load_policy_state(store, ref)
    if metadata.weights == "full":
        base.load_state_dict(state, strict=True)
    else:
        load_trainable_state_dict(base, state, metadata.mode)


def evaluate_published_policies(
    config: LearnerConfig,
    base_uri: str,
    run_uri: str,
    object_store: ObjectStoreSettings | None,
    *,
    every: int,
    prompts: int,
) -> list[dict[str, Any]]:
    """Held-out evaluations of every ``every``-th published policy ("during", on ``prompts``
    prompts) and of the newest one ("after", on ``config.eval_prompts``)."""
    store = CheckpointStore(open_object_store(run_uri, object_store), "policy")
    versions = [ref.step for ref in store.list()]
    if not versions:
        return []
    base = _base_model(base_uri, object_store)
    records = []
    chosen = [v for v in versions[:-1] if v > 0 and v % every == 0]
    for version, label, count in [(v, "during", prompts) for v in chosen] + [
        (versions[-1], "after", config.eval_prompts)
    ]:
        model = copy.deepcopy(base)
        _load_policy(model, store, version)
        result = _evaluate(model.eval(), config, count)
        # The engine was built for this evaluation: the version is the checkpoint's.
        records.append(
            {**asdict(result), "label": label, "step": version, "policy_version": version}
        )
    return records


def _base_model(base_uri: str, object_store: ObjectStoreSettings | None) -> VisionLanguageModel:
    store, ref = open_checkpoint(base_uri, object_store)
    state, metadata = load_policy_state(store, ref)
    model = VisionLanguageModel(VisionLanguageModelConfig.model_validate(metadata.model_config))
    model.load_state_dict(state, strict=True)
    return model


def append_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    """Append ``records`` to ``path``, one JSON object per line."""
    with path.open("a") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")


def policy_propagation(
    stack: LocalStack, run_uri: str, object_store: ObjectStoreSettings | None
) -> dict[str, Any]:
    """How fast and how heavy policy updates were: for each published version, the seconds
    from its manifest's creation to the first rollout sample tagged with it (from the
    rollouts topic), and the bytes of its weights file, by kind of weights."""
    store = CheckpointStore(open_object_store(run_uri, object_store), "policy")
    published: dict[int, float] = {}
    sizes: dict[str, list[int]] = {"adapter": [], "full": []}
    for ref in store.list():
        manifest = store.read_manifest(ref)
        published[ref.step] = manifest.created_at.timestamp()
        policy = manifest.metadata.get("policy")
        kind = str(policy.get("weights")) if isinstance(policy, dict) else "full"
        sizes.setdefault(kind, []).append(sum(entry.size for entry in manifest.files.values()))
    first_seen: dict[int, float] = {}
    for record in read_all(stack.kafka, stack.topics.rollouts, timeout_s=120.0):
        event = decode(record.value, events_pb2.RolloutEvent)
        version = int(event.policy_version)
        seen = event.created_at.ToDatetime(tzinfo=UTC).timestamp()
        first_seen[version] = min(first_seen.get(version, seen), seen)
    latencies = sorted(
        first_seen[version] - created
        for version, created in published.items()
        if version in first_seen and version > 0
    )

    def quantile(q: float) -> float | None:
        return float(np.quantile(latencies, q)) if latencies else None

    return {
        "versions_published": len(published),
        "versions_sampled": sum(1 for version in published if version in first_seen),
        "latency_seconds_p50": quantile(0.5),
        "latency_seconds_p90": quantile(0.9),
        "latency_seconds_max": max(latencies) if latencies else None,
        "bytes_per_adapter_update": int(np.median(sizes["adapter"])) if sizes["adapter"] else None,
        "bytes_per_full_update": int(np.median(sizes["full"])) if sizes["full"] else None,
    }
