"""Eval runs and results in the store (tables `eval_runs`, `eval_results`): write, resume, read back."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from flywheel.errors import UserError
from flywheel.text import scrub_secrets
from flywheel.text.secrets import secret_env_values
from flywheel.types import CheckResult

_SECRET_VALUES = tuple(secret_env_values())  # the values of secret-named environment variables, once


_MEMO: dict[str, str] = {}  # short texts repeat across results (check reasons, the same answer, vars)
_MEMO_MAX_LEN, _MEMO_SIZE = 512, 8192


def scrub(value: Any) -> Any:
    """`value` with every string in it (nested in dicts and lists) through the one secret scrubber."""
    if value.__class__ is str:
        hit = _MEMO.get(value)
        if hit is not None:
            return hit
        if not value or len(value) > _MEMO_MAX_LEN:
            return scrub_secrets(value, values=_SECRET_VALUES) if value else value
        if len(_MEMO) >= _MEMO_SIZE:
            _MEMO.clear()
        hit = _MEMO[value] = scrub_secrets(value, values=_SECRET_VALUES)
        return hit
    if not value:
        return value
    if isinstance(value, str):  # a str subclass
        return scrub_secrets(str(value), values=_SECRET_VALUES)
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    return value


@dataclass
class CaseRun:
    """One execution of one case (a case runs `repeat` times)."""

    case_id: str
    repeat_index: int
    passed: bool
    score: float
    output: str | None
    checks: list[CheckResult] = field(default_factory=list)
    error: str | None = None
    input: str = ""
    vars: dict[str, Any] = field(default_factory=dict)
    reference: str | None = None
    latency_ms: float | None = None
    cost_usd: float | None = None
    trace_id: str | None = None
    models: list[str] = field(default_factory=list)
    prompt_versions: list[str] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)
    cache: str = "off"
    refusal: str | None = None

    def scrubbed(self) -> CaseRun:
        """This result with secrets scrubbed from every text that is stored or shown (done once per result,
        after its checks ran on the real output)."""
        self.input, self.output, self.vars = scrub(self.input), scrub(self.output), scrub(self.vars)
        self.reference, self.error = scrub(self.reference), scrub(self.error)
        self.checks = [_scrubbed_check(c) for c in self.checks]
        return self

    def row(self, run_id: str) -> dict[str, Any]:
        return {
            "run_id": run_id,
            "case_id": self.case_id,
            "repeat_index": self.repeat_index,
            "passed": self.passed,
            "score": self.score,
            "input": self.input,
            "output": self.output,
            "reference": self.reference,
            "vars": self.vars,
            "error": self.error,
            "checks": [c.model_dump(mode="json") for c in self.checks],
            "latency_ms": self.latency_ms,
            "cost_usd": self.cost_usd,
            "trace_id": self.trace_id,
            "created_at": time.time(),
            "meta": {
                "models": self.models,
                "prompt_versions": self.prompt_versions,
                "usage": self.usage,
                "cache": self.cache,
                "refusal": self.refusal,
            },
        }

    @classmethod
    def from_row(cls, row: Any) -> CaseRun:
        meta = row.get("meta") or {}
        return cls(
            case_id=row["case_id"],
            repeat_index=row["repeat_index"],
            passed=bool(row["passed"]),
            score=row["score"],
            output=row["output"],
            error=row["error"],
            input=row["input"] or "",
            vars=row["vars"] or {},
            reference=row["reference"],
            latency_ms=row["latency_ms"],
            cost_usd=row["cost_usd"],
            trace_id=row["trace_id"],
            checks=[CheckResult.model_validate(c) for c in row["checks"] or []],
            models=list(meta.get("models") or []),
            prompt_versions=list(meta.get("prompt_versions") or []),
            usage=dict(meta.get("usage") or {}),
            cache=meta.get("cache") or "off",
            refusal=meta.get("refusal"),
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["checks"] = [c.model_dump(mode="json") for c in self.checks]
        return d


def _scrubbed_check(c: CheckResult) -> CheckResult:
    reason = scrub(c.reason)
    if c.error is None and not c.details:
        return c if reason == c.reason else c.model_copy(update={"reason": reason})
    error, details = scrub(c.error), scrub(c.details)
    if reason == c.reason and error == c.error and details == c.details:
        return c  # nothing to copy
    return c.model_copy(update={"reason": reason, "error": error, "details": details})


class RunStore:
    """Reads and writes eval runs of one store. Results go through the store's batched background writer.

    `RunStore.open(runtime)` is what `flywheel eval` uses: when the project's store is a SQLite file that does
    not exist yet (a fresh checkout, a CI job), creating and migrating it (~0.4 s, SQLAlchemy and Alembic
    included) happens on a background thread while the run goes on — there is nothing to resume from a
    database that did not exist. Opening starts with the first write (so a run that fails before it opens
    nothing); writes made meanwhile are queued and applied, in order, once it is open; anything else waits
    for it. (Its folder is checked up front; a store that still cannot be created fails the run at the
    next write.)
    """

    def __init__(self, store: Any = None, *, opening: Callable[[], Any] | None = None):
        self.fresh = opening is not None  # the database is being created: nothing to resume
        self._queued: list[Callable[[], None]] | None = None
        if opening is None:
            self._attach(store)
            return
        self._queued = []
        self._opening: Callable[[], Any] | None = opening  # started by the first use
        self._error: BaseException | None = None
        self._opened = threading.Event()

    @classmethod
    def open(cls, runtime: Any) -> RunStore:
        """The runtime's store; opened on a background thread when it is a SQLite file not created yet."""
        if "store" not in runtime.__dict__ and _new_sqlite_file(runtime.project.store_url):
            return cls(opening=lambda: runtime.store)
        return cls(runtime.store)  # opened here: an unusable store is reported before any case runs

    def _attach(self, store: Any) -> None:
        self.store = store
        self.runs = store.table("eval_runs")
        self.results = store.table("eval_results")

    def _open(self, opening: Callable[[], Any]) -> None:  # on the background thread
        try:
            with _responsive_gil():
                self._attach(opening())
        except BaseException as exc:  # noqa: BLE001 - raised to the caller at its next use of the store
            self._error = exc
        finally:
            self._opened.set()

    def ready(self, wait: bool = True) -> bool:
        """Whether the store is open (waiting for it with `wait`); applies the writes queued meanwhile."""
        if self._queued is None:
            return True
        if self._opening is not None:
            opening, self._opening = self._opening, None
            threading.Thread(
                target=self._open, args=(opening,), name="flywheel-store-open", daemon=True
            ).start()
        if not self._opened.wait(None if wait else 0):
            return False
        if self._error is not None:
            raise self._error
        queued, self._queued = self._queued, None
        for write in queued:
            write()
        return True

    def create(self, run_id: str, **fields: Any) -> None:
        if self._queued is not None and not self.ready(wait=False):
            self._queued.append(lambda: self.create(run_id, **fields))
            return
        with self.store.begin() as conn:
            conn.execute(
                self.runs.insert().values(id=run_id, status="running", started_at=time.time(), **fields)
            )

    def resumable(self, fingerprint: str) -> str | None:
        """The newest unfinished (running, failed or interrupted) run with this fingerprint (same suite,
        versions and options)."""
        if self.fresh:
            return None
        from sqlalchemy import select

        q = (
            select(self.runs.c.id)
            .where(self.runs.c.fingerprint == fingerprint, self.runs.c.status.in_(UNFINISHED))
            .order_by(self.runs.c.started_at.desc())
            .limit(1)
        )
        with self.store.connect() as conn:
            return conn.execute(q).scalar()

    def reopen(self, run_id: str) -> None:
        """A failed or interrupted run being resumed is `running` again."""
        from sqlalchemy import update

        with self.store.begin() as conn:
            conn.execute(
                update(self.runs).where(self.runs.c.id == run_id).values(status="running", error=None)
            )

    def save(self, run_id: str, result: CaseRun) -> None:
        if self._queued is not None and not self.ready(wait=False):
            self._queued.append(lambda: self.save(run_id, result))
            return
        self.store.writer.submit(self.results, result.row(run_id))

    def flush(self) -> None:
        self.ready()
        self.store.flush()

    def finish(self, run_id: str, pass_rate: float, summary: dict[str, Any]) -> None:
        from sqlalchemy import update

        self.flush()
        with self.store.begin() as conn:
            conn.execute(
                update(self.runs)
                .where(self.runs.c.id == run_id)
                .values(
                    status="finished",
                    finished_at=time.time(),
                    pass_rate=pass_rate,
                    summary=summary,
                    error=None,
                )
            )

    def fail(self, run_id: str, exc: BaseException) -> None:
        """Mark the run `failed` with the reason (or `interrupted` on Ctrl-C / cancellation); it resumes
        when the same suite runs again. Never raises: the original error is what the caller reports."""
        from sqlalchemy import update

        interrupted = isinstance(exc, KeyboardInterrupt | asyncio.CancelledError)
        reason = "interrupted" if interrupted else _reason(exc)
        with contextlib.suppress(Exception):  # the store itself may be what failed
            self.flush()
        with contextlib.suppress(Exception), self.store.begin() as conn:
            conn.execute(
                update(self.runs)
                .where(self.runs.c.id == run_id)
                .values(
                    status="interrupted" if interrupted else "failed",
                    finished_at=time.time(),
                    error=scrub(reason)[:4000],
                )
            )

    def load_results(self, run_id: str) -> list[CaseRun]:
        from sqlalchemy import select

        self.ready()
        q = select(self.results).where(self.results.c.run_id == run_id).order_by(self.results.c.id)
        with self.store.connect() as conn:
            return [CaseRun.from_row(r) for r in conn.execute(q).mappings()]

    def get(self, ref: str) -> dict[str, Any]:
        """A run by id or unique id prefix (at least 4 characters), or `latest` / `previous`."""
        from sqlalchemy import select

        self.ready()
        with self.store.connect() as conn:
            if ref in ("latest", "previous"):
                q = select(self.runs).order_by(self.runs.c.started_at.desc()).limit(2)
                rows = list(conn.execute(q).mappings())
                index = 0 if ref == "latest" else 1
                if len(rows) <= index:
                    raise UserError(f"there is no {ref} eval run", hint="run `flywheel eval` first")
                return dict(rows[index])
            if len(ref) < 4:
                raise UserError(
                    f"run id `{ref}` is too short", hint="give at least 4 characters of the run id"
                )
            rows = list(
                conn.execute(select(self.runs).where(self.runs.c.id.like(f"{ref}%")).limit(2)).mappings()
            )
        if not rows:
            raise UserError(f"no eval run `{ref}`", hint="list runs with `flywheel eval --list`")
        if len(rows) > 1:
            raise UserError(f"run id prefix `{ref}` is ambiguous", hint="give more characters of the run id")
        return dict(rows[0])

    def previous(self, run_id: str, suite: str, model: str | None) -> dict[str, Any] | None:
        """The finished run of the same suite (and model) that started before `run_id`, for report diffs."""
        from sqlalchemy import select

        self.ready()
        with self.store.connect() as conn:
            before = conn.execute(select(self.runs.c.started_at).where(self.runs.c.id == run_id)).scalar()
        if before is None:
            return None
        q = (
            select(self.runs)
            .where(
                self.runs.c.suite == suite,
                self.runs.c.status == "finished",
                self.runs.c.started_at < before,
                self.runs.c.id != run_id,
            )
            .order_by(self.runs.c.started_at.desc())
            .limit(1)
        )
        q = q.where(self.runs.c.model.is_(None) if model is None else self.runs.c.model == model)
        with self.store.connect() as conn:
            row = conn.execute(q).mappings().first()
        return dict(row) if row else None

    def list(self, last: int = 20) -> list[dict[str, Any]]:
        from sqlalchemy import select

        self.ready()
        q = select(self.runs).order_by(self.runs.c.started_at.desc()).limit(last)
        with self.store.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]


