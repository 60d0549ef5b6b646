"""The learner's settings: a YAML file, the environment over it, and where the run's files go."""

from pathlib import Path

import pytest
from hybridrl_services.learner.settings import LearnerSettings
from pydantic import ValidationError


def test_a_file_and_the_environment_make_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "learner.yaml"
    path.write_text(
        "run_name: r1v2-tiny\n"
        "object_store: {endpoint: 'minio:9000', bucket: runs-bucket}\n"
        "ssb_address: 'ssb:50053'\n"
        "run: {grpo_steps: 100, mpo_steps: 10}\n"
    )
    monkeypatch.setenv("HYBRIDRL_LEARNER_RUN__GRPO_STEPS", "500")
    monkeypatch.setenv("HYBRIDRL_LEARNER_DEEPSPEED__ZERO_STAGE", "1")
    settings = LearnerSettings.load(path)
    assert (settings.run.grpo_steps, settings.run.mpo_steps) == (500, 10)
    assert settings.deepspeed.zero_stage == 1
    assert settings.run_uri == "s3://runs-bucket/runs/r1v2-tiny"
    assert settings.resolved_claim_check_uri == "s3://runs-bucket/claim-checks/rollouts"
    assert settings.topics.policy == "hybridrl.policy"


def test_an_explicit_location_wins_and_one_is_required() -> None:
    settings = LearnerSettings(checkpoints={"uri": "/data/run-7/"})
    assert settings.run_uri == "/data/run-7"
    assert settings.resolved_claim_check_uri is None
    with pytest.raises(ValidationError, match="must checkpoint"):
        LearnerSettings()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"deepspeed": {"zero_stage": 3}}, "less than or equal to 2"),
        ({"run_name": "../escape"}, "should match pattern"),
        ({"run": {"grpo_steps": -1}}, "greater than or equal to 0"),
        ({"unknown": 1}, "Extra inputs are not permitted"),
    ],
)
def test_bad_settings_are_refused(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        LearnerSettings(checkpoints={"uri": "/data/run"}, **values)  # type: ignore[arg-type]
