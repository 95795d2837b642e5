"""Tables of the monitor domain (flywheel.monitor). Migration: migrations/versions/0007_monitor.py.

- monitor_online_runs: one row per (online evaluator, trace) it claimed. The primary key makes the claim
  atomic: two workers inserting the same pair cannot both succeed, so no trace is scored twice.
  status: claimed (being scored) | done | pending (the check could not run, e.g. the judge was down; retried
  at `next_at`) | failed (gave up after MAX_ATTEMPTS).
- monitor_cursors: per evaluator, the `traces.started_at` up to which every trace was looked at, so a
  restarted worker resumes instead of rescanning history.
- monitor_alerts: alerts the background worker has notified, one row per (rule, window, group).
Times are Unix seconds (float).
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, String, Table, Text

from flywheel.store.schema import ID, metadata

monitor_online_runs = Table(
    "monitor_online_runs",
    metadata,
    Column("evaluator", String(100), primary_key=True),
    Column("trace_id", String(ID), primary_key=True),
    Column("status", String(10), nullable=False),  # claimed | done | pending | failed
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("worker", String(100)),
    Column("claimed_at", Float, nullable=False),
    Column("next_at", Float),  # pending: when to retry
    Column("error", Text),
    Index("ix_monitor_online_runs_status_next_at", "status", "next_at"),
)

monitor_cursors = Table(
    "monitor_cursors",
    metadata,
    Column("evaluator", String(100), primary_key=True),
    Column("position", Float, nullable=False),  # traces.started_at seen up to
    Column("updated_at", Float, nullable=False),
)

# Alerts already sent by the background worker / `flywheel monitor run`: inserting the key claims the alert, so
# an alert is notified once, whichever process sees it first, and not again on the next pass.
monitor_alerts = Table(
    "monitor_alerts",
    metadata,
    Column("rule", String(100), primary_key=True),
    Column("window_start", Float, primary_key=True),
    Column("group_key", String(500), primary_key=True),  # JSON of the group, e.g. {"app": "support"}
    Column("sent_at", Float, nullable=False),
    Column("message", Text, nullable=False),
)
