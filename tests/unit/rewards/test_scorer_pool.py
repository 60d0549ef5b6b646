"""RuleScorerPool: worker processes, per-item deadlines, replacement of dead workers, order."""

import importlib
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from hybridrl.config.rewards import ScorerPoolConfig
from hybridrl.rewards.rule import RuleResult, RuleStatus, score_rule
from hybridrl.rewards.scorer_pool import RuleScorerPool

MIXED_PAIRS = [
    (r"<think>compute</think>so \boxed{\frac{1}{2}}", "0.5"),
    (r"\boxed{2\sqrt{2}}", r"\sqrt{8}"),
    ("The answer is 41.", "42"),
    ("正确选项是C", "C"),
    ("I give up.", "7"),
    (r"\boxed{(x+1)^2}", "x^2+2x+1"),
    (r"\boxed{\{1,3\}}", r"\{1,2\}"),
    ("The total is \\boxed{1,000}", "1000"),
]
MIXED_EXPECTED = [
    (1.0, r"\frac{1}{2}", RuleStatus.OK),
    (1.0, r"2\sqrt{2}", RuleStatus.OK),
    (0.0, "41", RuleStatus.OK),
    (1.0, "C", RuleStatus.OK),
    (0.0, None, RuleStatus.NO_ANSWER),
    (1.0, "(x+1)^2", RuleStatus.OK),
    (0.0, r"\{1,3\}", RuleStatus.OK),
    (1.0, "1,000", RuleStatus.OK),
]


def summary(results: list[RuleResult]) -> list[tuple[float, str | None, RuleStatus]]:
    return [(result.reward, result.answer, result.status) for result in results]


@pytest.fixture(scope="module")
def pool() -> Iterator[RuleScorerPool]:
    with RuleScorerPool(ScorerPoolConfig(workers=2)) as started:
        yield started


@pytest.fixture(scope="module")
def scripted() -> Iterator[tuple[RuleScorerPool, ModuleType]]:
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(Path(__file__).parent))
        scorers = importlib.import_module("rule_scorers_for_pool_tests")
        config = ScorerPoolConfig(workers=2, item_deadline_seconds=3.0)
        with RuleScorerPool(config, scorer=scorers.scripted_scorer) as started:
            yield started, scorers


def test_results_come_back_in_input_order(pool: RuleScorerPool) -> None:
    assert summary(pool.score(MIXED_PAIRS)) == MIXED_EXPECTED


def test_pool_scores_like_score_rule_in_process(pool: RuleScorerPool) -> None:
    pairs = MIXED_PAIRS * 5
    assert pool.score(pairs) == [score_rule(response, gold) for response, gold in pairs]


def test_pathological_inputs_score_zero_without_timing_out(pool: RuleScorerPool) -> None:
    pairs = [
        (r"\boxed{9^{9^{9^9}}}", "3"),
        ("{" * 1_000_000, "3"),
        (r"\boxed{" + "7" * 100_000 + "}", "3"),
        (r"\boxed{(10^{6})!}", "3"),
        (r"\boxed{4}", "4"),
    ]
    statuses = [(result.reward, result.status) for result in pool.score(pairs)]
    assert statuses == [
        (0.0, RuleStatus.REJECTED),
        (0.0, RuleStatus.NO_ANSWER),
        (0.0, RuleStatus.NO_ANSWER),
        (0.0, RuleStatus.REJECTED),
        (1.0, RuleStatus.OK),
    ]


def test_hanging_item_times_out_and_the_others_keep_their_results(
    scripted: tuple[RuleScorerPool, ModuleType],
) -> None:
    pool, scorers = scripted
    replaced_before = pool.workers_replaced
    pairs = [*MIXED_PAIRS[:3], (scorers.HANG, "1"), *MIXED_PAIRS[3:]]
    results = pool.score(pairs)
    assert results[3] == RuleResult(0.0, None, RuleStatus.TIMEOUT, "deadline exceeded")
    assert summary(results[:3] + results[4:]) == MIXED_EXPECTED
    assert pool.workers_replaced == replaced_before + 1
    # The replacement worker serves the next batch.
    assert summary(pool.score(MIXED_PAIRS)) == MIXED_EXPECTED


