"""learner_command: torchrun and the DeepSpeed launcher start `hybridrl serve learner` from the
PET_* variables the training operator sets; the real launchers run them here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hybridrl.k8s import learner_command
from hybridrl.local.child_process import free_port


def test_torchrun_reads_the_job_shape_from_the_environment() -> None:
    assert learner_command("torchrun", "/etc/hybridrl/learner.yaml") == [
        "torchrun",
        "--module",
        "hybridrl",
        "serve",
        "learner",
        "--config",
        "/etc/hybridrl/learner.yaml",
    ]


def test_deepspeed_script_is_valid_shell_with_the_flags_deepspeed_needs() -> None:
    shell, flag, script = learner_command("deepspeed", "/etc/x/learner.yaml", "/tmp/x/hosts")
    assert (shell, flag) == ("/bin/sh", "-c")
    assert subprocess.run([shell, "-n", "-c", script], check=False).returncode == 0
    for needed in (
        "--no_ssh",
        "--no_local_rank",
        '--hostfile="$hostfile"',
        "hostfile=/tmp/x/hosts",
    ):
        assert needed in script
    assert script.rstrip().endswith("--module hybridrl serve learner --config /etc/x/learner.yaml")
    # Kubernetes would expand $(NAME) of a defined variable in a container command.
    assert "$(PET" not in script


@pytest.mark.parametrize("path", ["learner.yaml", "/etc/my config.yaml", "/etc/$(HOME).yaml"])
def test_paths_a_shell_would_split_or_expand_are_rejected(path: str) -> None:
    with pytest.raises(ValueError, match="absolute path"):
        learner_command("deepspeed", path)


def test_an_unknown_launcher_is_rejected() -> None:
    with pytest.raises(ValueError, match="torchrun"):
        learner_command("mpirun")


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize(
    ("launcher", "nodes", "node_rank"),
    [("torchrun", 1, 0), ("deepspeed", 2, 1)],
)
def test_launcher_starts_hybridrl_serve_learner_on_the_pods_config(
    launcher: str, nodes: int, node_rank: int, tmp_path: Path
) -> None:
    # A config the learner's settings reject: the rank gets as far as reading it, and stops
    # there, before any rendezvous with ranks that do not exist here.
    config = tmp_path / "learner.yaml"
    config.write_text("not_a_learner_setting: 1\n")
    hostfile = tmp_path / "deepspeed" / "hostfile"
    environment = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "OMP_WAIT_POLICY": "PASSIVE",
        "DS_ACCELERATOR": "cpu",
        "PET_NNODES": str(nodes),
        "PET_NODE_RANK": str(node_rank),
        "PET_NPROC_PER_NODE": "1",
        "PET_MASTER_ADDR": "127.0.0.1",
        "PET_MASTER_PORT": str(free_port()),
    }
    completed = subprocess.run(
        learner_command(launcher, str(config), str(hostfile)),
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode != 0
    assert "not_a_learner_setting" in output, output[-3000:]
    assert "Extra inputs are not permitted" in output
    assert "No such option" not in output
    if launcher == "deepspeed":
        assert hostfile.read_text() == "node-0 slots=1\nnode-1 slots=1\n"
