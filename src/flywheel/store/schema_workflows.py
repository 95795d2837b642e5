"""Tables of the workflows domain (flywheel.workflows.runner). Migration: migrations/versions/0007_workflows.py.

- workflow_runs: one row per run: the workflow's name and version, its inputs, status (running | done |
  stopped | refused | failed), final output, why it stopped, the trace of its latest attempt.
- workflow_steps: every finished step of a run, keyed by (run, step, input hash): a run started again with
  `--resume RUN_ID` reuses the output of a step whose inputs hash the same instead of running it again. Map
  items (`summarize[3]`) and plans (`plan#plan`) are steps here too.
Times are Unix seconds (float).
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, String, Table, Text, UniqueConstraint

from flywheel.store.schema import JSONDoc, metadata

workflow_runs = Table(
    "workflow_runs",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("workflow", String(200), nullable=False),
    Column("version", String(32), nullable=False),
    Column("source", String(1000)),  # the workflow file, when it came from one
    Column("inputs", JSONDoc),
    Column("status", String(16), nullable=False),
    Column("output", JSONDoc),
    Column("reason", Text),
    Column("trace_id", String(32)),
    Column("tenant", String(100)),
    Column("cost_usd", Float, nullable=False, server_default="0"),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("ix_workflow_runs_workflow_created", "workflow", "created_at"),
)

workflow_steps = Table(
    "workflow_steps",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), nullable=False),
    Column("step_id", String(200), nullable=False),
    Column("input_hash", String(32), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("output", JSONDoc),
    Column("cost_usd", Float, nullable=False, server_default="0"),
    Column("latency_ms", Float),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("run_id", "step_id", "input_hash", name="uq_workflow_steps_run_step_hash"),
)
