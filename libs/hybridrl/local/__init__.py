"""The local runtime: a Kafka-protocol broker and an S3 server as child processes.

What the cluster provides (Kafka, MinIO) is started here on free loopback ports, so the same
services run on a laptop, in CI and in the tests.
"""

from hybridrl.local.broker import LocalKafkaBroker
from hybridrl.local.child_process import ChildProcess, free_port
from hybridrl.local.health import grpc_serving, wait_until
from hybridrl.local.object_server import LocalS3Server

__all__ = [
    "ChildProcess",
    "LocalKafkaBroker",
    "LocalS3Server",
    "free_port",
    "grpc_serving",
    "wait_until",
]
