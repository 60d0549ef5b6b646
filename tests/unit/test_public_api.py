"""The names other components, the docs and outside users rely on."""

import subprocess
import sys

import torch

import hybridrl.algo as algo
import hybridrl.rewards as rewards


def test_algo_exports_the_documented_functions() -> None:
    for name in (
        "group_advantages",
        "grpo_loss",
        "dpo_loss",
        "bco_loss",
        "nll_loss",
        "mpo_loss",
        "SelectiveSampleBuffer",
        "build_mpo_pairs",
    ):
        assert callable(getattr(algo, name)), name


def test_rewards_exports_score_a_correct_well_formed_response() -> None:
    response = "<think>2 plus 3</think> \\boxed{5}"
    assert rewards.rule_reward(response, "5") == 1.0
    assert rewards.rule_reward(response, "6") == 0.0
    assert rewards.format_reward(response) == 1.0
    assert rewards.hybrid_reward(1.0, 0.5, 1.0) == 2.5


def test_readme_example_gives_the_documented_mask() -> None:
    result = algo.group_advantages(torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0]]))
    assert result.effective_mask.tolist() == [True, False]
    assert torch.equal(result.advantages[1], torch.zeros(4))


def test_cli_runs_as_a_module_and_checks_an_answer() -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "hybridrl",
            "reward",
            "check",
            "<think>x</think> \\boxed{7}",
            "--gold",
            "7",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "r_rule" in completed.stdout
    assert "1.000" in completed.stdout


def test_cli_advantages_prints_eq6_values() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "hybridrl", "algo", "advantages", "1", "0", "0", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    # mean 0.5, unbiased std 0.5774 -> +-0.8660
    assert "+0.8660" in completed.stdout
    assert "-0.8660" in completed.stdout
