"""The rollout service: prompts in, groups of sampled responses out, gRPC ``Generate`` beside.

A thin adapter over ``hybridrl.rollout``: ``worker`` wires the Kafka prompt loop and the
policy-topic watcher, ``servicer`` the gRPC ``RolloutService``, ``main`` builds and runs it all
(``python -m hybridrl serve rollout --config FILE``).
"""