UNFINISHED = ("running", "failed", "interrupted")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, UserError):  # message, where and hint as the CLI prints them
        return exc.render()
    return f"{type(exc).__name__}: {exc}"


def _new_sqlite_file(url: str) -> bool:
    """Whether `url` names a SQLite file (plain `sqlite:///PATH`) that does not exist yet in a folder we can
    write to (created here if missing); anything else is opened up front, where its errors are reported."""
    if not url.startswith("sqlite:///") or "?" in url:
        return False
    path = url[len("sqlite:///") :]
    if not path or path == ":memory:":
        return False
    file = Path(path).expanduser()
    if file.exists():
        return False
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(file.parent, os.W_OK)


@contextmanager
def _responsive_gil(interval_s: float = 0.0005) -> Iterator[None]:
    """Shorten the GIL switch interval (default 5 ms) while a CPU-bound job runs on a background thread, so
    the event loop sharing the process gets the GIL back within `interval_s` after each socket wait instead
    of up to 5 ms later (measured on the eval benchmark: the run's p95 latency and wall time go back to
    what they are without the background job)."""
    before = sys.getswitchinterval()
    short = min(before, interval_s)
    sys.setswitchinterval(short)
    try:
        yield
    finally:
        if sys.getswitchinterval() == short:  # unless someone changed it meanwhile
            sys.setswitchinterval(before)
