"""Kubernetes objects of the platform, built as plain data: the learner's PyTorchJob.

The learner runs on a cluster as a Kubeflow PyTorchJob (Master 1 + Worker N). This package
builds that job as a ``KubeflowOrgV1PyTorchJob`` from a few inputs (image, release, workers,
GPUs, launcher), so that ``hybridrl learner submit``, the stand-alone manifest in ``k8s/`` and
the tests agree on one definition. Nothing here talks to a cluster.
"""

from hybridrl.k8s.launchers import LEARNER_CONFIG_PATH, Launcher, learner_command
from hybridrl.k8s.learner_job_spec import (
    KafkaSaslSecret,
    KafkaTlsSecret,
    LearnerJobSpec,
    ObjectStoreSecret,
)
from hybridrl.k8s.pytorchjob import (
    build_learner_pytorchjob,
    pytorchjob_from_dict,
    pytorchjob_to_dict,
    pytorchjob_to_yaml,
)

__all__ = [
    "LEARNER_CONFIG_PATH",
    "KafkaSaslSecret",
    "KafkaTlsSecret",
    "Launcher",
    "LearnerJobSpec",
    "ObjectStoreSecret",
    "build_learner_pytorchjob",
    "learner_command",
    "pytorchjob_from_dict",
    "pytorchjob_to_dict",
    "pytorchjob_to_yaml",
]
