"""Tables of the evals domain: one row per eval run, one per (case, repeat) result, and stored comparisons.

A run remembers what produced its numbers: `versions` holds the prompt hashes, the pinned models its aliases
resolved to and the configuration hash; `fingerprint` is the hash of suite + versions + options that lets an
interrupted run resume. `status` is `running` while it runs, then `finished`, `failed` (with `error`: why)
or `interrupted`; a failed or interrupted run resumes when the same suite runs again with the same versions.
A comparison (`eval_comparisons`: pairwise between two runs, or a regression replay against production
traces) keeps one row per pair in `eval_comparison_pairs`: the question, both answers, the judge's verdict
and reasoning for both orders of the position swap. Every stored text has been through the secret scrubber.
Times are Unix seconds (float). Migrations: 0003_evals.py, 0005_evals_comparisons.py (branch `evals`).
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from flywheel.store.schema import JSONDoc, metadata

eval_runs = Table(
    "eval_runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("suite", String(200), nullable=False),
    Column("suite_path", Text),
    Column("suite_hash", String(32), nullable=False),
    Column("fingerprint", String(32), nullable=False),
    Column("target", String(300), nullable=False),
    Column("model", String(200)),  # the model alias this run was forced to (model matrix), else null
    Column(
        "status", String(20), nullable=False, server_default="running"
    ),  # running|finished|failed|interrupted
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float),
    Column("repeat", Integer, nullable=False, server_default="1"),
    Column("threshold", Float, nullable=False),
    Column("cases_total", Integer, nullable=False, server_default="0"),
    Column("pass_rate", Float),
    Column("versions", JSONDoc),
    Column("summary", JSONDoc),
    Column("error", Text),  # why a failed run failed
    Index("ix_eval_runs_suite_started_at", "suite", "started_at"),
    Index("ix_eval_runs_fingerprint", "fingerprint"),
)

eval_results = Table(
    "eval_results",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), ForeignKey("eval_runs.id", ondelete="CASCADE"), nullable=False),
    Column("case_id", String(200), nullable=False),
    Column("repeat_index", Integer, nullable=False, server_default="0"),
    Column("passed", Boolean, nullable=False),
    Column("score", Float, nullable=False),
    Column("input", Text),
    Column("output", Text),
    Column("reference", Text),
    Column("vars", JSONDoc),
    Column("checks", JSONDoc),  # [CheckResult as dict, …] in the case's check order
    Column("error", Text),  # the target failed or timed out
    Column("latency_ms", Float),
    Column("cost_usd", Float),
    Column("trace_id", String(32)),
    Column("created_at", Float, nullable=False),
    Column("meta", JSONDoc),  # from the Answer: models, prompt_versions, usage, cache status, refusal
    UniqueConstraint("run_id", "case_id", "repeat_index", name="uq_eval_results_run_case_repeat"),
)

eval_comparisons = Table(
    "eval_comparisons",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("kind", String(20), nullable=False),  # pairwise | regression
    Column("a", String(200), nullable=False),  # label of side A (a run id prefix, or "current")
    Column("b", String(200), nullable=False),
    Column("run_a", String(32)),  # pairwise: the two eval runs compared
    Column("run_b", String(32)),
    Column("app", String(100)),  # regression: the app replayed
    Column("judge", String(200), nullable=False),
    Column("judge_model", String(300)),
    Column("created_at", Float, nullable=False),
    Column("summary", JSONDoc),  # the report without its pairs: counts, win rate, intervals, warnings
    Index("ix_eval_comparisons_created_at", "created_at"),
)

eval_comparison_pairs = Table(
    "eval_comparison_pairs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "comparison_id", String(32), ForeignKey("eval_comparisons.id", ondelete="CASCADE"), nullable=False
    ),
    Column("ordinal", Integer, nullable=False),
    Column("case_id", String(200), nullable=False),
    Column("question", Text),
    Column("reference", Text),
    Column("answer_a", Text),
    Column("answer_b", Text),
    Column("outcome", String(20), nullable=False),  # win | tie | loss (for A) | skipped | error
    Column("verdict_1", String(10)),  # order 1 (A shown first): A | B | tie
    Column("verdict_2", String(10)),  # order 2 (B shown first), as the judge labelled it
    Column("reason_1", Text),
    Column("reason_2", Text),
    Column("consistent", Boolean),
    Column("length_ratio", Float),
    Column("flagged", Boolean, nullable=False, server_default="0"),
    Column("error", Text),
    Column("judge_cost_usd", Float),
    Column("tenant", String(100)),
    Column("trace_id", String(32)),  # regression: the production trace replayed
    Column("replay_trace_id", String(32)),  # regression: the replay's own trace
    Index("ix_eval_comparison_pairs_comparison", "comparison_id", "ordinal"),
)

# One row per calibration of an LLM judge against human labels (flywheel.evals.calibration). `judge_key` is
# the hash of the criterion as written in the suite / flywheel.yaml, so the row is found from the check
# itself; `version` counts calibrations of that key from 1. `prompt` is the effective criterion the judge uses
# when the version is `adopted` (the criterion, then the few-shot examples). Migration:
# 0007_evals_calibration.py.
judge_calibrations = Table(
    "judge_calibrations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("judge_key", String(40), nullable=False),
    Column("check_name", String(300), nullable=False),  # how it was addressed: evals/qa.yaml#case, monitor:x
    Column("version", Integer, nullable=False),
    Column("base_criterion", Text, nullable=False),
    Column("criterion", Text, nullable=False),  # after the proposed edit (the base one when none was taken)
    Column("examples", JSONDoc),  # [{input, output, verdict, reason}]
    Column("prompt", Text, nullable=False),
    Column("judge_model", String(300)),
    Column("queue_id", String(64)),
    Column("seed", Integer, nullable=False, server_default="0"),
    Column("n", Integer, nullable=False),  # labelled items with a human majority
    Column("n_heldout", Integer, nullable=False),
    Column("kappa_before", Float),
    Column("kappa_after", Float),
    Column("adopted", Boolean, nullable=False, server_default="0"),
    Column("metrics", JSONDoc),  # before/after: kappa, tpr, tnr, confusion matrix; the proposed edit
    Column("created_at", Float, nullable=False),
    UniqueConstraint("judge_key", "version", name="uq_judge_calibrations_key_version"),
)
