"""Online evaluators: `monitor.online` checks run on a sample of production traces after the response.

    monitor:
      online:
        - {check: grounding, apps: [docs_qa], sample: 0.2}
        - {check: judge, criterion: "Answers the question asked.", sample: 0.05, model: small, name: on_topic}

Never in the request path: `OnlineWorker(runtime).start()` runs a daemon thread inside `flywheel serve` that
looks for new traces every `monitor.interval_s` (and every ALERT_EVERY_S evaluates `monitor.alerts`, sending
each new alert once to `monitor.notify`); `flywheel monitor run [--since 7d] [--once]` does the same as a
separate process or cron job (and backfills history).

- Sampling is deterministic per trace: a trace is scored when the hash of its id, as a number in [0, 1), is
  below `sample` (so a 0.05 sample is a subset of a 0.2 one, and a restart samples the same traces).
- Claims: before scoring, a worker inserts (evaluator, trace) into `monitor_online_runs`; the primary key lets
  exactly one worker win, so two processes never score a trace twice. `monitor_cursors` keeps how far each
  evaluator has read, so a restart resumes. Traces that start before the cursor but are written later (a long
  request) are picked up within LATE_S.
- Results are feedback rows on the trace: source `judge` for LLM checks, `check` otherwise; name = the spec's
  `name` or the check's; value = `{"passed", "score", "cost_usd", "check", "spec"}` (the cost of the judge
  call(s), 0 for local checks); comment = the check's reason; actor = `online:<name>`.
- A check that could not run (the judge endpoint down, a timeout) is not a verdict: the claim goes to
  `pending` and is retried after a backoff (interval × 2^attempts, at most an hour); after MAX_ATTEMPTS it is
  `failed`. The judge's own gateway calls are traced under a root span named `monitor.online`, which the
  monitors and the evaluators skip.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, exists, select, update
from sqlalchemy import exc as sa_exc

from flywheel import feedback
from flywheel.checks.base import Check, CheckContext, from_entry
from flywheel.config import OnlineEvaluatorSpec
from flywheel.monitor.windows import WORKER_TRACE, question_and_answer
from flywheel.store import Store
from flywheel.store.schema import spans as spans_t
from flywheel.store.schema import traces as traces_t
from flywheel.store.schema_monitor import monitor_cursors, monitor_online_runs
from flywheel.tracing import tracer
from flywheel.tracing.query import product_traffic

log = logging.getLogger("flywheel.monitor")
LATE_S = 600.0  # how far behind the cursor late-written traces are still looked for
PAGE = 1000  # traces read per evaluator per pass
MAX_ATTEMPTS = 5
MAX_BACKOFF_S = 3600.0
CLAIM_TTL_S = 900.0  # a claim older than this whose worker never finished (it died) may be taken again
ALERT_EVERY_S = 300.0  # how often the background worker evaluates `monitor.alerts` (at least every interval)


def sampled(trace_id: str, rate: float) -> bool:
    """Deterministic per trace: the first 8 bytes of sha256(trace_id) as a fraction of 2^64, below `rate`."""
    if rate >= 1.0:
        return True
    return int.from_bytes(hashlib.sha256(trace_id.encode()).digest()[:8], "big") / 2 ** 64 < rate


@dataclass
class Evaluator:
    name: str
    check: Check
    apps: list[str]
    sample: float

    @property
    def source(self) -> str:
        return "judge" if self.check.needs_llm else "check"


def build_evaluators(specs: Sequence[OnlineEvaluatorSpec], where: Any = None) -> list[Evaluator]:
    """Checks built from `monitor.online` (a bad check name or argument is a UserError with file:line)."""
    out = []
    for i, spec in enumerate(specs):
        options = dict(spec.model_extra or {})
        at = where("monitor", "online", i) if where else None
        check = from_entry({"check": spec.check, **options}, where=at)
        name = spec.name or spec.check
        feedback.validate("0", name, None, source="check")  # a name the feedback table takes
        out.append(Evaluator(name=name, check=check, apps=list(spec.apps), sample=spec.sample))
    names = [e.name for e in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        from flywheel.errors import UserError

        raise UserError(f"two monitor.online evaluators write under the same name: {', '.join(dupes)}",
                        where=where("monitor", "online") if where else None,
                        hint="give each a distinct `name:`")
    return out


@dataclass
class PassResult:
    scored: int = 0
    pending: int = 0
    failed: int = 0
    cost_usd: float = 0.0
    by_evaluator: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"scored": self.scored, "pending": self.pending, "failed": self.failed,
                "cost_usd": round(self.cost_usd, 9), "by_evaluator": self.by_evaluator}


class OnlineWorker:
    """Scores new traces with the project's `monitor.online` evaluators, in a background thread or one pass."""

    def __init__(self, runtime: Any, *, evaluators: list[Evaluator] | None = None, interval_s: float | None = None,
                 clock: Any = time.time):
        self.runtime = runtime
        monitor = runtime.config.monitor
        self.evaluators = evaluators if evaluators is not None else build_evaluators(
            monitor.online, getattr(runtime.project, "where", None))
        self.interval_s = monitor.interval_s if interval_s is None else interval_s
        self.clock = clock
        self.worker_id = f"{socket.gethostname()[:60]}:{os.getpid()}:{id(self) % 100_000}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._services: Any = None

    @property
    def store(self) -> Store:
        return self.runtime.store  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ background thread
    def start(self) -> OnlineWorker:
        if self._thread is None and (self.evaluators or self.runtime.config.monitor.alerts):
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="flywheel-online-evaluators", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        last_alerts = float("-inf")
        while not self._stop.is_set():
            try:
                self.run_once()
                if time.monotonic() - last_alerts >= max(ALERT_EVERY_S, self.interval_s):
                    last_alerts = time.monotonic()
                    self.fire_alerts()
            except Exception as exc:
                from flywheel.store.outage import store_outage

                lost = store_outage(exc)  # PostgreSQL restarting: one line per pass, not a traceback
                if lost is not None:
                    log.warning("online evaluators: the store is unavailable (%s); next try in %.0f s", lost,
                                self.interval_s)
                else:
                    log.exception("online evaluators: pass failed")
            self._stop.wait(self.interval_s)

    def fire_alerts(self) -> list[Any]:
        """`monitor.alerts` over their latest windows, each new alert sent once to `monitor.notify`."""
        from flywheel.monitor.alerts import fire

        monitor = self.runtime.config.monitor
        return fire(self.store, monitor.alerts, monitor.notify, now=self.clock())

    # ------------------------------------------------------------------ one pass
    def run_once(self, *, since: float | None = None, until: float | None = None) -> PassResult:
        """Retry due pending claims, then claim and score the sampled new traces of every evaluator (from
        `since` when given — a backfill — else from the evaluator's cursor)."""
        result = PassResult()
        for ev in self.evaluators:
            if self._stop.is_set() and self._thread is not None:
                break
            todo = self._due(ev) + self._claim_new(ev, since, until)
            for trace_id in todo:
                self._score(ev, trace_id, result)
            result.by_evaluator[ev.name] = result.by_evaluator.get(ev.name, 0) + len(todo)
        return result

    def _claim_new(self, ev: Evaluator, since: float | None, until: float | None) -> list[str]:
        now = self.clock()
        until = now if until is None else until
        with self.store.connect() as conn:
            cursor = conn.execute(select(monitor_cursors.c.position).where(
                monitor_cursors.c.evaluator == ev.name)).scalar()
        start = since if since is not None else (cursor if cursor is not None else now - LATE_S)
        late_from = start - LATE_S if since is None else start
        claimed = []
        not_claimed = ~exists().where(and_(monitor_online_runs.c.evaluator == ev.name,
                                           monitor_online_runs.c.trace_id == traces_t.c.trace_id))
        base = [product_traffic(traces_t), traces_t.c.started_at < until, not_claimed]
        if ev.apps:
            base.append(traces_t.c.app.in_(ev.apps))
        position, first = start, True
        while True:
            with self.store.connect() as conn:
                rows = conn.execute(select(traces_t.c.trace_id, traces_t.c.started_at).where(
                    *base, traces_t.c.started_at >= late_from if first else traces_t.c.started_at > position)
                    .order_by(traces_t.c.started_at, traces_t.c.trace_id).limit(PAGE)).all()
            for tid, started in rows:
                if sampled(tid, ev.sample) and self._claim(ev, tid):
                    claimed.append(tid)
                position = max(position, started)
            first = False
            if len(rows) < PAGE:
                break
        if since is None or cursor is None or position > cursor:
            self._save_cursor(ev, max(position, cursor or position))
        return claimed

    def _claim(self, ev: Evaluator, trace_id: str) -> bool:
        try:
            with self.store.begin() as conn:
                conn.execute(monitor_online_runs.insert().values(
                    evaluator=ev.name, trace_id=trace_id, status="claimed", attempts=0, worker=self.worker_id,
                    claimed_at=self.clock()))
        except sa_exc.IntegrityError:
            return False  # another worker has it
        return True

    def _due(self, ev: Evaluator) -> list[str]:
        """Pending claims whose retry time has come, and stale claims of dead workers, taken over atomically."""
        now = self.clock()
        runs = monitor_online_runs
        with self.store.connect() as conn:
            rows = conn.execute(select(runs.c.trace_id, runs.c.status, runs.c.attempts).where(
                runs.c.evaluator == ev.name,
                ((runs.c.status == "pending") & (runs.c.next_at <= now))
                | ((runs.c.status == "claimed") & (runs.c.claimed_at < now - CLAIM_TTL_S)))).all()
        taken = []
        for tid, status, attempts in rows:
            with self.store.begin() as conn:
                done = conn.execute(update(runs).where(
                    runs.c.evaluator == ev.name, runs.c.trace_id == tid, runs.c.status == status,
                    runs.c.attempts == attempts).values(status="claimed", worker=self.worker_id, claimed_at=now))
            if done.rowcount == 1:
                taken.append(tid)
        return taken

    def _save_cursor(self, ev: Evaluator, position: float) -> None:
        with self.store.begin() as conn:
            done = conn.execute(update(monitor_cursors).where(monitor_cursors.c.evaluator == ev.name).values(
                position=position, updated_at=self.clock()))
            if done.rowcount == 0:
                try:
                    with conn.begin_nested():
                        conn.execute(monitor_cursors.insert().values(evaluator=ev.name, position=position,
                                                                     updated_at=self.clock()))
                except sa_exc.IntegrityError:
                    pass  # another worker created it meanwhile; its position is as good

    # ------------------------------------------------------------------ scoring
    def _score(self, ev: Evaluator, trace_id: str, result: PassResult) -> None:
        material = trace_material(self.store, trace_id)
        runs = monitor_online_runs
        if material is None:  # the trace vanished (retention): nothing to score
            self._finish(ev, trace_id, "failed", "trace not found")
            result.failed += 1
            return
        ctx = CheckContext(input=material["input"], sources=material["sources"], trace_id=trace_id,
                           services=self._get_services(), latency_ms=material["latency_ms"],
                           cost_usd=material["cost_usd"])
        with tracer.span(WORKER_TRACE, "eval", inputs={"trace_id": trace_id, "evaluator": ev.name}):
            check_result = ev.check.run(material["output"], ctx)
        cost = float(check_result.details.get("judge_cost_usd") or 0.0)
        result.cost_usd += cost
        if check_result.error and (ev.check.needs_llm or "crashed" in check_result.reason):
            with self.store.connect() as conn:
                attempts = conn.execute(select(runs.c.attempts).where(
                    runs.c.evaluator == ev.name, runs.c.trace_id == trace_id)).scalar() or 0
            attempts += 1
            if attempts >= MAX_ATTEMPTS:
                self._finish(ev, trace_id, "failed", check_result.error, attempts=attempts)
                result.failed += 1
            else:
                delay = min(self.interval_s * 2 ** attempts, MAX_BACKOFF_S)
                self._finish(ev, trace_id, "pending", check_result.error, attempts=attempts,
                             next_at=self.clock() + delay)
                result.pending += 1
            return
        feedback.record(self.store, trace_id, ev.name, {
            "passed": check_result.passed, "score": check_result.score, "cost_usd": cost,
            "check": ev.check.name, "spec": check_result.spec}, source=ev.source,
            comment=(check_result.reason or None) and check_result.reason[:2000], actor=f"online:{ev.name}",
            tenant=material["tenant"])
        self._finish(ev, trace_id, "done", None)
        result.scored += 1

    def _finish(self, ev: Evaluator, trace_id: str, status: str, error: str | None, *, attempts: int | None = None,
                next_at: float | None = None) -> None:
        values: dict[str, Any] = {"status": status, "error": error, "next_at": next_at}
        if attempts is not None:
            values["attempts"] = attempts
        with self.store.begin() as conn:
            conn.execute(update(monitor_online_runs).where(
                monitor_online_runs.c.evaluator == ev.name, monitor_online_runs.c.trace_id == trace_id).values(**values))

    def _get_services(self) -> Any:
        if self._services is None:
            from flywheel.evals.runner import RuntimeServices

            self._services = RuntimeServices(self.runtime, None)
        return self._services


