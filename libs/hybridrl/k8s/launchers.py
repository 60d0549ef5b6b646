"""The command a learner pod runs: torchrun or the DeepSpeed launcher around ``hybridrl serve``.

Both launchers start ``nproc_per_node`` ranks of ``hybridrl serve learner`` in one pod and read
the job's shape from the ``PET_*`` variables that the Kubeflow training operator (PyTorchJob
with ``spec.nprocPerNode``) and Kubeflow Trainer's torch policy (TrainJob) set on every pod:
``PET_NNODES``, ``PET_NPROC_PER_NODE``, ``PET_NODE_RANK``, ``PET_MASTER_ADDR``,
``PET_MASTER_PORT``.

torchrun reads those variables itself. The DeepSpeed launcher (0.19) needs two things more:
``--no_local_rank``, or it puts ``--local_rank=N`` before the module's own arguments, which
``hybridrl`` rejects; and, for more than one node, a hostfile with one line per node, or it
stops with "Num nodes is >1 but no extra nodes available via hostfile". Each pod writes that
hostfile to /tmp (an emptyDir) before it execs the launcher; with ``--no_ssh`` the host names
in it only number the nodes.
"""

from __future__ import annotations

from typing import Final, Literal

Launcher = Literal["torchrun", "deepspeed"]

LEARNER_CONFIG_PATH: Final[str] = "/etc/hybridrl/learner.yaml"
"""Where the release's ConfigMap puts the learner's settings in the pod."""

DEEPSPEED_HOSTFILE: Final[str] = "/tmp/hybridrl/hostfile"

# Kubernetes expands only $(NAME) of a defined variable in a container's command; the shell's
# $((...)) arithmetic below has no such name and reaches the shell unchanged.
_DEEPSPEED_SCRIPT: Final[str] = """\
set -eu
hostfile={hostfile}
mkdir -p "${{hostfile%/*}}"
: > "$hostfile"
node=0
while [ "$node" -lt "$PET_NNODES" ]; do
  echo "node-$node slots=$PET_NPROC_PER_NODE" >> "$hostfile"
  node=$((node + 1))
done
exec deepspeed --hostfile="$hostfile" --no_ssh \\
  --num_nodes="$PET_NNODES" --node_rank="$PET_NODE_RANK" \\
  --master_addr="$PET_MASTER_ADDR" --master_port="$PET_MASTER_PORT" \\
  --num_gpus="$PET_NPROC_PER_NODE" --no_local_rank \\
  --module hybridrl serve learner --config {config_path}
"""


def learner_command(
    launcher: Launcher | str,
    config_path: str = LEARNER_CONFIG_PATH,
    hostfile: str = DEEPSPEED_HOSTFILE,
) -> list[str]:
    """The container command that starts this pod's learner ranks with ``launcher``.

    ``hostfile`` is where the DeepSpeed launcher's hostfile is written (torchrun needs none).

    Raises:
        ValueError: for an unknown launcher, or a path that is relative or that a shell would
            split or expand.
    """
    for path in (config_path, hostfile):
        if not path.startswith("/") or any(c.isspace() or c in "'\"$`\\" for c in path):
            raise ValueError(
                f"expected an absolute path without spaces or shell characters, got {path!r}"
            )
    if launcher == "torchrun":
        return ["torchrun", "--module", "hybridrl", "serve", "learner", "--config", config_path]
    if launcher == "deepspeed":
        return [
            "/bin/sh",
            "-c",
            _DEEPSPEED_SCRIPT.format(hostfile=hostfile, config_path=config_path),
        ]
    raise ValueError(f"launcher must be 'torchrun' or 'deepspeed', got {launcher!r}")
