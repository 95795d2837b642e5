"""Reviewed traces as training material: each review item with its annotators' majority verdict, how much they
agreed, the correction they wrote and the exact final prompt the model was sent; plus the split into train and
holdout that never puts the same (normalised) input on both sides. Used by export and train-check."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from flywheel.errors import UserError
from flywheel.feedback import queues as review
from flywheel.feedback.agreement import agreement_report, majority
from flywheel.text.tokenize import normalize

if TYPE_CHECKING:
    from flywheel.store import Store

_SPACE = re.compile(r"\s+")
_PUNCT = re.compile(r"[^\w\s]")


TRACE_GONE = "trace no longer in the store"


class NoLabelsError(UserError):
    """Nothing labelled to learn from (exit 2, with what to label first)."""


@dataclass
class Labelled:
    item_id: str
    queue: str
    kind: str  # binary | pairwise
    trace_id: str
    verdict: str  # the annotators' majority: pass / fail, or a / b for pairwise
    agreement: float  # share of the item's labels that agree with the majority
    n_labels: int
    input: str = ""
    output: str = ""
    prompt: list[dict[str, Any]] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)
    trace_id_b: str | None = None
    output_b: str | None = None
    correction: str | None = None
    reasons: list[str] = field(default_factory=list)
    annotators: list[str] = field(default_factory=list)
    started_at: float | None = None
    app: str | None = None
    model: str | None = None


@dataclass
class Collected:
    items: list[Labelled]
    queues: list[str]
    n_labels: int
    agreement: dict[str, Any]  # agreement_report of every label of the queues read (no disagreement list)
    dropped: dict[str, int] = field(default_factory=dict)  # why items were left out → how many
    # trace ids of every labelled item read, the ones left out (ties, low agreement, --since / --app) included:
    # the reviewers have spoken on these, so no other path (a user's correction feedback) brings them back
    reviewed: set[str] = field(default_factory=set)
    # mean share of an item's labels that agree with its most common verdict, over every labelled item read
    mean_item_agreement: float | None = None


def norm_input(text: str) -> str:
    """What counts as "the same input" for the split: NFKC, lower case, punctuation and spacing ignored."""
    return _SPACE.sub(" ", _PUNCT.sub(" ", normalize(text or ""))).strip()


def no_labels(queue: str | None) -> NoLabelsError:
    where = f"queue {queue}" if queue else "any review queue"
    return NoLabelsError(f"no labelled data in {where}: nothing to learn from",
                         hint="label some traces first: `flywheel review sample -n 50` builds a queue, then "
                              "`flywheel review` (pass / fail, with corrections) or `flywheel review sample --kind "
                              "pairwise` for A/B preferences")


def collect(store: Store, queue: str | None = None, *, since: float | None = None, app: str | None = None,
            min_agreement: float | None = None, kinds: tuple[str, ...] = ("binary", "pairwise")) -> Collected:
    """Every labelled item of `queue` (or of every queue) with a majority verdict, filtered by trace start time,
    app and annotator agreement. NoLabelsError when no item has a label at all."""
    if min_agreement is not None and not 0.0 <= min_agreement <= 1.0:
        raise UserError(f"--min-agreement is a share between 0 and 1, got {min_agreement}")
    chosen = [review.get_queue(store, queue)] if queue else review.list_queues(store)
    chosen = [q for q in chosen if q.kind in kinds]
    out: list[Labelled] = []
    dropped: Counter[str] = Counter()
    read_labels: dict[str, list[tuple[str, str, str]]] = {}  # queue kind → labels
    reviewed: set[str] = set()
    shares: list[float] = []
    for q in chosen:
        labels = review.labels(store, q)
        if not labels:
            continue
        votes = majority((lb.item_id, lb.annotator, lb.verdict) for lb in labels)
        by_item: dict[str, list[review.Label]] = {}
        for lb in labels:
            by_item.setdefault(lb.item_id, []).append(lb)
        for item in review.items(store, q):
            mine = by_item.get(item.id)
            if not mine:
                continue
            # agreement describes how the queue was labelled: every labelled item counts, the ties and the
            # low-agreement items left out below included (leaving them out would inflate κ towards 1)
            read_labels.setdefault(q.kind, []).extend((lb.item_id, lb.annotator, lb.verdict) for lb in mine)
            reviewed.update(t for t in (item.trace_id, item.trace_id_b) if t)
            shares.append(max(Counter(lb.verdict for lb in mine).values()) / len(mine))
            verdict = votes.get(item.id)
            if verdict is None:
                dropped["tie between annotators"] += 1
                continue
            if verdict == "tie":
                dropped["pairwise tie"] += 1
                continue
            share = sum(lb.verdict == verdict for lb in mine) / len(mine)
            if min_agreement is not None and share < min_agreement:
                dropped["annotator agreement below --min-agreement"] += 1
                continue
            agreeing = [lb for lb in mine if lb.verdict == verdict]
            out.append(Labelled(
                item_id=item.id, queue=q.name, kind=q.kind, trace_id=item.trace_id, verdict=verdict,
                agreement=share, n_labels=len(mine), input=item.input, output=item.output, prompt=item.prompt,
                sources=item.sources, trace_id_b=item.trace_id_b, output_b=item.output_b,
                correction=next((lb.correction for lb in reversed(agreeing) if lb.correction), None),
                reasons=list(dict.fromkeys(lb.reason for lb in agreeing if lb.reason)),
                annotators=sorted({lb.annotator for lb in mine})))
    if not read_labels and not dropped:
        raise no_labels(queue)
    stored = add_trace_facts(store, out)
    kept = [x for x in out if x.trace_id in stored and (not x.trace_id_b or x.trace_id_b in stored)]
    if len(kept) < len(out):  # deleted from the store after review: the prompt and answer went with them
        dropped[TRACE_GONE] = len(out) - len(kept)
        out = kept
    if since is not None or app is not None:
        before = len(out)
        out = [x for x in out if (since is None or (x.started_at or 0.0) >= since) and (app is None or x.app == app)]
        if before - len(out):
            dropped["outside --since / --app"] = before - len(out)
    return Collected(items=out, queues=[q.name for q in chosen], n_labels=sum(map(len, read_labels.values())),
                     agreement=kind_agreement(read_labels),
                     dropped=dict(dropped), reviewed=reviewed,
                     mean_item_agreement=round(sum(shares) / len(shares), 4) if shares else None)


def kind_agreement(by_kind: dict[str, list[tuple[str, str, str]]]) -> dict[str, Any]:
    """The agreement report of the binary labels (the pairwise ones when there are none), with its `kind`; the
    other kind's statistics under `other_kind`. Pass/fail and a/b/tie verdicts are never pooled: categories that
    can never meet on one item make chance agreement look smaller, and κ and α larger, than they are. The same
    resamples and seed as `flywheel review agreement`, which prints the same numbers."""
    if not by_kind:
        return {}
    main = "binary" if by_kind.get("binary") else "pairwise"
    report = agreement_report(by_kind[main], n_boot=1000, seed=0)
    report.pop("disagreements", None)
    report["kind"] = main
    for kind, rows in by_kind.items():
        if kind != main and rows:
            other = agreement_report(rows, n_boot=1000, seed=0)
            report["other_kind"] = {"kind": kind, "n_labels": other["n_labels"],
                                    **{k: other[k] for k in ("fleiss_kappa", "fleiss_ci95", "krippendorff_alpha",
                                                             "krippendorff_ci95")}}
    return report


def add_trace_facts(store: Store, items: list[Labelled]) -> set[str]:
    """Set each item's start time, app and model from its trace; returns the ids of the traces (A and B) found."""
    t = store.table("traces")
    ids = list({x.trace_id for x in items} | {x.trace_id_b for x in items if x.trace_id_b})
    facts: dict[str, tuple[Any, Any, Any]] = {}
    with store.connect() as conn:
        for i in range(0, len(ids), 500):
            for tid, started, app, model in conn.execute(select(t.c.trace_id, t.c.started_at, t.c.app, t.c.model)
                                                         .where(t.c.trace_id.in_(ids[i:i + 500]))):
                facts[tid] = (started, app, model)
    for x in items:
        x.started_at, x.app, x.model = facts.get(x.trace_id, (None, None, None))
    return set(facts)


