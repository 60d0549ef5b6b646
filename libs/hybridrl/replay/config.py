"""Settings of the SSB store's own machinery: group assembly and the serving queues.

The algorithm settings come from elsewhere (``SSBConfig`` and ``MPOPairConfig`` in
``hybridrl.config.buffer``, the advantage settings of eq. 6 in ``GRPOConfig``); these two models
cover what only a streaming store needs: when a partial group is given up, how much memory the
de-duplication and the queues may take, and how many served batches are kept for retries.
Frozen and ``extra="forbid"``, like every configuration model of the project.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class GroupAssemblyConfig(BaseModel):
    """How scored responses become complete groups of N (the unit of eq. 6)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    expiry_policy_versions: int = Field(
        default=2,
        ge=0,
        description=(
            "A partial group expires once a scored event of a policy more than this many "
            "versions newer has arrived: its missing responses were lost upstream."
        ),
    )
    expiry_seconds: float = Field(
        default=600.0,
        gt=0.0,
        description=(
            "A partial group expires once events stamped this much later than its first "
            "response have arrived. Measured on the records' timestamps (event time), not on "
            "the clock of the store, so a replay after a restart expires the same groups."
        ),
    )
    closed_group_memory: int = Field(
        default=100_000,
        ge=1,
        description=(
            "Ids of this many completed or expired groups are remembered (least recently "
            "closed forgotten first), so that a redelivered response of such a group is "
            "dropped instead of opening the group again. About 100 bytes per id."
        ),
    )


class SampleStoreConfig(BaseModel):
    """Queues, retry memory and sampling seed of one SSB shard."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fresh_capacity: int = Field(
        default=100_000,
        ge=1,
        description=(
            "Most fresh samples waiting for a GRPO batch; beyond it the oldest are dropped "
            "and counted (a learner that only asks for MPO pairs never drains them)."
        ),
    )
    pair_capacity: int = Field(
        default=20_000,
        ge=1,
        description="Most MPO pairs waiting for a batch; beyond it the oldest are dropped.",
    )
    build_mpo_pairs: bool = Field(
        default=True, description="Build MPO pairs from completed groups at all."
    )
    effective_window_groups: int = Field(
        default=1_000,
        ge=1,
        description="Completed groups over which the sliding effective-sample ratio is taken.",
    )
    batches_kept_per_rank: int = Field(
        default=4,
        ge=1,
        description=(
            "Served batches remembered per learner rank and batch kind, so that a retried "
            "Sample for one of these steps gets the same batch again."
        ),
    )
    sampling_seed: int = Field(
        default=0,
        ge=0,
        description=(
            "Seeds the buffer draws; each batch uses a generator seeded by (seed, step, rank), "
            "so draws do not depend on the order in which ranks call."
        ),
    )
