"""hybridrl: hybrid MPO + GRPO reinforcement learning for vision-language models.

The core library. ``hybridrl.algo`` holds the paper's math as pure functions,
``hybridrl.rewards`` the hybrid reward, ``hybridrl.models`` the composable
vision-language model; transports (Kafka, gRPC, S3) live in ``hybridrl.bus``,
``hybridrl.store`` and the services, never in the math.
"""

__version__ = "0.1.0"
