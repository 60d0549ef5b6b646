"""Entry point of one learner rank: what a PyTorchJob's containers run.

``serve`` is what ``hybridrl serve learner --config FILE`` calls, on every rank, under a
launcher that sets ``RANK``/``WORLD_SIZE``/``MASTER_ADDR``/``MASTER_PORT``::

    torchrun --nproc-per-node 2 -m hybridrl serve learner --config learner.yaml
    deepspeed --num_gpus 2 --no_local_rank --module hybridrl serve learner --config learner.yaml

(``--no_local_rank``: otherwise DeepSpeed's launcher puts ``--local_rank=N`` before the
command's own arguments; ranks read ``LOCAL_RANK`` from the environment. In a pod,
``hybridrl.k8s.launchers.learner_command`` builds the multi-node form.)

It joins the process group, builds the ``DistributedLearner``, resumes from the newest
checkpoint, and on rank 0 starts the ``LearnerService`` status server (with health checking:
SERVING once training runs) and the policy producer. SIGTERM or SIGINT stops the run at the
next step boundary, after a checkpoint; the process then exits 0, as at the end of the run.
Without a launcher it runs as a single rank.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import torch.distributed as dist
from hybridrl_services.common.grpc_server import ServiceServer, stop_on_signals
from hybridrl_services.learner.distributed import RankInfo
from hybridrl_services.learner.settings import LearnerSettings
from hybridrl_services.learner.status import SERVICE_NAME, LearnerProgress, LearnerServicer

from hybridrl.bus.producer import EventProducer
from hybridrl.local.child_process import free_port
from hybridrl.proto.v1 import learner_pb2_grpc
from hybridrl.rollout.policy_updates import TRAIN_MODE_OF

logger = logging.getLogger(__name__)


def _single_rank_environment() -> None:
    # torch.distributed reads the rendezvous from the environment; a run without a launcher
    # is a job of one.
    for name, value in (
        ("RANK", "0"),
        ("LOCAL_RANK", "0"),
        ("WORLD_SIZE", "1"),
        ("MASTER_ADDR", "127.0.0.1"),
    ):
        os.environ.setdefault(name, value)
    os.environ.setdefault("MASTER_PORT", str(free_port()))


def serve(config_file: Path | None = None, **overrides: Any) -> None:
    """Run this rank of the learner until the run ends or SIGTERM/SIGINT."""
    settings = LearnerSettings.load(config_file, **overrides)
    if settings.deepspeed.accelerator is not None:
        # DeepSpeed picks its accelerator from this variable when it is first imported.
        os.environ["DS_ACCELERATOR"] = settings.deepspeed.accelerator
    _single_rank_environment()
    import deepspeed  # type: ignore[import-untyped]
    from hybridrl_services.learner.trainer import DistributedLearner

    deepspeed.init_distributed(dist_backend=settings.deepspeed.backend)
    rank = RankInfo.from_environment()
    stop = threading.Event()
    stop_on_signals(stop.set)
    progress = server = producer = None
    if rank.is_main:
        progress = LearnerProgress(TRAIN_MODE_OF[settings.run.freeze_mode])
        servicer = LearnerServicer(progress)
        server = ServiceServer(
            settings.grpc,
            [SERVICE_NAME],
            lambda grpc_server: learner_pb2_grpc.add_LearnerServiceServicer_to_server(
                servicer, grpc_server
            ),
        )
        server.start()
        producer = EventProducer(settings.kafka)
    learner = None
    try:
        learner = DistributedLearner(
            settings, rank, progress=progress, producer=producer, stop=stop
        )
        learner.start()
        if server is not None:
            server.set_serving(True)
        learner.run()
        logger.info("learner rank %d finished at step %d", rank.rank, learner.step)
    finally:
        if learner is not None:
            learner.close()
        if producer is not None:
            producer.close(10.0)
        if server is not None:
            server.stop(settings.grpc.grace_seconds)
        if dist.is_initialized():
            dist.destroy_process_group()
