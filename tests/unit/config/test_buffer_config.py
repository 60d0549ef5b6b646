"""SSBConfig and MPOPairConfig: defaults, validation, immutability."""

import pytest
from pydantic import BaseModel, ValidationError

from hybridrl.config.buffer import EvictionPolicy, MPOPairConfig, SSBConfig


def test_ssb_defaults() -> None:
    config = SSBConfig()
    assert config.model_dump() == {
        "enabled": True,
        "capacity": 100_000,
        "alpha": 1.0,
        "priority_epsilon": 1e-6,
        "advantage_tolerance": 1e-6,
        "max_staleness": 4,
        "buffered_fraction": 0.0,
        "eviction": EvictionPolicy.OLDEST,
    }


def test_mpo_pair_defaults_follow_the_paper_threshold() -> None:
    assert MPOPairConfig().model_dump() == {"threshold": 15.0, "max_pairs_per_group": 1}
    assert MPOPairConfig(max_pairs_per_group=None).max_pairs_per_group is None


def test_eviction_parses_from_its_yaml_string() -> None:
    assert SSBConfig.model_validate({"eviction": "lowest_priority"}).eviction is (
        EvictionPolicy.LOWEST_PRIORITY
    )


@pytest.mark.parametrize(
    ("model", "field", "value"),
    [
        (SSBConfig, "capacity", 0),
        (SSBConfig, "alpha", -0.1),
        (SSBConfig, "priority_epsilon", -1e-9),
        (SSBConfig, "advantage_tolerance", -1.0),
        (SSBConfig, "max_staleness", -1),
        (SSBConfig, "buffered_fraction", 1.01),
        (SSBConfig, "buffered_fraction", -0.01),
        (SSBConfig, "eviction", "random"),
        (MPOPairConfig, "threshold", 0.0),
        (MPOPairConfig, "max_pairs_per_group", 0),
    ],
)
def test_out_of_range_values_are_rejected(
    model: type[BaseModel], field: str, value: object
) -> None:
    with pytest.raises(ValidationError, match=field):
        model.model_validate({field: value})


@pytest.mark.parametrize("model", [SSBConfig, MPOPairConfig])
def test_unknown_keys_are_rejected_and_instances_are_frozen(model: type[BaseModel]) -> None:
    with pytest.raises(ValidationError, match="extra"):
        model.model_validate({"capacityy": 5})
    instance = model()
    first_field = next(iter(model.model_fields))
    with pytest.raises(ValidationError, match="frozen"):
        setattr(instance, first_field, getattr(instance, first_field))


@pytest.mark.parametrize("model", [SSBConfig, MPOPairConfig])
def test_every_field_is_documented(model: type[BaseModel]) -> None:
    for name, info in model.model_fields.items():
        assert info.description is not None, name
        assert len(info.description) > 20, name
