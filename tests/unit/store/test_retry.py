"""RetryPolicy: exponential backoff with full jitter, a recording sleep, a flaky operation."""

from __future__ import annotations

import pytest

from hybridrl.config.object_store import RetrySettings
from hybridrl.store import ObjectStoreUnavailable, RetryPolicy


class FlakyOperation:
    """Fails with ``error`` on its first ``failures`` calls, then returns ``"done"``."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "done"


def transient_if_connection_error(error: BaseException) -> bool:
    return isinstance(error, ConnectionError)


def policy(attempts: int, sleeps: list[float], jitter: float = 0.5) -> RetryPolicy:
    return RetryPolicy(
        attempts=attempts,
        initial_backoff=0.5,
        max_backoff=3.0,
        sleep=sleeps.append,
        jitter=lambda: jitter,
    )


def test_backoff_bounds_double_from_initial_up_to_the_cap() -> None:
    assert list(policy(6, []).backoff_bounds()) == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_many_attempts_keep_the_cap_without_overflow() -> None:
    bounds = list(
        RetryPolicy(attempts=2000, initial_backoff=1.0, max_backoff=60.0).backoff_bounds()
    )
    assert len(bounds) == 1999
    assert bounds[:8] == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    assert bounds[-1] == 60.0


def test_transient_failures_are_retried_with_jittered_backoff_until_success() -> None:
    sleeps: list[float] = []
    operation = FlakyOperation(failures=2, error=ConnectionError("refused"))
    result = policy(5, sleeps).call(
        operation, description="reading x", is_transient=transient_if_connection_error
    )
    assert result == "done"
    assert operation.calls == 3
    # jitter 0.5 times the bounds 0.5 and 1.0
    assert sleeps == [0.25, 0.5]


def test_exhausted_retries_raise_object_store_unavailable_from_the_last_error() -> None:
    sleeps: list[float] = []
    last_error = ConnectionError("still refused")
    operation = FlakyOperation(failures=10, error=last_error)
    with pytest.raises(ObjectStoreUnavailable) as caught:
        policy(4, sleeps, jitter=1.0).call(
            operation, description="reading x", is_transient=transient_if_connection_error
        )
    assert operation.calls == 4
    assert sleeps == [0.5, 1.0, 2.0]
    assert caught.value.attempts == 4
    assert caught.value.__cause__ is last_error
    assert str(caught.value) == (
        "object store unavailable: reading x failed 4 time(s); "
        "last error: ConnectionError: still refused"
    )


def test_a_permanent_failure_is_raised_at_once_without_sleeping() -> None:
    sleeps: list[float] = []
    operation = FlakyOperation(failures=1, error=PermissionError("denied"))
    with pytest.raises(PermissionError, match="denied"):
        policy(5, sleeps).call(
            operation, description="reading x", is_transient=transient_if_connection_error
        )
    assert operation.calls == 1
    assert sleeps == []


def test_one_attempt_means_no_retry() -> None:
    sleeps: list[float] = []
    operation = FlakyOperation(failures=1, error=ConnectionError("refused"))
    with pytest.raises(ObjectStoreUnavailable):
        policy(1, sleeps).call(
            operation, description="reading x", is_transient=transient_if_connection_error
        )
    assert operation.calls == 1
    assert sleeps == []


def test_zero_jitter_retries_immediately() -> None:
    sleeps: list[float] = []
    operation = FlakyOperation(failures=2, error=ConnectionError("refused"))
    policy(3, sleeps, jitter=0.0).call(
        operation, description="x", is_transient=transient_if_connection_error
    )
    assert sleeps == [0.0, 0.0]


@pytest.mark.parametrize(
    ("attempts", "initial", "maximum", "message"),
    [
        (0, 0.1, 1.0, "attempts"),
        (3, 0.0, 1.0, "initial_backoff"),
        (3, 2.0, 1.0, "max_backoff"),
    ],
)
def test_bad_policy_parameters_are_refused(
    attempts: int, initial: float, maximum: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        RetryPolicy(attempts=attempts, initial_backoff=initial, max_backoff=maximum)


def test_policy_from_settings_takes_attempts_and_backoffs() -> None:
    sleeps: list[float] = []
    built = RetryPolicy.from_settings(
        RetrySettings(attempts=3, initial_backoff_seconds=0.25, max_backoff_seconds=0.4),
        sleep=sleeps.append,
        jitter=lambda: 1.0,
    )
    assert (built.attempts, built.initial_backoff, built.max_backoff) == (3, 0.25, 0.4)
    with pytest.raises(ObjectStoreUnavailable):
        built.call(
            FlakyOperation(failures=5, error=ConnectionError("x")),
            description="x",
            is_transient=transient_if_connection_error,
        )
    assert sleeps == [0.25, 0.4]


def test_default_jitter_stays_within_the_backoff_bound() -> None:
    sleeps: list[float] = []
    default_jitter = RetryPolicy(
        attempts=50, initial_backoff=1.0, max_backoff=1.0, sleep=sleeps.append
    )
    with pytest.raises(ObjectStoreUnavailable):
        default_jitter.call(
            FlakyOperation(failures=100, error=ConnectionError("x")),
            description="x",
            is_transient=transient_if_connection_error,
        )
    assert len(sleeps) == 49
    assert all(0.0 <= delay < 1.0 for delay in sleeps)
    # full jitter draws, it does not wait the bound every time
    assert len(set(sleeps)) > 1
