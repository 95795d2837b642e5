"""Which traces to review: one strategy, or a stratified mix, reproducible from a seed.

| strategy | a trace qualifies when |
|---|---|
| random | it is in the window (uniform: see `_random`) |
| negative-feedback | a user gave thumbs down, a score below 0.5, a correction, or rejected / regenerated it |
|                   | (a vote counts as its voter last gave it: thumbs down then up is positive)          |
| guard-triggered | one of its guard spans did not pass (blocked, redacted, re-asked, dropped sources …) |
| low-score | a check or judge scored it below 0.5 (or said fail / false) |
| uncertain | a check or judge scored it between 0.35 and 0.65, or its signals disagree (one ≥ 0.5, one < 0.5) |
| new-topic | its input has words absent from the traces before the window (flywheel.text.tokenize, CJK aware; |
|           | no stopwords, question words or bare numbers);                                                    |
|           | without `since`, the older half of the newest candidates is the reference |

"mixed" splits n evenly over the strategies that have candidates (what one cannot fill goes to the others,
then to random). All filtering runs in SQL on indexed columns; random sampling never reads the whole table:
trace ids are random hex, so the traces following a seeded random point in id order are a uniform sample
independent of content, time and app.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, exists, func, literal_column, or_, select

from flywheel.errors import UserError
from flywheel.store.schema_feedback import LOW, is_current, vote_signal
from flywheel.tracing.query import product_traffic

if TYPE_CHECKING:
    from flywheel.store import Store

STRATEGIES: tuple[str, ...] = ("random", "negative-feedback", "guard-triggered", "low-score", "uncertain",
                               "new-topic")
POOL_CAP = 5000  # candidates read per signal strategy before the seeded shuffle
SMALL = 5000  # at most this many traces in the window: read their ids and sample in Python
NEW_TOPIC_CANDIDATES = 2000
PAIR_CANDIDATES = 20_000  # newest traces of the window searched for same-input pairs
NEW_TOPIC_REFERENCE = 5000
NEAR = 0.15  # within NEAR of LOW (schema_feedback: below it is a low score) is uncertain


def sample_traces(store: Store, *, n: int, strategy: str = "mixed", app: str | None = None,
                  tenant: str | None = None, since: float | None = None, until: float | None = None,
                  seed: int = 0, exclude_queued: bool = True) -> list[str]:
    """Up to `n` trace ids to review, by `strategy` (one of STRATEGIES or "mixed"); the same store and seed give
    the same ids. `exclude_queued` leaves out traces already in a review queue."""
    return [tid for tid, _ in sample_strata(store, n=n, strategy=strategy, app=app, tenant=tenant, since=since,
                                            until=until, seed=seed, exclude_queued=exclude_queued)]


def sample_strata(store: Store, *, n: int, strategy: str = "mixed", app: str | None = None,
                  tenant: str | None = None, since: float | None = None, until: float | None = None,
                  seed: int = 0, exclude_queued: bool = True) -> list[tuple[str, str]]:
    """`sample_traces` with the strategy that picked each trace: [(trace_id, strategy)]."""
    if strategy != "mixed" and strategy not in STRATEGIES:
        from flywheel.registry import did_you_mean

        close = did_you_mean(strategy, (*STRATEGIES, "mixed"))
        raise UserError(f"unknown sampling strategy {strategy!r}" + (f"; did you mean {close[0]!r}?" if close else ""),
                        hint=f"one of: mixed, {', '.join(STRATEGIES)}")
    if not isinstance(n, int) or n < 1:
        raise UserError(f"the number of traces to sample must be at least 1 (got {n!r})")
    if since is not None and until is not None and since >= until:
        raise UserError("the sampling window is empty: --since is not before --until")
    s = _Sampler(store, app=app, tenant=tenant, since=since, until=until, seed=seed, exclude_queued=exclude_queued)
    with store.connect() as conn:
        s.conn = conn
        if strategy == "random":
            return [(t, "random") for t in s.random(n)]
        if strategy != "mixed":
            return [(t, strategy) for t in s.pool(strategy)[:n]]
        return s.mixed(n)


def sample_pairs(store: Store, *, n: int, app: str | None = None, tenant: str | None = None,
                 since: float | None = None, until: float | None = None, seed: int = 0,
                 exclude_queued: bool = True) -> list[tuple[str, str | None, str]]:
    """Up to `n` pairs of traces that answered the same input (its stored preview) with another model or prompt
    version, for pairwise review: [(trace_a, trace_b, "pairwise")], the newest trace of each variant."""
    s = _Sampler(store, app=app, tenant=tenant, since=since, until=until, seed=seed, exclude_queued=exclude_queued)
    t = s.t
    q = select(t.c.trace_id, t.c.input_preview, t.c.model, t.c.prompt_version).where(
        t.c.input_preview.is_not(None), t.c.status == "ok", *s.where())
    with store.connect() as conn:
        rows = conn.execute(q.order_by(t.c.started_at.desc()).limit(PAIR_CANDIDATES)).all()
    groups: dict[str, dict[tuple[Any, Any], str]] = {}
    for tid, text, model, version in rows:
        groups.setdefault(text, {}).setdefault((model, version), tid)
    pairs = [sorted(v.values())[:2] for _, v in sorted(groups.items()) if len(v) >= 2]
    random.Random(seed).shuffle(pairs)
    return [(a, b, "pairwise") for a, b in pairs[:n]]


def empty_window_message(kind: str, strategy: str, app: str | None, tenant: str | None, since: float | None,
                         until: float | None) -> str:
    """Why a queue came out empty, naming the window and filters."""
    where = [f"app {app!r}" if app else "", f"tenant {tenant!r}" if tenant else "",
             f"since {_day(since)}" if since else "", f"until {_day(until)}" if until else ""]
    scope = ", ".join(w for w in where if w) or "the whole store"
    what = "pairs of traces answering the same input with different models or prompts" if kind == "pairwise" \
        else f"unqueued traces for strategy {strategy!r}"
    return f"no {what} in {scope}: nothing to review"


def _day(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts))


class _Sampler:
    def __init__(self, store: Store, *, app: str | None, tenant: str | None, since: float | None,
                 until: float | None, seed: int, exclude_queued: bool):
        self.store, self.dialect = store, store.dialect
        self.app, self.tenant, self.since, self.until = app, tenant, since, until
        self.seed, self.exclude_queued = seed, exclude_queued
        self.t = store.table("traces")
        self.conn: Any = None

    def rng(self, salt: str) -> random.Random:
        digest = hashlib.sha256(f"{self.seed}:{salt}".encode()).digest()
        return random.Random(int.from_bytes(digest[:8], "big"))

    # ------------------------------------------------------------------ filters
    def where(self, *, window: bool = True, queued: bool = True) -> list[Any]:
        t, out = self.t, [product_traffic(self.t)]
        if self.app is not None:
            out.append(t.c.app == self.app)
        if self.tenant is not None:
            out.append(t.c.tenant == self.tenant)
        if window and self.since is not None:
            out.append(t.c.started_at >= self.since)
        if window and self.until is not None:
            out.append(t.c.started_at < self.until)
        if queued and self.exclude_queued:
            items = self.store.table("review_items")
            out.append(~exists().where(items.c.trace_id == t.c.trace_id))
            out.append(~exists().where(items.c.trace_id_b == t.c.trace_id))
        return out

    # ------------------------------------------------------------------ random
    def random(self, n: int, avoid: set[str] | frozenset[str] = frozenset()) -> list[str]:
        t, where = self.t, self.where()
        rng = self.rng("random")
        small = max(SMALL, 20 * n)
        capped = select(t.c.trace_id).where(*where).limit(small + 1).subquery()  # counting stops past `small`
        total = self.conn.scalar(select(func.count()).select_from(capped)) or 0
        if total <= small:
            ids = [i for i in self.conn.scalars(select(t.c.trace_id).where(*where).order_by(t.c.trace_id))
                   if i not in avoid]
            return rng.sample(ids, min(n, len(ids)))
        out: dict[str, None] = {}
        points = min(n, 32)
        per = math.ceil(n / points) + 1
        lo, hi = _id_range(self.conn, t)
        for _ in range(4):  # more random points only when duplicates or `avoid` ate into the first round
            for _ in range(points):
                start = f"{rng.randint(lo, hi):032x}"
                got = list(self.conn.scalars(select(t.c.trace_id).where(t.c.trace_id >= start, *where)
                                             .order_by(t.c.trace_id).limit(per)))
                if len(got) < per:  # wrap around the end of the id space
                    got += self.conn.scalars(select(t.c.trace_id).where(t.c.trace_id < start, *where)
                                             .order_by(t.c.trace_id).limit(per - len(got)))
                out.update((i, None) for i in got if i not in avoid)
            if len(out) >= n:
                break
        if len(out) < n:  # ids that are not random hex (clustered): random offsets instead (slower)
            total = self.conn.scalar(select(func.count()).select_from(t).where(*where)) or 0
        for _ in range(4 * points):
            if len(out) >= n:
                break
            got = self.conn.scalars(select(t.c.trace_id).where(*where).order_by(t.c.trace_id)
                                    .offset(rng.randrange(total)).limit(per))
            out.update((i, None) for i in got if i not in avoid)
        ids = list(out)
        rng.shuffle(ids)
        return ids[:n]

    # ------------------------------------------------------------------ signal strategies
    def pool(self, strategy: str) -> list[str]:
        """Candidates of one strategy, in seeded random order (new-topic: most novel first)."""
        if strategy == "random":
            return self.random(POOL_CAP)
        if strategy == "new-topic":
            return self.new_topic()
        query = {"negative-feedback": self._negative, "guard-triggered": self._guarded, "low-score": self._low,
                 "uncertain": self._uncertain}[strategy]()
        ids = list(self.conn.scalars(query.order_by(query.selected_columns[0]).limit(POOL_CAP)))
        self.rng(strategy).shuffle(ids)
        return ids

    def _feedback_since(self) -> list[Any]:
        """Conditions on the feedback row itself, so other rows are dropped before they are joined to traces: it
        still counts (a vote its voter changed later does not: schema_feedback.is_current), and feedback on a
        trace of the window was written after the window began (less an hour of clock skew)."""
        f = self.store.table("feedback")
        return [is_current(f)] + ([] if self.since is None else [f.c.created_at >= self.since - 3600])

    def _feedback_join(self, *conds: Any) -> Any:
        f, t = self.store.table("feedback"), self.t
        return (select(t.c.trace_id).select_from(f.join(t, t.c.trace_id == f.c.trace_id))
                .where(*conds, *self._feedback_since(), *self.where()).distinct())

    def _negative(self) -> Any:
        f = self.store.table("feedback")
        sig = vote_signal(f.c.value)
        return self._feedback_join(f.c.source == "user", or_(
            and_(f.c.name == "thumbs", sig < LOW), and_(f.c.name == "score", sig < LOW),
            f.c.name.in_(("correction", "rejected", "regenerated"))))

    def _low(self) -> Any:
        f = self.store.table("feedback")
        return self._feedback_join(f.c.source.in_(("check", "judge")), vote_signal(f.c.value) < LOW)

    def _uncertain(self) -> Any:
        f, t = self.store.table("feedback"), self.t
        sig = vote_signal(f.c.value)
        near = self._feedback_join(f.c.source.in_(("check", "judge")), sig > LOW - NEAR, sig < LOW + NEAR)
        split = (select(f.c.trace_id).where(f.c.source != "annotator", sig.is_not(None), *self._feedback_since())
                 .group_by(f.c.trace_id).having(and_(func.min(sig) < LOW, func.max(sig) >= LOW)))  # feedback alone
        # first: only the few traces whose signals disagree are joined to traces
        disagree = select(t.c.trace_id).where(t.c.trace_id.in_(split), *self.where())
        both = near.union(disagree).subquery()
        return select(both.c.trace_id)

    def _guarded(self) -> Any:
        s, t = self.store.table("spans"), self.t
        action: Any = (literal_column("spans.attributes ->> 'flywheel.guard.action'") if self.dialect == "postgresql"
                  else literal_column("json_extract(spans.attributes, '$.\"flywheel.guard.action\"')"))
        conds = [s.c.kind == "guard", action.is_not(None), action != "pass"]
        if self.since is not None:
            conds.append(s.c.start_ns >= int(self.since * 1e9))
        if self.until is not None:
            conds.append(s.c.start_ns < int(self.until * 1e9))
        return (select(t.c.trace_id).select_from(s.join(t, t.c.trace_id == s.c.trace_id))
                .where(*conds, *self.where()).distinct())

    def new_topic(self) -> list[str]:
        """Traces of the window whose input has words absent from the traces before it, most novel first."""
        t = self.t
        cands = self.conn.execute(select(t.c.trace_id, t.c.input_preview, t.c.started_at).where(*self.where())
                                  .order_by(t.c.started_at.desc()).limit(NEW_TOPIC_CANDIDATES)).all()
        if not cands:
            return []
        start = self.since if self.since is not None else min(c[2] for c in cands)
        ref_where = self.where(window=False, queued=False)
        ref = self.conn.scalars(select(t.c.input_preview).where(t.c.started_at < start, *ref_where)
                                .order_by(t.c.started_at.desc()).limit(NEW_TOPIC_REFERENCE)).all()
        if not ref and self.since is None and len(cands) > 1:  # no window given: the older half is the reference
            cands, older = cands[:len(cands) // 2], cands[len(cands) // 2:]
            ref = [c[1] for c in older]
        if not ref:
            return []  # nothing older to compare with: everything would look new
        vocab: set[str] = set()
        for text in ref:
            vocab.update(_topic_words(text))
        scored = []
        for tid, text, _ in cands:
            words = _topic_words(text)
            novel = len(words - vocab)
            if novel:
                scored.append((-novel / len(words), -novel, _tiebreak(tid, self.seed), tid))
        return [s[-1] for s in sorted(scored)]

    # ------------------------------------------------------------------ mixed
    def mixed(self, n: int) -> list[tuple[str, str]]:
        pools = {s: self.pool(s) for s in STRATEGIES if s != "random"}
        active = [s for s in STRATEGIES if s == "random" or pools[s]]
        quota = {s: n // len(active) + (1 if i < n % len(active) else 0) for i, s in enumerate(active)}
        chosen: dict[str, str] = {}
        for s in active:  # each signal strategy up to its quota
            if s != "random":
                _take(pools[s], quota[s], s, chosen)
        for s in active:  # what random and short pools left over: other signal pools first, round robin
            if s != "random" and len(chosen) < n - quota["random"]:
                _take(pools[s], n - quota["random"] - len(chosen), s, chosen)
        if len(chosen) < n:
            for tid in self.random(n - len(chosen), avoid=frozenset(chosen)):
                chosen.setdefault(tid, "random")
        return list(chosen.items())[:n]


def _id_range(conn: Any, t: Any) -> tuple[int, int]:
    """The smallest and largest trace id as 128-bit numbers (PK index ends), so random points fall among them."""
    def number(value: Any, default: int) -> int:
        try:
            return int(str(value)[:32].ljust(32, "0"), 16)
        except ValueError:
            return default

    lo = conn.scalar(select(func.min(t.c.trace_id)))  # two queries: SQLite answers each from the index end,
    hi = conn.scalar(select(func.max(t.c.trace_id)))  # but scans the whole table for both in one
    a, b = number(lo, 0), number(hi, 2**128 - 1)
    return (a, b) if a <= b else (0, 2**128 - 1)


def _take(pool: list[str], k: int, strategy: str, chosen: dict[str, str]) -> None:
    for tid in pool:
        if k <= 0:
            return
        if tid not in chosen:
            chosen[tid] = strategy
            k -= 1


def _tiebreak(trace_id: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}:{trace_id}".encode()).hexdigest()


def _topic_words(text: str | None) -> set[str]:
    """The words of an input that can make it a new topic: CJK-aware tokens without function words, the words a
    question is framed with (可以, 如何, how) and bare numbers (an order number is not a topic)."""
    from flywheel.text import QUESTION_WORDS, STOPWORDS, tokenize

    return {w for w in tokenize(text or "") if not w.isdigit() and w not in STOPWORDS and w not in QUESTION_WORDS}
