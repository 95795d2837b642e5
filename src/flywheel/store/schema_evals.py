"""Tables of the evals domain: one row per eval run, one per (case, repeat) result.

A run remembers what produced its numbers: `versions` holds the prompt hashes, the pinned models its aliases
resolved to and the configuration hash; `fingerprint` is the hash of suite + versions + options that lets an
interrupted run resume (`status` stays `running` until it finishes).
Times are Unix seconds (float). Migration: migrations/versions/0003_evals.py (branch `evals`).
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
    Column("status", String(20), nullable=False, server_default="running"),  # running | finished
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float),
    Column("repeat", Integer, nullable=False, server_default="1"),
    Column("threshold", Float, nullable=False),
    Column("cases_total", Integer, nullable=False, server_default="0"),
    Column("pass_rate", Float),
    Column("versions", JSONDoc),
    Column("summary", JSONDoc),
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
    UniqueConstraint("run_id", "case_id", "repeat_index", name="uq_eval_results_run_case_repeat"),
)