def corrections(store: Store, trace_ids: list[str]) -> dict[str, str]:
    """trace_id → the latest `correction` feedback event's text (users and annotators write these)."""
    ft = store.table("feedback")
    out: dict[str, str] = {}
    with store.connect() as conn:
        for i in range(0, len(trace_ids), 500):
            rows = conn.execute(select(ft.c.trace_id, ft.c.value).where(
                ft.c.trace_id.in_(trace_ids[i:i + 500]), ft.c.name == "correction").order_by(ft.c.created_at, ft.c.id))
            for tid, value in rows:
                if isinstance(value, str) and value.strip():
                    out[tid] = value
    return out


def judge_verdicts(store: Store, trace_ids: list[str], name: str | None = None
                   ) -> dict[str, tuple[bool, float | None]]:
    """trace_id → (the LLM judge's pass, its recorded cost in USD or None) from `feedback` rows of source judge
    (only those written under `name` when given, e.g. a monitor.online evaluator's name); the latest wins."""
    ft = store.table("feedback")
    out: dict[str, tuple[bool, float | None]] = {}
    with store.connect() as conn:
        for i in range(0, len(trace_ids), 500):
            q = select(ft.c.trace_id, ft.c.value).where(ft.c.trace_id.in_(trace_ids[i:i + 500]), ft.c.source == "judge")
            if name is not None:
                q = q.where(ft.c.name == name)
            rows = conn.execute(q.order_by(ft.c.created_at, ft.c.id))
            for tid, value in rows:
                verdict = _passed(value)
                if verdict is not None:
                    cost = value.get("cost_usd") if isinstance(value, dict) else None
                    out[tid] = (verdict, float(cost) if isinstance(cost, int | float) else None)
    return out