def trace_material(store: Store, trace_id: str) -> dict[str, Any] | None:
    """What a check looks at for one stored trace: the question, the answer, the retrieved passages' texts."""
    with store.connect() as conn:
        trace = conn.execute(select(traces_t).where(traces_t.c.trace_id == trace_id)).mappings().first()
        if trace is None:
            return None
        spans = [dict(r) for r in conn.execute(select(
            spans_t.c.parent_id, spans_t.c.kind, spans_t.c.start_ns, spans_t.c.inputs, spans_t.c.outputs).where(
            spans_t.c.trace_id == trace_id).order_by(spans_t.c.start_ns)).mappings()]
        chunk_ids = [h.get("chunk_id") for s in spans if s["kind"] == "retrieval" and isinstance(s["outputs"], list)
                     for h in s["outputs"] if isinstance(h, dict)]
        sources: list[str] = []
        if chunk_ids:
            from flywheel.store.schema_retrieval import chunks

            texts = dict(conn.execute(select(chunks.c.id, chunks.c.text).where(chunks.c.id.in_(chunk_ids))).all())
            sources = [texts[c] for c in chunk_ids if c in texts]
    question, answer = question_and_answer(spans)
    return {"input": question or trace["input_preview"] or "", "output": answer or trace["output_preview"] or "",
            "sources": sources, "tenant": trace["tenant"], "latency_ms": trace["latency_ms"],
            "cost_usd": trace["cost_usd"]}


