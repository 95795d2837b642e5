"""Files and batches in the flywheel store: tables `files`, `batches`, `batch_requests`
(flywheel/store/schema_batches.py), and their OpenAI wire shapes (FileObject, Batch).

Every function here is synchronous (routes and the runner call them through `asyncio.to_thread`). A file or a
batch belongs to the tenant that created it; another tenant's id is exactly as absent as a missing one (404).
A batch's request counts and usage are summed from its request rows (and their token details,
`batch_request_usage`), so they never drift from what ran.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, delete, func, insert, select, update

from flywheel.server.errors import ApiError
from flywheel.server.keys import Limits, Principal
from flywheel.store import Store
from flywheel.store.leases import process_gone
from flywheel.store.schema_batches import batch_requests as req_t
from flywheel.store.schema_batches import batches as batch_t
from flywheel.store.schema_batches import files as file_t
from flywheel.store.schema_batches_usage import batch_request_usage as usage_t

# a batch a runner should pick up (validating: created, not yet started)
ACTIVE = ("validating", "in_progress", "finalizing", "cancelling")
FINAL = ("completed", "failed", "expired", "cancelled")
LEASE_S = 30.0


def new_id(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(12)}"


# ------------------------------------------------------------------------------------------ files


def file_payload(row: Any) -> dict[str, Any]:
    return {"id": row["id"], "object": "file", "bytes": row["bytes"], "created_at": int(row["created_at"]),
            "filename": row["filename"], "purpose": row["purpose"], "status": "processed",
            "expires_at": int(row["expires_at"]) if row["expires_at"] is not None else None, "status_details": None}


def _file_row(tenant: str, purpose: str, filename: str, content: bytes, now: float,
              expires_at: float | None = None) -> dict[str, Any]:
    return {"id": new_id("file-"), "tenant": tenant, "purpose": purpose, "filename": filename[:255],
            "bytes": len(content), "content": content, "created_at": now, "expires_at": expires_at}


def add_file(store: Store, tenant: str, purpose: str, filename: str, content: bytes, now: float,
             expires_at: float | None = None) -> dict[str, Any]:
    row = _file_row(tenant, purpose, filename, content, now, expires_at)
    with store.begin() as conn:
        conn.execute(insert(file_t).values(**row))
    return row


def _file_columns() -> list[Any]:
    return [c for c in file_t.c if c.name != "content"]


def get_file(store: Store, tenant: str, file_id: str, now: float, *, content: bool = False,
             param: str = "file_id") -> dict[str, Any]:
    """The tenant's file `file_id` (with its bytes when `content`); 404 when it is missing, another tenant's or
    expired."""
    columns = list(file_t.c) if content else _file_columns()
    with store.connect() as conn:
        row = conn.execute(select(*columns).where(file_t.c.id == file_id, file_t.c.tenant == tenant)).mappings().first()
    if row is None or (row["expires_at"] is not None and row["expires_at"] <= now):
        raise ApiError(404, f"no file with id {file_id!r}", param=param, code="file_not_found")
    return dict(row)


def list_files(store: Store, tenant: str, now: float, *, purpose: str | None, limit: int, order: str,
               after: str | None) -> tuple[list[dict[str, Any]], bool]:
    c = file_t.c
    query = select(*_file_columns()).where(c.tenant == tenant, (c.expires_at.is_(None)) | (c.expires_at > now))
    if purpose:
        query = query.where(c.purpose == purpose)
    if after:
        anchor = get_file(store, tenant, after, now, param="after")
        key = (anchor["created_at"], anchor["id"])
        query = query.where((c.created_at < key[0]) | ((c.created_at == key[0]) & (c.id < key[1]))) \
            if order == "desc" else query.where((c.created_at > key[0]) | ((c.created_at == key[0]) & (c.id > key[1])))
    query = query.order_by(c.created_at.desc(), c.id.desc()) if order == "desc" else \
        query.order_by(c.created_at, c.id)
    with store.connect() as conn:
        rows = [dict(r) for r in conn.execute(query.limit(limit + 1)).mappings()]
    return rows[:limit], len(rows) > limit


def delete_file(store: Store, tenant: str, file_id: str, now: float) -> None:
    get_file(store, tenant, file_id, now)
    with store.begin() as conn:
        conn.execute(delete(file_t).where(file_t.c.id == file_id, file_t.c.tenant == tenant))


# ------------------------------------------------------------------------------------------ batches


@dataclass
class Line:
    """One validated input line."""

    line: int
    custom_id: str
    body: dict[str, Any]


def create_batch(store: Store, *, principal: Principal, tenant: str, endpoint: str, input_file_id: str,
                 window_s: float, meta: dict[str, str], model: str | None, lines: list[Line],
                 now: float) -> str:
    bid = new_id("batch_")
    with store.begin() as conn:
        conn.execute(insert(batch_t).values(
            id=bid, tenant=tenant, key_id=principal.key_id, owner=principal.name, admin=principal.admin,
            endpoint=endpoint, input_file_id=input_file_id, completion_window="24h", status="validating", meta=meta,
            errors=None, model=model, total=len(lines), created_at=now, expires_at=now + window_s))
        conn.execute(insert(req_t), [{"batch_id": bid, "line": ln.line, "custom_id": ln.custom_id, "body": ln.body,
                                      "state": "pending"} for ln in lines])
    return bid


def get_batch(store: Store, batch_id: str, tenant: str | None = None, param: str = "batch_id") -> dict[str, Any]:
    """The batch (the tenant's, when `tenant` is given); 404 otherwise."""
    query = select(batch_t).where(batch_t.c.id == batch_id)
    if tenant is not None:
        query = query.where(batch_t.c.tenant == tenant)
    with store.connect() as conn:
        row = conn.execute(query).mappings().first()
    if row is None:
        raise ApiError(404, f"no batch with id {batch_id!r}", param=param, code="batch_not_found")
    return dict(row)


def list_batches(store: Store, tenant: str, *, limit: int, after: str | None) -> tuple[list[dict[str, Any]], bool]:
    c = batch_t.c
    query = select(batch_t).where(c.tenant == tenant)
    if after:
        anchor = get_batch(store, after, tenant, param="after")
        query = query.where((c.created_at < anchor["created_at"]) |
                            ((c.created_at == anchor["created_at"]) & (c.id < anchor["id"])))
    with store.connect() as conn:
        rows = [dict(r) for r in conn.execute(query.order_by(c.created_at.desc(), c.id.desc())
                                              .limit(limit + 1)).mappings()]
    return rows[:limit], len(rows) > limit


def set_status(store: Store, batch_id: str, status: str, now: float, *, only_from: tuple[str, ...] = ACTIVE,
               **values: Any) -> bool:
    """Move the batch to `status` (stamping `<status>_at`) if it is in one of `only_from`; False otherwise."""
    stamp = {f"{status}_at": now} if f"{status}_at" in batch_t.c else {}
    with store.begin() as conn:
        res = conn.execute(update(batch_t).where(batch_t.c.id == batch_id, batch_t.c.status.in_(only_from))
                           .values(status=status, **stamp, **values))
    return bool(res.rowcount)


def finalize(store: Store, batch: dict[str, Any], status: str, now: float, files: dict[str, bytes]) -> bool:
    """Write the batch's result files ({"output_file_id" | "error_file_id": JSONL bytes}) and move it to its final
    `status`, in one transaction: when the batch was already finalized (by another runner that took its lease
    over, or before a restart), nothing is written, so no orphan result file is left. False then."""
    bid, c = batch["id"], batch_t.c
    rows = {key: _file_row(batch["tenant"], "batch_output", f"{bid}_{key.removesuffix('_file_id')}.jsonl",
                           content, now) for key, content in files.items()}
    stamp = {f"{status}_at": now} if f"{status}_at" in c else {}
    with store.begin() as conn:
        res = conn.execute(update(batch_t).where(c.id == bid, c.status.in_(("in_progress", "finalizing", "cancelling")))
                           .values(status=status, worker=None, lease_until=None, **stamp,
                                   **{key: row["id"] for key, row in rows.items()}))
        if not res.rowcount:
            return False
        for row in rows.values():
            conn.execute(insert(file_t).values(**row))
    return True


def counts(store: Store, batch_id: str) -> dict[str, int]:
    """completed / failed request counts and the token usage of the batch's finished requests."""
    c, u = req_t.c, usage_t.c
    query = select(func.sum(case((c.state == "done", 1), else_=0)), func.sum(case((c.state == "failed", 1), else_=0)),
                   func.sum(func.coalesce(c.input_tokens, 0)), func.sum(func.coalesce(c.output_tokens, 0))
                   ).where(c.batch_id == batch_id)
    details = select(func.sum(u.cached_tokens), func.sum(u.reasoning_tokens)).where(u.batch_id == batch_id)
    with store.connect() as conn:
        done, failed, tin, tout = conn.execute(query).one()
        cached, reasoning = conn.execute(details).one()
    return {"completed": int(done or 0), "failed": int(failed or 0), "input_tokens": int(tin or 0),
            "output_tokens": int(tout or 0), "cached_tokens": int(cached or 0),
            "reasoning_tokens": int(reasoning or 0)}


def batch_payload(row: dict[str, Any], tally: dict[str, int]) -> dict[str, Any]:
    def at(name: str) -> int | None:
        value = row[f"{name}_at"]
        return int(value) if value is not None else None

    return {
        "id": row["id"], "object": "batch", "endpoint": row["endpoint"], "errors": row["errors"],
        "input_file_id": row["input_file_id"], "completion_window": row["completion_window"],
        "status": row["status"], "output_file_id": row["output_file_id"], "error_file_id": row["error_file_id"],
        "created_at": int(row["created_at"]), "in_progress_at": at("in_progress"), "expires_at": at("expires"),
        "finalizing_at": at("finalizing"), "completed_at": at("completed"), "failed_at": at("failed"),
        "expired_at": at("expired"), "cancelling_at": at("cancelling"), "cancelled_at": at("cancelled"),
        "request_counts": {"total": row["total"], "completed": tally["completed"], "failed": tally["failed"]},
        "metadata": row["meta"] or None, "model": row["model"],
        "usage": {"input_tokens": tally["input_tokens"],
                  "input_tokens_details": {"cached_tokens": tally["cached_tokens"]},
                  "output_tokens": tally["output_tokens"],
                  "output_tokens_details": {"reasoning_tokens": tally["reasoning_tokens"]},
                  "total_tokens": tally["input_tokens"] + tally["output_tokens"]},
    }


# ------------------------------------------------------------------------------------------ requests


def pending(store: Store, batch_id: str) -> list[Line]:
    c = req_t.c
    with store.connect() as conn:
        rows = conn.execute(select(c.line, c.custom_id, c.body).where(c.batch_id == batch_id, c.state == "pending")
                            .order_by(c.line)).all()
    return [Line(r.line, r.custom_id, r.body) for r in rows]


@dataclass(frozen=True)
class Tokens:
    """A finished request's token usage, as its response body reported it."""

    input: int = 0
    output: int = 0
    cached: int = 0  # of `input`, served from the upstream's prompt cache
    reasoning: int = 0  # of `output`, spent reasoning


def record(store: Store, batch_id: str, line: int, ok: bool, result: dict[str, Any], tokens: Tokens,
           now: float) -> None:
    """Keep a finished request's output line and its token details (once: a row that is no longer pending is left
    as it is, and its details are not counted twice)."""
    c = req_t.c
    with store.begin() as conn:
        res = conn.execute(update(req_t).where(c.batch_id == batch_id, c.line == line, c.state == "pending").values(
            state="done" if ok else "failed", result=result, input_tokens=tokens.input, output_tokens=tokens.output,
            finished_at=now))
        if res.rowcount and (tokens.cached or tokens.reasoning):
            conn.execute(insert(usage_t).values(batch_id=batch_id, line=line, cached_tokens=tokens.cached,
                                                reasoning_tokens=tokens.reasoning))


def results(store: Store, batch_id: str) -> list[tuple[str, dict[str, Any] | None, str]]:
    """(state, output line or None, custom_id) of every request, in input order."""
    c = req_t.c
    with store.connect() as conn:
        return [(r.state, r.result, r.custom_id) for r in conn.execute(
            select(c.state, c.result, c.custom_id).where(c.batch_id == batch_id).order_by(c.line))]


# ------------------------------------------------------------------------------------------ leases


def claim(store: Store, me: str, now: float) -> list[str]:
    """The active batches this runner now holds (every one, however many: a runner that looked only at the oldest
    few would leave a newer batch waiting behind them): its own (their leases renewed), unheld ones, lapsed leases,
    and those of a dead process of this host; each claimed by a compare-and-set on its worker, so two runners never
    hold one batch."""
    c = batch_t.c
    with store.connect() as conn:
        rows = conn.execute(select(c.id, c.worker, c.lease_until).where(c.status.in_(ACTIVE))
                            .order_by(c.created_at)).all()
    held = []
    if any(row.worker == me for row in rows):  # this runner's leases, renewed in one statement
        with store.begin() as conn:
            conn.execute(update(batch_t).where(c.worker == me, c.status.in_(ACTIVE)).values(lease_until=now + LEASE_S))
        # those still ours (a lease that lapsed may have been taken over meanwhile)
        with store.connect() as conn:
            held = list(conn.execute(select(c.id).where(c.worker == me, c.status.in_(ACTIVE))
                                     .order_by(c.created_at)).scalars())
    for row in rows:
        if row.worker == me or (row.worker and (row.lease_until or 0) > now and not process_gone(row.worker)):
            continue
        with store.begin() as conn:
            cond = c.worker.is_(None) if row.worker is None else c.worker == row.worker
            res = conn.execute(update(batch_t).where(c.id == row.id, cond)
                               .values(worker=me, lease_until=now + LEASE_S))
        if res.rowcount:
            held.append(row.id)
    return held


def release(store: Store, me: str) -> None:
    """Let the batches this runner holds be taken at once (a clean shutdown)."""
    with store.begin() as conn:
        conn.execute(update(batch_t).where(batch_t.c.worker == me).values(worker=None, lease_until=None))


def owner(store: Store, batch: dict[str, Any]) -> Principal | None:
    """Who the batch's requests run as: its key as it is now (None once revoked: its requests fail with 401),
    the admin, or the open principal."""
    if batch["key_id"] is None:
        return Principal(name=batch["owner"], tenant=batch["tenant"], admin=bool(batch["admin"]))
    keys = store.table("api_keys")
    with store.connect() as conn:
        row = conn.execute(select(keys).where(keys.c.key_id == batch["key_id"])).mappings().first()
    if row is None or row["revoked_at"] is not None:
        return None
    limits = Limits(rpm=row["rpm"], tpm=row["tpm"], budget_usd=row["budget_usd"], budget_period=row["budget_period"])
    return Principal(name=row["name"], tenant=row["tenant"], key_id=row["key_id"], models=row["models"],
                     apps=row["apps"], limited=limits.any, limits=limits)
