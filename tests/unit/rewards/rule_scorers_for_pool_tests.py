"""Scorers that RuleScorerPool's tests inject into its workers: hang, crash, raise, or score.

Imported by its own name (the tests put this folder on ``sys.path``) so that worker processes
can unpickle the scorer by reference.
"""

import os
import threading

from hybridrl.config.rewards import RuleRewardConfig
from hybridrl.rewards.rule import RuleResult, score_rule

HANG = "hang forever"
CRASH = "crash the worker"
RAISE = "raise an error"


def scripted_scorer(response: str, gold: str, config: RuleRewardConfig) -> RuleResult:
    """Misbehave on the scripted responses, score every other one with ``score_rule``."""
    if response == HANG:
        threading.Event().wait()  # never set: stands for a sympy call that never returns
    if response == CRASH:
        os._exit(3)
    if response == RAISE:
        raise RuntimeError("scripted failure")
    return score_rule(response, gold, config)