def pending_counts(store: Store) -> dict[str, dict[str, int]]:
    """Claims per evaluator and status (claimed / done / pending / failed)."""
    from sqlalchemy import func

    runs = monitor_online_runs
    out: dict[str, dict[str, int]] = {}
    with store.connect() as conn:
        for name, status, n in conn.execute(select(runs.c.evaluator, runs.c.status, func.count()).group_by(
                runs.c.evaluator, runs.c.status)).all():
            out.setdefault(name, {})[status] = int(n)
    return out


def claim_errors(store: Store) -> dict[str, dict[str, Any]]:
    """Per evaluator, the most common reason its pending or failed claims gave no verdict (secrets scrubbed):
    {"error": …, "claims": n} — what `monitor run --once` shows next to `pending N`."""
    from sqlalchemy import func

    from flywheel.text.secrets import scrub_secrets

    runs = monitor_online_runs
    out: dict[str, dict[str, Any]] = {}
    with store.connect() as conn:
        rows = conn.execute(select(runs.c.evaluator, runs.c.error, func.count().label("n")).where(
            runs.c.status.in_(("pending", "failed")), runs.c.error.is_not(None)).group_by(
            runs.c.evaluator, runs.c.error)).all()
    for name, error, n in sorted(rows, key=lambda r: (r[0], -r[2], str(r[1]))):
        out.setdefault(name, {"error": scrub_secrets(str(error))[:300], "claims": int(n)})
    return out
