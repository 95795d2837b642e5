"""`flywheel check NAME FILE.jsonl`: run one registered check over the rows of a JSONL file.

Each row is a JSON object; the text under check is `--field` (default `text`). `--as` says what the
text is: a model `output` (the default; the row's `input`, `reference` and `sources` fill the check's
context), a user's `input` (as an input guard sees it) or a retrieved `source` (as the `sources:`
guard stage sees it; the check must be able to scan sources, like `injection`). One verdict per row,
in row order; when rows carry `label` (1 = should be flagged, 0 = clean), precision, recall, F1 and the
flag rate on clean rows follow. A row is flagged when the check does not pass.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from flywheel.cli import emit_json, main
from flywheel.errors import UserError
from flywheel.text.lines import numbered_lines

AS_CHOICES = ("output", "input", "source")
ARRAY_HINT = "write one JSON object per line; from an array: jq -c '.[]' FILE.json > FILE.jsonl"


def read_rows(path: Path, field: str) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) for every non-empty line; a bad row is a UserError naming file:line."""
    rows: list[tuple[int, dict[str, Any]]] = []
    for n, where, line in numbered_lines(path, hint="pass a JSONL file with one JSON object per line"):
        array = not rows and line.lstrip().startswith("[")  # a .json file of one array, a common mix-up
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            if array:
                raise UserError("the file is a JSON array, not JSON Lines", where=where, hint=ARRAY_HINT) from None
            raise UserError(f"not valid JSON ({exc.msg}, column {exc.colno})", where=where,
                            hint="write one JSON object per line, e.g. {\"text\": \"...\", \"label\": 1}") from None
        if array and isinstance(row, list):
            raise UserError("the file is a JSON array, not JSON Lines", where=where, hint=ARRAY_HINT)
        if not isinstance(row, dict):
            raise UserError(f"expected a JSON object, got {type(row).__name__}", where=where,
                            hint="write one JSON object per line, e.g. {\"text\": \"...\", \"label\": 1}")
        if not isinstance(row.get(field), str):
            found = "missing" if field not in row else f"a {type(row[field]).__name__}"
            raise UserError(f"field `{field}` is {found}, expected a string", where=where,
                            hint=f"give every row a string `{field}`, or pick another field with --field")
        if "label" in row and row["label"] not in (0, 1) or isinstance(row.get("label"), float):
            raise UserError(f"label must be 0 or 1 (or true/false), got {row['label']!r}", where=where,
                            hint="1 = the row should be flagged, 0 = clean; or leave `label` out")
        rows.append((n, row))
    if not rows:
        raise UserError(f"{path} has no rows", hint="write one JSON object per line")
    return rows


def binary_metrics(labels: list[int], flagged: list[bool]) -> dict[str, Any]:
    """Precision, recall and F1 of the flags against labels (1 = should be flagged), and the flag rate
    on clean rows (the false-positive rate)."""
    tp = sum(1 for y, f in zip(labels, flagged, strict=True) if y and f)
    fp = sum(1 for y, f in zip(labels, flagged, strict=True) if not y and f)
    fn = sum(1 for y, f in zip(labels, flagged, strict=True) if y and not f)
    clean = sum(1 for y in labels if not y)
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / (p + r), 4) if p + r else 0.0,
            "fpr": round(fp / clean, 4) if clean else None, "n": len(labels), "positives": tp + fn, "clean": clean,
            "tp": tp, "fp": fp, "fn": fn, "tn": clean - fp}


def _parse_arg(arg: str | None) -> Any:
    if arg is None:
        return None
    try:
        return json.loads(arg)
    except json.JSONDecodeError as exc:
        raise UserError(f"--arg is not valid JSON ({exc.msg})",
                        hint="pass the check's options as JSON, e.g. --arg '{\"threshold\": 0.5}'") from None


def run_check(name: str, rows: list[tuple[int, dict[str, Any]]], field: str, as_: str, arg: Any = None) -> list[Any]:
    from flywheel.checks import build
    from flywheel.checks.base import CheckContext

    check = build(name, arg, where="flywheel check")
    if as_ == "source" and not callable(getattr(getattr(check, "inner", check), "flag_sources", None)):
        raise UserError(f"check `{name}` cannot scan retrieved sources",
                        hint="--as source needs a check that flags sources, such as injection")
    results = []
    for _, row in rows:
        text = row[field]
        if as_ == "source":
            ctx = CheckContext(input=str(row.get("input", "")), sources=[text])
            results.append(check.run("", ctx))
        elif as_ == "input":
            results.append(check.run(text, CheckContext(input=text)))
        else:
            sources = row.get("sources")
            ctx = CheckContext(input=str(row.get("input", "")), reference=row.get("reference"),
                               sources=[str(s) for s in sources] if isinstance(sources, list) else [])
            results.append(check.run(text, ctx))
    return results


@main.command("check")
@click.argument("name")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--field", default="text", show_default=True, help="The row field holding the text to check.")
@click.option("--as", "as_", type=click.Choice(AS_CHOICES), default="output", show_default=True,
              help="What the text is: a model output, a user's input, or a retrieved source.")
@click.option("--arg", default=None, help="The check's options as JSON, e.g. '{\"threshold\": 0.5}'.")
@click.option("--json", "as_json", is_flag=True, help="Print {\"results\": [...], \"metrics\": {...}} as JSON.")
def check_command(name: str, file: Path, field: str, as_: str, arg: str | None, as_json: bool) -> None:
    """Run check NAME over the rows of FILE.jsonl: one verdict per row, and precision / recall / F1 / flag
    rate on clean rows when rows carry `label`."""
    rows = read_rows(file, field)
    results = run_check(name, rows, field, as_, _parse_arg(arg))
    labelled = [(row, r) for (_, row), r in zip(rows, results, strict=True) if "label" in row]
    metrics = binary_metrics([int(row["label"]) for row, _ in labelled], [not r.passed for _, r in labelled]) \
        if labelled else None
    out = [{"passed": r.passed, "score": round(r.score, 4), "reason": r.reason, **({"error": r.error} if r.error else {})}
           for r in results]
    if as_json:
        emit_json({"check": name, "as": as_, "results": out, **({"metrics": metrics} if metrics else {})})
        return
    for (n, row), r in zip(rows, out, strict=True):
        mark = click.style("pass", fg="green") if r["passed"] else click.style("FLAG", fg="red")
        label = f" label={int(row['label'])}" if "label" in row else ""
        click.echo(f"{file.name}:{n}  {mark}  {r['score']:.3f}{label}  {_one_line(r['reason'])}")
    flagged = sum(1 for r in out if not r["passed"])
    click.echo(f"{len(out)} rows, {flagged} flagged")
    if metrics:
        fpr = "n/a" if metrics["fpr"] is None else f"{metrics['fpr']:.2%}"
        click.echo(f"precision {metrics['precision']:.3f}  recall {metrics['recall']:.3f}  F1 {metrics['f1']:.3f}  "
                   f"flag rate on clean rows {fpr} ({metrics['fp']}/{metrics['clean']})")


def _one_line(text: str, limit: int = 120) -> str:
    text = "".join(c if c.isprintable() else " " for c in " ".join(text.split()))
    return text if len(text) <= limit else text[:limit - 3] + "..."