def _passed(value: Any) -> bool | None:
    if isinstance(value, dict):
        value = value.get("passed", value.get("verdict"))
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("pass", "fail"):
        return value.lower() == "pass"
    if isinstance(value, int | float):
        return float(value) >= 0.5
    return None


# ---------------------------------------------------------------------------- the split


def split(keys: list[str], train_share: float, seed: int) -> tuple[set[str], set[str]]:
    """Partition normalised inputs into (train, holdout) groups: every copy of an input lands on one side. The
    order is a seeded hash, so adding data later moves no existing input across."""
    if not 0.0 < train_share <= 1.0:
        raise UserError(f"--split is the train share, between 0 (exclusive) and 1, got {train_share}")
    groups = sorted(set(keys), key=lambda k: hashlib.sha256(f"{seed}\0{k}".encode()).hexdigest())
    n_train = len(groups) if train_share >= 1.0 else min(len(groups) - 1, max(1, round(len(groups) * train_share)))
    if train_share < 1.0 and len(groups) < 2:
        raise UserError("cannot split one distinct input into train and holdout",
                        hint="label more traces, or pass --split 1 for no holdout")
    return set(groups[:n_train]), set(groups[n_train:])


def check_no_leak(train_inputs: list[str], holdout_inputs: list[str]) -> None:
    """Refuse a split that has the same (normalised) input on both sides."""
    shared = {norm_input(t) for t in train_inputs} & {norm_input(t) for t in holdout_inputs}
    if shared:
        sample = min(shared)[:80]
        raise UserError(f"the split would leak: {len(shared)} input(s) are in both train and holdout "
                        f"(e.g. {sample!r})", hint="split by input (flywheel.loop.labelled.split); nothing was written")