def test_crashed_worker_scores_an_error_and_is_replaced(
    scripted: tuple[RuleScorerPool, ModuleType],
) -> None:
    pool, scorers = scripted
    replaced_before = pool.workers_replaced
    results = pool.score([(scorers.CRASH, "1"), (r"\boxed{5}", "5")])
    assert results == [
        RuleResult(0.0, None, RuleStatus.ERROR, "scorer worker died"),
        RuleResult(1.0, "5", RuleStatus.OK),
    ]
    assert pool.workers_replaced == replaced_before + 1


def test_scorer_exception_is_an_error_result_and_keeps_the_worker(
    scripted: tuple[RuleScorerPool, ModuleType],
) -> None:
    pool, scorers = scripted
    replaced_before = pool.workers_replaced
    results = pool.score([(scorers.RAISE, "1"), (r"\boxed{5}", "6")])
    assert results == [
        RuleResult(0.0, None, RuleStatus.ERROR, "RuntimeError: scripted failure"),
        RuleResult(0.0, "5", RuleStatus.OK),
    ]
    assert pool.workers_replaced == replaced_before


def test_empty_gold_is_an_error_result(pool: RuleScorerPool) -> None:
    (result,) = pool.score([(r"\boxed{1}", " ")])
    assert (result.reward, result.status) == (0.0, RuleStatus.ERROR)
    assert result.detail == "ValueError: gold answer is empty"


def test_concurrent_callers_each_get_their_own_results(pool: RuleScorerPool) -> None:
    outputs: dict[int, list[RuleResult]] = {}

    def score_in_thread(key: int) -> None:
        outputs[key] = pool.score([(rf"\boxed{{{key}}}", str(key))] * 10)

    threads = [threading.Thread(target=score_in_thread, args=(key,)) for key in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for key in range(4):
        assert summary(outputs[key]) == [(1.0, str(key), RuleStatus.OK)] * 10


def test_empty_batch_gives_no_results(pool: RuleScorerPool) -> None:
    assert pool.score([]) == []


@pytest.mark.parametrize("bad", [[("only response",)], [(1, "2")], ["ab"]])
def test_malformed_pairs_raise(pool: RuleScorerPool, bad: list[object]) -> None:
    with pytest.raises(ValueError, match="pair 0"):
        pool.score(bad)  # type: ignore[arg-type]


def test_closed_pool_refuses_work() -> None:
    pool = RuleScorerPool(ScorerPoolConfig(workers=1))
    with pool:
        assert summary(pool.score([(r"\boxed{3}", "3")])) == [(1.0, "3", RuleStatus.OK)]
    with pytest.raises(RuntimeError, match="closed"):
        pool.score([(r"\boxed{3}", "3")])


def test_spawn_start_method_scores_too() -> None:
    with RuleScorerPool(ScorerPoolConfig(workers=1, start_method="spawn")) as pool:
        assert summary(pool.score(MIXED_PAIRS)) == MIXED_EXPECTED


def test_worker_that_cannot_start_in_time_closes_the_pool() -> None:
    pool = RuleScorerPool(ScorerPoolConfig(workers=1, start_timeout_seconds=0.001))
    with pytest.raises(RuntimeError, match="failed to start"):
        pool.start()
    with pytest.raises(RuntimeError, match="closed"):
        pool.score([(r"\boxed{3}", "3")])


def test_unpicklable_scorer_is_rejected() -> None:
    with pytest.raises(ValueError, match="picklable"):
        RuleScorerPool(scorer=lambda response, gold, config: score_rule(response, gold, config))
