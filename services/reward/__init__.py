"""The reward service: rollouts in, scored rollouts out, gRPC ``Score`` for outside programs.

A thin adapter over ``hybridrl.rewards.scoring.HybridScorer`` (eq. 7): ``messages`` translates
protobuf messages to scoring items and back, ``worker`` consumes ``hybridrl.rollouts`` and
produces ``hybridrl.scored``, ``servicer`` serves ``RewardService`` (``Score``, ``ScoreBatch``),
``reward_model_source`` loads the optional reward model, and ``main`` builds and runs it all
(``python -m hybridrl serve reward --config FILE``).
"""
