"""The datasheet written next to every export: what is in the file, where it came from, how much the annotators
agreed, the date range, and what was left out and why (`OUT.datasheet.md` and `OUT.datasheet.json`)."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

from flywheel.loop.labelled import Collected, Labelled


def build(fmt: str, collected: Collected, used: list[Labelled], counts: dict[str, int], dropped: dict[str, int],
          options: dict[str, Any], files: list[str], warnings: list[str]) -> dict[str, Any]:
    starts = [x.started_at for x in used if x.started_at is not None]
    rep = collected.agreement
    return {
        "format": fmt,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "files": files,
        "rows": counts,
        "sources": {
            "queues": collected.queues,
            "traces": len({x.trace_id for x in used} | {x.trace_id_b for x in used if x.trace_id_b}),
            "apps": dict(Counter(x.app or "?" for x in used)),
            "models": dict(Counter(x.model or "?" for x in used)),
            "from": dict(Counter(_origin(x) for x in used)),
        },
        "labels": {
            "n_labels": collected.n_labels,
            "annotators": rep.get("annotators", []),
            "fleiss_kappa": rep.get("fleiss_kappa"), "fleiss_ci95": rep.get("fleiss_ci95"),
            "krippendorff_alpha": rep.get("krippendorff_alpha"), "krippendorff_ci95": rep.get("krippendorff_ci95"),
            "mean_item_agreement": round(sum(x.agreement for x in used) / len(used), 4) if used else None,
        },
        "date_range": {"first": _day(min(starts)) if starts else None, "last": _day(max(starts)) if starts else None},
        "dropped": {**collected.dropped, **dropped},
        "options": options,
        "processing": ["PII masked (flywheel.checks.pii) and secrets scrubbed in every message",
                       "near-duplicate inputs collapsed (embedder cosine ≥ 0.92, else token Jaccard ≥ 0.8)",
                       "train / holdout split by normalised input: no input is on both sides"],
        "warnings": warnings,
    }


def _origin(x: Labelled) -> str:
    if x.queue == "":
        return "correction feedback"
    if x.kind == "pairwise":
        return "pairwise verdict"
    return "correction" if x.correction else f"majority {x.verdict}"


def _day(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def render(sheet: dict[str, Any]) -> str:
    """The datasheet as Markdown."""
    labels, src, rows = sheet["labels"], sheet["sources"], sheet["rows"]
    lines = [f"# Datasheet: {sheet['format']} export", "", f"Created {sheet['created_at']} by `flywheel export`.", "",
             "## Files", "", *[f"- `{f}`" for f in sheet["files"]], "", "## Rows", "",
             "| part | rows |", "|---|---|", *[f"| {k} | {v} |" for k, v in rows.items()], "",
             "## Sources", "", f"- review queues: {', '.join(src['queues']) or '—'}", f"- traces: {src['traces']}",
             f"- apps: {_counts(src['apps'])}", f"- models: {_counts(src['models'])}",
             f"- rows from: {_counts(src['from'])}",
             f"- date range: {sheet['date_range']['first'] or '—'} … {sheet['date_range']['last'] or '—'}", "",
             "## Label agreement", "", f"- labels: {labels['n_labels']} by {len(labels['annotators'])} annotator(s)",
             f"- Fleiss' κ: {_num(labels['fleiss_kappa'])} (95 % CI {_ci(labels['fleiss_ci95'])})",
             f"- Krippendorff's α: {_num(labels['krippendorff_alpha'])} (95 % CI {_ci(labels['krippendorff_ci95'])})",
             f"- mean share of an item's labels agreeing with its majority: {_num(labels['mean_item_agreement'])}", "",
             "## Left out", ""]
    lines += [f"- {why}: {n}" for why, n in sheet["dropped"].items()] or ["- nothing"]
    lines += ["", "## Processing", "", *[f"- {p}" for p in sheet["processing"]], "", "## Options", "", "```json",
              json.dumps(sheet["options"], indent=2, ensure_ascii=False), "```"]
    if sheet["warnings"]:
        lines += ["", "## Warnings", "", *[f"- {w}" for w in sheet["warnings"]]]
    return "\n".join(lines) + "\n"


def _counts(c: dict[str, int]) -> str:
    return ", ".join(f"{k} ({v})" for k, v in sorted(c.items(), key=lambda kv: -kv[1])) or "—"


def _num(v: Any) -> str:
    return "—" if v is None else f"{v:.3f}"


def _ci(ci: Any) -> str:
    return "—" if not ci else f"{ci[0]:.3f} … {ci[1]:.3f}"
