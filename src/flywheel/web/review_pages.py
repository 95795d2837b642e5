"""/ui/review (queues with per-annotator progress, the new-queue form; .json/.csv twins), /ui/review/new?trace=ID,
/ui/review/{queue}?annotator=NAME (the labelling page: one key per verdict, next item over HTMX; .json twin) and
/ui/review/{queue}/agreement (κ / α with intervals, disagreements, judge vs. people; .json twin), and the trace
page's actions: /ui/traces/{id}/actions (the forms, over HTMX), POST …/review (add to one of the tenant's binary
queues) and POST …/eval (append the trace as a case to a suite file under evals/, the `flywheel promote` code).

The overlap and the blind A / B order are the queue API's (flywheel.feedback.queues): this page only shows what
`next_item` hands this annotator, and "done" when it hands nothing."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote, unquote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from flywheel.errors import UserError
from flywheel.feedback import queues
from flywheel.feedback.events import resolve_trace_ids
from flywheel.feedback.sampling import STRATEGIES
from flywheel.web.auth import Viewer, csrf_token
from flywheel.web.i18n import Translator
from flywheel.web.message_i18n import localize, localize_error
from flywheel.web.pages import gate, posted, tenant_may_see
from flywheel.web.render import as_csv, as_json, fragment, language, not_found, render, split_format
from flywheel.web.review_i18n import Text

router = APIRouter()
ANNOTATOR_COOKIE = "fw_annotator"
CSV_COLUMNS = ("id", "name", "kind", "strategy", "overlap", "n_items", "labels", "complete", "annotators",
               "created_at")
KEYS = {"binary": {"pass": "p", "fail": "f"}, "pairwise": {"a": "a", "b": "b", "tie": "t"}}


def _store(request: Request) -> Any:
    return request.app.state.flywheel.store


def _tenant(viewer: Viewer) -> str | None:
    return viewer.tenant if viewer.scoped else None


def _page(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    return render(request, template, status=status, tx=Text(language(request)), **context)


def _queue(request: Request, viewer: Viewer, ref: str) -> queues.Queue | None:
    try:
        return queues.get_queue(_store(request), ref, tenant=_tenant(viewer))
    except UserError:  # another tenant's queue is as unknown as a missing one
        return None


def _rows(request: Request, viewer: Viewer) -> list[dict[str, Any]]:
    store = _store(request)
    listed = queues.list_queues(store, tenant=_tenant(viewer))
    done = queues.progress_many(store, listed)
    return [{**q.model_dump(), "labels": done[q.id]["labels"], "complete": done[q.id]["complete"],
             "annotators": done[q.id]["annotators"]} for q in listed]


# ------------------------------------------------------------------------------------------- the list
@router.get("/ui/review", include_in_schema=False)
@router.get("/ui/review.json", include_in_schema=False)
@router.get("/ui/review.csv", include_in_schema=False)
def queues_page(request: Request) -> Response:
    fmt = split_format(request.url.path)[1]
    viewer = gate(request, fmt)
    if not isinstance(viewer, Viewer):
        return viewer
    rows = _rows(request, viewer)
    if fmt == "json":
        return as_json(rows)
    if fmt == "csv":
        return as_csv(rows, CSV_COLUMNS, "review-queues.csv")
    # `flywheel review sample` without --tenant builds a queue over every tenant, which a tenant's key never sees:
    # say so, or a one-tenant project's queues just vanish from /ui once its first key exists
    shared = sum(q.tenant is None for q in queues.list_queues(_store(request))) if viewer.scoped else 0
    return _page(request, "review_queues.html", rows=rows, form=_form_defaults(request), errors={}, shared=shared,
                 tenant=viewer.tenant)


def _form_defaults(request: Request, trace: str = "") -> dict[str, str]:
    review = request.app.state.flywheel.project.config.review
    return {"kind": "binary", "strategy": "mixed", "n": "50", "overlap": str(review.overlap), "name": "", "app": "",
            "trace_ids": trace}


def _strategies() -> list[str]:
    return ["mixed", *STRATEGIES]


@router.get("/ui/review/new", include_in_schema=False)
def new_queue_page(request: Request, trace: str = "") -> Response:
    """The new-queue form with one trace filled in (the trace page's "add to review queue" button)."""
    viewer = gate(request)
    if not isinstance(viewer, Viewer):
        return viewer
    if trace.strip():
        try:
            trace = resolve_trace_ids(_store(request), [trace], tenant=_tenant(viewer))[0]
        except UserError:  # an ambiguous prefix names no one trace
            return not_found(request, f"no trace with id '{trace}'")
        t = _store(request).table("traces")
        with _store(request).connect() as conn:
            found = conn.execute(select(t.c.trace_id, t.c.tenant).where(t.c.trace_id == trace)).first()
        if found is None or not tenant_may_see(viewer, found[1]):
            return not_found(request, f"no trace with id '{trace}'")
    return _page(request, "review_new.html", form=_form_defaults(request, trace), errors={},
                 strategies=_strategies())


@router.post("/ui/review/new", include_in_schema=False)
async def create_queue(request: Request) -> Response:
    checked = await posted(request)
    if isinstance(checked, Response):
        return checked
    viewer, form = checked
    errors: dict[str, str] = {}
    numbers: dict[str, int] = {}
    tx = Text(language(request))
    for name, low, high in (("n", 1, 10_000), ("overlap", 1, 100)):
        raw = form.get(name, "").strip()
        if raw.isdigit() and low <= int(raw) <= high:
            numbers[name] = int(raw)
        else:
            errors[name] = tx("err_whole_number", low=low, high=high)
    kind, strategy = form.get("kind", "binary"), form.get("strategy", "mixed")
    if kind not in queues.CHOICES:
        errors["kind"] = tx("err_kind")
    if strategy not in _strategies():
        errors["strategy"] = tx("err_strategy", choices=", ".join(_strategies()))
    queue_name = form.get("name", "").strip()
    if queue_name == "new":
        errors["name"] = tx("err_name_new")
    elif queue_name and not queues.valid_name(queue_name):
        errors["name"] = tx("err_name")
    ids = [x for x in form.get("trace_ids", "").replace(",", " ").split() if x]  # create_queue resolves prefixes
    if ids and kind != "binary":
        errors["trace_ids"] = tx("err_ids_pairwise")
    if not errors:
        try:
            queue = queues.create_queue(
                _store(request), form.get("name", "").strip() or None, kind=kind, overlap=numbers["overlap"],
                strategy=strategy, n=numbers["n"], app=form.get("app", "").strip() or None,
                trace_ids=ids or None, tenant=_tenant(viewer))
        except UserError as exc:
            if not ids and not _has_traces(request, viewer):  # a new project: say what to do, in the page's language
                errors["form"] = tx("err_no_traces")
            else:
                errors["form"] = localize_error(language(request), exc)
        else:
            return RedirectResponse(f"/ui/review/{quote(queue.name)}", status_code=303)
    return _page(request, "review_new.html", status=400, form={**_form_defaults(request), **form}, errors=errors,
                 strategies=_strategies())


def _has_traces(request: Request, viewer: Viewer) -> bool:
    t = _store(request).table("traces")
    query = select(t.c.trace_id).limit(1)
    if viewer.scoped:
        query = query.where(t.c.tenant == viewer.tenant)
    with _store(request).connect() as conn:
        return conn.execute(query).first() is not None


# ------------------------------------------------------------------------------------------- labelling
def _annotator_of(request: Request) -> tuple[str | None, str | None]:
    """(annotator name, error) from ?annotator= or the cookie."""
    raw = request.query_params.get("annotator")
    if raw is None:
        raw = request.cookies.get(ANNOTATOR_COOKIE)
        if raw is None:
            return None, None
        raw = unquote(raw)
    name = raw.strip()
    if not name or len(name) > 200 or any(ord(c) < 32 for c in name):
        return None, "1-200 printable characters"
    return name, None


def _item_context(request: Request, queue: queues.Queue, annotator: str, item: queues.Item | None,
                  **extra: Any) -> dict[str, Any]:
    progress = queues.progress(_store(request), queue)
    return {"queue": queue, "annotator": annotator, "item": item, "keys": KEYS[queue.kind], "progress": progress,
            "mine": progress["annotators"].get(annotator, 0), **extra}


def _next(request: Request, queue: queues.Queue, annotator: str, skip: list[str] | None = None) -> queues.Item | None:
    ttl = request.app.state.flywheel.project.config.review.lock_ttl_s
    return queues.next_item(_store(request), queue, annotator, lock_ttl_s=ttl, skip=skip or ())


@router.get("/ui/review/{queue_ref}", include_in_schema=False)
def queue_page(request: Request, queue_ref: str) -> Response:
    ref, fmt = split_format(queue_ref)
    viewer = gate(request, fmt)
    if not isinstance(viewer, Viewer):
        return viewer
    queue = _queue(request, viewer, ref)
    if queue is None:
        return not_found(request, f"no review queue '{ref}'", fmt)
    store = _store(request)
    if fmt != "html":
        rows = [{"id": i.id, "position": i.position, "trace_id": i.trace_id, "trace_id_b": i.trace_id_b,
                 "stratum": i.stratum, "n_labels": i.n_labels} for i in queues.items(store, queue)]
        if fmt == "csv":
            return as_csv(rows, ("id", "position", "trace_id", "trace_id_b", "stratum", "n_labels"),
                          f"review-{queue.name}.csv")
        return as_json(rows, queue=queue.model_dump(), progress=queues.progress(store, queue))
    annotator, error = _annotator_of(request)
    if annotator is None:
        suggestion = viewer.name if viewer.kind == "key" else ""
        return _page(request, "review_queue.html", status=400 if error else 200, queue=queue, annotator=None,
                     error=error, suggestion=suggestion, progress=queues.progress(store, queue))
    item = _next(request, queue, annotator)
    response = _page(request, "review_queue.html", **_item_context(request, queue, annotator, item), error=None,
                     last=None, message=None)
    # percent-encoded: a cookie header is Latin-1, and annotators may be called 丽丽
    if request.cookies.get(ANNOTATOR_COOKIE) != quote(annotator, safe=""):
        response.set_cookie(ANNOTATOR_COOKIE, quote(annotator, safe=""), path="/ui", max_age=365 * 86400,
                            samesite="lax")
    return response


async def _posted(request: Request, queue_ref: str) -> tuple[Viewer, queues.Queue, str, dict[str, str]] | Response:
    """The checks every labelling POST makes: viewer, CSRF, the queue (the viewer's tenant's), the annotator."""
    checked = await posted(request, "fragment")
    if isinstance(checked, Response):
        return checked
    viewer, form = checked
    queue = _queue(request, viewer, queue_ref)
    if queue is None:
        return not_found(request, f"no review queue '{queue_ref}'", "fragment")
    annotator = form.get("annotator", "").strip()
    if not annotator:
        return not_found(request, "an annotator name is needed", "fragment")
    return viewer, queue, annotator, form


def _answer(request: Request, queue: queues.Queue, annotator: str, item: queues.Item | None, **extra: Any) -> Response:
    if request.headers.get("hx-request") != "true":  # a plain form post (no JavaScript): back to the page
        return RedirectResponse(f"/ui/review/{quote(queue.name)}?annotator={quote(annotator)}", status_code=303)
    nonce = request.cookies.get("fw_csrf") or ""
    return fragment(request, "review_item.html", csrf=csrf_token(request, nonce) if nonce else "",
                    tx=Text(language(request)), **_item_context(request, queue, annotator, item, **extra))


@router.post("/ui/review/{queue_ref}/label", include_in_schema=False)
async def label_item(request: Request, queue_ref: str) -> Response:
    got = await _posted(request, queue_ref)
    if isinstance(got, Response):
        return got
    _, queue, annotator, form = got
    item_id = form.get("item_id", "")
    message = None
    try:
        item = queues.get_item(_store(request), item_id)
        if item.queue_id != queue.id:
            raise queues.NotFoundError(f"no review item {item_id!r} in this queue")
        queues.label(_store(request), item_id, annotator, form.get("verdict", ""), reason=form.get("reason"),
                     correction=form.get("correction"))
        last: str | None = item_id
    except UserError as exc:  # a second label, a full item, a bad verdict: say so and go on
        message, last = localize(language(request), exc.message, exc), form.get("last") or None
    return _answer(request, queue, annotator, _next(request, queue, annotator), last=last, message=message)


def _in_queue(request: Request, queue: queues.Queue, item_id: str) -> bool:
    """Whether `item_id` is an item of `queue`: a form may name only the items of the queue its URL names (the
    viewer's tenant's), not give back another queue's claims."""
    try:
        return queues.get_item(_store(request), item_id).queue_id == queue.id
    except UserError:
        return False


@router.post("/ui/review/{queue_ref}/skip", include_in_schema=False)
async def skip_item(request: Request, queue_ref: str) -> Response:
    got = await _posted(request, queue_ref)
    if isinstance(got, Response):
        return got
    _, queue, annotator, form = got
    skipped = [x for x in form.get("skipped", "").split(",") if x][-200:]
    item_id = form.get("item_id", "")
    if item_id and _in_queue(request, queue, item_id):
        queues.release(_store(request), item_id, annotator)
        skipped.append(item_id)
    item = _next(request, queue, annotator, skipped)
    return _answer(request, queue, annotator, item, last=form.get("last") or None, message=None,
                   skipped=",".join(skipped))


@router.post("/ui/review/{queue_ref}/undo", include_in_schema=False)
async def undo_label(request: Request, queue_ref: str) -> Response:
    got = await _posted(request, queue_ref)
    if isinstance(got, Response):
        return got
    _, queue, annotator, form = got
    item_id = form.get("last", "")
    store = _store(request)
    try:
        if queues.get_item(store, item_id).queue_id != queue.id:
            raise queues.NotFoundError(f"no review item {item_id!r} in this queue")
        queues.undo(store, item_id, annotator)
    except UserError as exc:
        return _answer(request, queue, annotator, _next(request, queue, annotator), last=None,
                       message=localize(language(request), exc.message, exc))
    current = form.get("item_id")
    if current and _in_queue(request, queue, current):  # hand the item on screen back: the undone one comes first
        queues.release(store, current, annotator)
    item = queues.get_item(store, item_id, annotator)
    return _answer(request, queue, annotator, item, last=None, message=Text(language(request))("undone"))


# ------------------------------------------------------------------------------------------- agreement
def judge_line(store: Any, queue: queues.Queue) -> dict[str, Any] | None:
    """The last judge calibration measured on this queue's labels: {check_name, version, kappa, n_heldout …}."""
    from flywheel.evals.calibration_store import judge_status
    from flywheel.store.schema_evals import judge_calibrations as jc

    with store.engine.connect() as conn:
        row = conn.execute(select(jc.c.base_criterion, jc.c.check_name).where(jc.c.queue_id == queue.id)
                           .order_by(jc.c.created_at.desc()).limit(1)).first()
    if row is None:
        return None
    status = judge_status(store, row[0])
    return None if status is None else {"check_name": row[1], **status}


@router.get("/ui/review/{queue_ref}/agreement", include_in_schema=False)
@router.get("/ui/review/{queue_ref}/agreement.json", include_in_schema=False)
def agreement_page(request: Request, queue_ref: str) -> Response:
    fmt = "json" if request.url.path.endswith(".json") else "html"
    viewer = gate(request, fmt)
    if not isinstance(viewer, Viewer):
        return viewer
    queue = _queue(request, viewer, queue_ref)
    if queue is None:
        return not_found(request, f"no review queue '{queue_ref}'", fmt)
    from flywheel.feedback.agreement import agreement_report

    store = _store(request)
    labels = queues.labels(store, queue)
    report = agreement_report([(lb.item_id, lb.annotator, lb.verdict) for lb in labels], n_boot=1000, seed=0)
    traces = {lb.item_id: (lb.trace_id, lb.trace_id_b) for lb in labels}
    reasons: dict[str, dict[str, str]] = {}
    for lb in labels:
        if lb.reason:
            reasons.setdefault(lb.item_id, {})[lb.annotator] = lb.reason
    for d in report["disagreements"]:
        d["trace_id"], d["trace_id_b"] = traces.get(d["item_id"], (None, None))
        d["reasons"] = reasons.get(d["item_id"], {})
    judge = judge_line(store, queue)
    if fmt == "json":
        return as_json(report["disagreements"], queue=queue.model_dump(), progress=queues.progress(store, queue),
                       report={k: v for k, v in report.items() if k != "disagreements"}, judge=judge)
    return _page(request, "review_agreement.html", queue=queue, report=report, judge=judge,
                 progress=queues.progress(store, queue), generated=time.time())


# ------------------------------------------------------------------------------------------- trace page actions
# The trace actions' labels: keys `action_*` of the dashboard's text tables (flywheel.web.i18n, English and Chinese).
ACTION_KEYS = ("add_to_queue", "queue", "add", "new_queue", "add_to_suite", "suite", "new_suite", "no_queue", "added",
               "skipped", "written", "admin_only", "in_suite")


def _action_text(request: Request) -> dict[str, str]:
    """The trace actions' labels in the page's language (the template reads them as `ax.KEY`)."""
    t = Translator(language(request))
    return {key: t(f"action_{key}") for key in ACTION_KEYS}


def _visible_trace(request: Request, viewer: Viewer, trace: str) -> str | None:
    t = _store(request).table("traces")
    with _store(request).connect() as conn:
        found = conn.execute(select(t.c.trace_id, t.c.tenant).where(t.c.trace_id == trace.strip().lower())).first()
    return found[0] if found is not None and tenant_may_see(viewer, found[1]) else None


def _actions(request: Request, viewer: Viewer, trace: str, message: str | None = None, error: str | None = None
             ) -> Response:
    from flywheel.web.trace_view import suite_files

    nonce = request.cookies.get("fw_csrf") or ""
    binary = [q for q in queues.list_queues(_store(request), tenant=_tenant(viewer)) if q.kind == "binary"]
    return fragment(request, "trace_actions.html", trace_id=trace, queues=binary, message=message, error=error,
                    suites=suite_files(request.app.state.flywheel.project.root), may_write_suites=not viewer.scoped,
                    csrf=csrf_token(request, nonce) if nonce else "",
                    ax=_action_text(request))


@router.get("/ui/traces/{trace}/actions", include_in_schema=False)
def trace_actions(request: Request, trace: str) -> Response:
    """The trace page's "add to review queue" and "add to eval suite" forms (loaded over HTMX)."""
    viewer = gate(request, "fragment")
    if not isinstance(viewer, Viewer):
        return viewer
    found = _visible_trace(request, viewer, trace)
    if found is None:
        return not_found(request, f"no trace with id '{trace}'", "fragment")
    return _actions(request, viewer, found)


async def _trace_post(request: Request, trace: str) -> tuple[Viewer, str, dict[str, str]] | Response:
    checked = await posted(request, "fragment")
    if isinstance(checked, Response):
        return checked
    viewer, form = checked
    found = _visible_trace(request, viewer, trace)
    if found is None:
        return not_found(request, f"no trace with id '{trace}'", "fragment")
    return viewer, found, form


def _done(request: Request, viewer: Viewer, trace: str, message: str | None, error: str | None) -> Response:
    if request.headers.get("hx-request") != "true":  # a plain form post (no JavaScript): back to the trace
        if error:
            return render(request, "error.html", status=400, title="400", message=error)
        return RedirectResponse(f"/ui/traces/{trace}", status_code=303)
    return _actions(request, viewer, trace, message, error)  # 200: HTMX swaps no 4xx answer in


@router.post("/ui/traces/{trace}/review", include_in_schema=False)
async def add_trace_to_queue(request: Request, trace: str) -> Response:
    got = await _trace_post(request, trace)
    if isinstance(got, Response):
        return got
    viewer, trace, form = got
    ax = _action_text(request)
    try:
        queue = queues.get_queue(_store(request), form.get("queue", ""), tenant=_tenant(viewer))
        result = queues.add_items(_store(request), queue, [trace], tenant=_tenant(viewer))
    except UserError as exc:
        return _done(request, viewer, trace, None, localize(language(request), exc.message, exc))
    return _done(request, viewer, trace, ax["added"].format(q=queue.name) if result["added"] else ax["skipped"], None)


@router.post("/ui/traces/{trace}/eval", include_in_schema=False)
async def add_trace_to_suite(request: Request, trace: str) -> Response:
    """Append the trace as a case to a suite file under evals/ (the `flywheel promote --traces` code)."""
    got = await _trace_post(request, trace)
    if isinstance(got, Response):
        return got
    viewer, trace, form = got
    if viewer.scoped:  # suites are the project's, shared by every tenant: an admin (or open-mode) job
        return _done(request, viewer, trace, None, _action_text(request)["admin_only"])
    from flywheel.evals import promote_sources
    from flywheel.evals.promote import write_suite
    from flywheel.web.trace_view import SUITE_DIR, suite_path

    project = request.app.state.flywheel.project
    ax = _action_text(request)
    try:
        path = suite_path(project.root, form.get("new_suite", "").strip() or form.get("suite", ""))
        result = write_suite(project, path, promote_sources.from_traces(_store(request), [trace]))
    except UserError as exc:
        if exc.message.startswith("cannot tell which app"):  # its hint names the CLI's --target; this form has none
            to = f"{SUITE_DIR}/{path.relative_to((project.root / SUITE_DIR).resolve())}"
            exc = UserError(exc.message, hint="the trace's app is not one of flywheel.yaml's apps: choose an existing "
                            f"suite, or run `flywheel promote --traces {trace[:12]} --to {to} --target app:NAME`")
        return _done(request, viewer, trace, None, localize_error(language(request), exc))
    shown = f"{SUITE_DIR}/{path.relative_to((project.root / SUITE_DIR).resolve())}"
    message = ax["written"].format(c=", ".join(result.written), p=shown) if result.written else \
        ax["in_suite"].format(p=shown)
    return _done(request, viewer, trace, message, None)
