"""Deterministic ids and ScoredResponse validation."""

import math
import pickle
from typing import Any

import pytest

from hybridrl.algo.samples import ScoredResponse, group_id_for, sample_id_for


def test_ids_are_readable_and_deterministic() -> None:
    assert group_id_for("geo-17", 3) == "geo-17/v3"
    assert sample_id_for("geo-17", 3, 5) == "geo-17/v3/5"
    assert sample_id_for("a/b", 0, 0) == "a/b/v0/0"  # a "/" in the prompt id stays unambiguous


def test_ids_differ_when_any_part_differs() -> None:
    produced = {sample_id_for(p, v, i) for p in ("a", "a/v1") for v in (0, 1) for i in (0, 1)}
    assert len(produced) == 8


@pytest.mark.parametrize(
    ("prompt_id", "version", "index", "message"),
    [("", 0, 0, "prompt_id"), ("p", -1, 0, "policy_version"), ("p", 0, -1, "sample_index")],
)
def test_bad_id_parts_raise_value_error(
    prompt_id: str, version: int, index: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        sample_id_for(prompt_id, version, index)


def test_scored_response_is_frozen_and_picklable() -> None:
    record = ScoredResponse("p/v0/0", "p/v0", "p", 0, 1.5, payload={"tokens": [1, 2]})
    assert pickle.loads(pickle.dumps(record)) == record
    with pytest.raises(AttributeError):
        record.reward = 2.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"sample_id": ""}, "sample_id"),
        ({"group_id": ""}, "group_id"),
        ({"prompt_id": ""}, "prompt_id"),
        ({"policy_version": -1}, "policy_version"),
        ({"reward": math.nan}, "reward"),
    ],
)
def test_scored_response_rejects_invalid_fields(fields: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {
        "sample_id": "p/v0/0",
        "group_id": "p/v0",
        "prompt_id": "p",
        "policy_version": 0,
        "reward": 1.0,
        "payload": None,
    }
    with pytest.raises(ValueError, match=message):
        ScoredResponse(**{**values, **fields})
