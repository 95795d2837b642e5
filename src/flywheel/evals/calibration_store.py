"""The versioned judge prompts of `flywheel judge calibrate` (table `judge_calibrations`, store/schema_evals.py).

    calibrated_criterion(store, "The answer cites a source.")   # the adopted prompt, else the text as given
    judge_status(store, criterion)                               # its last measured agreement, or None
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from flywheel.store.schema_evals import judge_calibrations as table
from flywheel.text import scrub_secrets
from flywheel.types import content_hash


def judge_key(criterion: str) -> str:
    """What identifies a judge across calibrations: its criterion as written (whitespace-trimmed)."""
    return "judge:" + content_hash(criterion.strip(), n=24)


def save_calibration(store: Any, *, judge_key: str, examples: list[dict[str, str]], **row: Any) -> int:
    """Insert the next version of `judge_key`; returns it. Texts go through the secret scrubber."""
    clean = [{k: scrub_secrets(v) if isinstance(v, str) else v for k, v in e.items()} for e in examples]
    for name in ("base_criterion", "criterion", "prompt"):
        row[name] = scrub_secrets(row[name])
    for _ in range(5):  # two calibrations of the same judge at once: the loser takes the next number
        with store.engine.begin() as conn:
            version = (conn.scalar(select(func.max(table.c.version)).where(table.c.judge_key == judge_key)) or 0) + 1
            try:
                conn.execute(
                    insert(table).values(
                        judge_key=judge_key, version=version, examples=clean, created_at=time.time(), **row
                    )
                )
            except IntegrityError:
                continue
        return version
    raise RuntimeError(f"could not store a new version of {judge_key}")


def latest_calibration(store: Any, key: str, *, adopted: bool = False) -> dict[str, Any] | None:
    """The newest calibration row of `key` (only adopted ones with `adopted=True`), or None."""
    q = select(table).where(table.c.judge_key == key)
    if adopted:
        q = q.where(table.c.adopted.is_(True))
    with store.engine.connect() as conn:
        row = conn.execute(q.order_by(table.c.version.desc()).limit(1)).mappings().first()
    return dict(row) if row is not None else None


def history(store: Any, key: str) -> list[dict[str, Any]]:
    """Every calibration of `key`, oldest first."""
    with store.engine.connect() as conn:
        rows = conn.execute(select(table).where(table.c.judge_key == key).order_by(table.c.version)).mappings()
        return [dict(r) for r in rows]


def calibrated_criterion(store: Any, criterion: str) -> str:
    """The prompt of the newest adopted calibration of this judge, else `criterion` unchanged.

    For the code that builds judge checks (eval runner, guard and online-evaluator builders): pass the result
    as the check's `criterion`."""
    row = latest_calibration(store, judge_key(criterion), adopted=True) if store is not None else None
    return row["prompt"] if row is not None else criterion


def judge_status(store: Any, criterion: str) -> dict[str, Any] | None:
    """The judge's last measured agreement with people: {version, kappa, n_heldout, measured_at, adopted},
    or None when it was never calibrated. κ is that of the prompt in use after the calibration (the new one
    when adopted, else the one measured before)."""
    row = latest_calibration(store, judge_key(criterion)) if store is not None else None
    if row is None:
        return None
    kappa = row["kappa_after"] if row["adopted"] else row["kappa_before"]
    return {
        "version": row["version"],
        "kappa": kappa,
        "n_heldout": row["n_heldout"],
        "measured_at": row["created_at"],
        "adopted": bool(row["adopted"]),
    }
