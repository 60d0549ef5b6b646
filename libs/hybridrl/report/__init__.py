"""The run report: PNG plots and a JSON summary of a training run, from the files it wrote
(``metrics.jsonl`` from the learner, ``evaluations.jsonl`` from the run's driver). Used by
``hybridrl demo`` at the end of a run and by ``hybridrl report RUN_DIR``."""

from hybridrl.report.records import EvaluationRecord, RunRecords, StepRecord, load_run
from hybridrl.report.run_report import REPORT_FILES, write_report
from hybridrl.report.summary import RunComparison, RunSummary, compare_runs, summarize

__all__ = [
    "REPORT_FILES",
    "EvaluationRecord",
    "RunComparison",
    "RunRecords",
    "RunSummary",
    "StepRecord",
    "compare_runs",
    "load_run",
    "summarize",
    "write_report",
]
