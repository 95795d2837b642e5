"""JSONL: one Document per line, text in a configurable field (default `text`). BEIR corpora (`corpus.jsonl`
with `_id`, `title`, `text`) are the same format: `_id`/`id` becomes the document's `ref` metadata, which
evaluation matches against qrels."""

from __future__ import annotations

import json
from pathlib import Path

from flywheel.retrieval.loaders.base import LoadOptions, Skip, decode, make_document, read_bytes
from flywheel.types import Document

_SCALARS = (str, int, float, bool)


def load_jsonl(path: Path, *, source: str, tenant: str, options: LoadOptions
               ) -> tuple[list[Document], list[str]]:
    """(documents, warnings): lines that are not JSON objects are reported, the rest is indexed."""
    text = decode(read_bytes(path, options))
    docs: list[Document] = []
    bad: list[int] = []
    no_text = 0
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            bad.append(lineno)
            continue
        if not isinstance(record, dict):
            bad.append(lineno)
            continue
        body = record.get(options.text_field)
        if not isinstance(body, str) or not body.strip():
            no_text += 1
            continue
        ref = next((str(record[f]) for f in options.id_fields if record.get(f) not in (None, "")), None)
        title = record.get(options.title_field)
        title = title.strip() if isinstance(title, str) and title.strip() else None
        skip = {options.text_field, options.title_field, *options.id_fields}
        fields = {k: v for k, v in record.items() if k not in skip and isinstance(v, _SCALARS)}
        location = f"{ref}" if ref is not None else f"line {lineno}"
        docs.append(make_document(body.strip(), source=source, tenant=tenant, title=title, location=location,
                                  options=options, ref=ref, line=lineno, **fields))
    if not docs:
        why = [f"{len(bad)} lines are not JSON objects"] if bad else []
        if no_text:
            why.append(f"{no_text} records have no `{options.text_field}` string")
        raise Skip("no documents in JSONL (" + ("; ".join(why) or "no records") + ")")
    warnings = []
    if bad:
        shown = ", ".join(map(str, bad[:10])) + (" …" if len(bad) > 10 else "")
        warnings.append(f"{len(bad)} lines are not JSON objects (lines {shown})")
    if no_text:
        warnings.append(f"{no_text} records have no `{options.text_field}` string")
    return docs, warnings
