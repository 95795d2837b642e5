"""The datasheet written next to every export: what is in the file, where it came from, how much the annotators
agreed, the date range, what was left out and why, and what personal data was masked in which field and which
fields kept theirs (`OUT.datasheet.md` and `OUT.datasheet.json`)."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

from flywheel.loop.labelled import Collected, Labelled


def build(fmt: str, collected: Collected, used: list[Labelled], counts: dict[str, int], dropped: dict[str, int],
          options: dict[str, Any], files: list[str], warnings: list[str], pii: dict[str, Any] | None = None
          ) -> dict[str, Any]:
    """`pii`: flywheel.evals.promote_pii.PiiTally.to_dict() of the rows written."""
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
            "kind": rep.get("kind"),  # κ and α below are of this kind's labels; the other kind's: other_kind
            "annotators": rep.get("annotators", []),
            "fleiss_kappa": rep.get("fleiss_kappa"), "fleiss_ci95": rep.get("fleiss_ci95"),
            "krippendorff_alpha": rep.get("krippendorff_alpha"), "krippendorff_ci95": rep.get("krippendorff_ci95"),
            # every labelled item read, the ties and low-agreement ones left out included (as κ and α are)
            "mean_item_agreement": collected.mean_item_agreement,
            **({"other_kind": rep["other_kind"]} if rep.get("other_kind") else {}),
        },
        "date_range": {"first": _day(min(starts)) if starts else None, "last": _day(max(starts)) if starts else None},
        "dropped": {**collected.dropped, **dropped},
        "options": options,
        "pii": pii or {},
        "processing": [_pii_line(pii or {}), "secrets (API keys, tokens, passwords) masked in every field",
                       "near-duplicate inputs collapsed (embedder cosine ≥ 0.92, else token Jaccard ≥ 0.8)",
                       "train / holdout split by normalised input: no input is on both sides"],
        "warnings": warnings,
    }


def _pii_line(pii: dict[str, Any]) -> str:
    kept = pii.get("kept_fields") or []
    line = ("PII pseudonymised per row (flywheel.checks.pii.pseudonymize): the same value is the same numbered "
            "placeholder (<EMAIL_ADDRESS_1>) in every field of a row")
    if kept:
        return line + f"; fields keeping the personal data no masked field holds: {', '.join(kept)}"
    return line + "; no field kept its personal data"


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
             *_kappa_lines(labels, labels.get("kind")),
             *_kappa_lines(labels.get("other_kind") or {}, (labels.get("other_kind") or {}).get("kind")),
             ("- mean share of an item's labels agreeing with its most common verdict (every labelled item): "
              f"{_num(labels['mean_item_agreement'])}"), "",
             "## Left out", ""]
    lines += [f"- {why}: {n}" for why, n in sheet["dropped"].items()] or ["- nothing"]
    lines += ["", "## Personal data", "", *_pii_lines(sheet.get("pii") or {})]
    lines += ["", "## Processing", "", *[f"- {p}" for p in sheet["processing"]], "", "## Options", "", "```json",
              json.dumps(sheet["options"], indent=2, ensure_ascii=False), "```"]
    if sheet["warnings"]:
        lines += ["", "## Warnings", "", *[f"- {w}" for w in sheet["warnings"]]]
    return "\n".join(lines) + "\n"


def _pii_lines(pii: dict[str, Any]) -> list[str]:
    masked, kept = pii.get("masked") or {}, pii.get("kept") or {}
    refs = pii.get("corrections_with_reference_only_pii") or {}
    lines = ["| field | masked | kept as written |", "|---|---|---|"]
    lines += [f"| {name} | {_counts(masked.get(name) or {})} | {_counts(kept.get(name) or {})} |"
              for name in dict.fromkeys([*masked, *kept])]
    if len(lines) == 2:
        lines = ["- no personal data found"]
    lines += [f"- fields kept (`--keep-pii`): {', '.join(pii.get('kept_fields') or []) or 'none'}",
              (f"- corrections whose personal data only the reference holds: {refs.get('masked', 0)} masked, "
               f"{refs.get('kept', 0)} kept"), "- secrets: always masked, in every field"]
    return lines


def _counts(c: dict[str, int]) -> str:
    return ", ".join(f"{k} ({v})" for k, v in sorted(c.items(), key=lambda kv: -kv[1])) or "—"


def _kappa_lines(stats: dict[str, Any], kind: str | None) -> list[str]:
    if not stats:
        return []
    of = f" ({kind} labels)" if kind else ""
    return [f"- Fleiss' κ{of}: {_num(stats.get('fleiss_kappa'))} (95 % CI {_ci(stats.get('fleiss_ci95'))})",
            (f"- Krippendorff's α{of}: {_num(stats.get('krippendorff_alpha'))} "
             f"(95 % CI {_ci(stats.get('krippendorff_ci95'))})")]


def _num(v: Any) -> str:
    return "—" if v is None else f"{v:.3f}"


def _ci(ci: Any) -> str:
    return "—" if not ci else f"{ci[0]:.3f} … {ci[1]:.3f}"
