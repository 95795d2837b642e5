"""/ui/prompts (and .json / .csv): the stored prompts with their versions and labels; /ui/prompts/{name} (and
.json): one prompt's versions, the labels pointing at each, and a word-level diff of two versions
(`?a=&b=`: versions, unique prefixes of at least 4 characters, or labels).

Prompts belong to the project, not to a tenant: every viewer may read them (changing them is the playground's
"save as a new version", which a tenant key may not do)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from flywheel.errors import UserError
from flywheel.prompts.diff import prompt_diff
from flywheel.prompts.versions import PromptVersions, StoredVersion
from flywheel.web.auth import Viewer
from flywheel.web.metrics_i18n import Text
from flywheel.web.pages import gate
from flywheel.web.render import as_csv, as_json, language, not_found, render, split_format

router = APIRouter()
LIST_COLUMNS = ("name", "versions", "latest_version", "latest_at", "labels")


def prompt_rows(versions: PromptVersions) -> list[dict[str, Any]]:
    labels = versions.labels()
    by_name: dict[str, list[StoredVersion]] = {}
    for v in versions.versions():  # newest first
        by_name.setdefault(v.name, []).append(v)
    return [{"name": name, "versions": len(vs), "latest_version": vs[0].version, "latest_at": vs[0].created_at,
             "description": vs[0].description, "labels": labels.get(name, {})} for name, vs in sorted(by_name.items())]


def _file_only(request: Request, stored: set[str]) -> list[str]:
    """Prompt files of the project that no stored version names yet."""
    from flywheel.prompts.registry import PromptRegistry

    try:
        names = PromptRegistry(request.app.state.flywheel.project.root).names()
    except (OSError, UserError):
        return []
    return [n for n in names if n not in stored]


@router.get("/ui/prompts", include_in_schema=False)
@router.get("/ui/prompts.json", include_in_schema=False)
@router.get("/ui/prompts.csv", include_in_schema=False)
def prompts_page(request: Request) -> Response:
    fmt = split_format(request.url.path)[1]
    viewer = gate(request, fmt)
    if not isinstance(viewer, Viewer):
        return viewer
    rows = prompt_rows(PromptVersions(request.app.state.flywheel.store))
    if fmt == "json":
        return as_json(rows)
    if fmt == "csv":
        return as_csv(rows, LIST_COLUMNS, "prompts.csv")
    return render(request, "prompt_list.html", tx=Text(language(request)), rows=rows,
                  files_only=_file_only(request, {r["name"] for r in rows}))


def version_rows(versions: PromptVersions, name: str) -> list[dict[str, Any]]:
    labels = versions.labels(name).get(name, {})
    return [{"version": v.version, "created_at": v.created_at, "description": v.description, "path": v.path,
             "labels": sorted(label for label, ver in labels.items() if ver == v.version),
             "system": v.content.get("system", ""), "template": v.content.get("template", "")}
            for v in versions.versions(name)]


def diff_of(versions: PromptVersions, name: str, a: str, b: str,
            errors: dict[str, str]) -> dict[str, Any] | None:
    """{a, b, fields: [(field, ops)]} for the two references, or None with `errors` saying which was wrong."""
    resolved: dict[str, StoredVersion] = {}
    for key, ref in (("a", a), ("b", b)):
        try:
            resolved[key] = versions.get(name, versions.resolve(name, ref.strip()))
        except UserError as exc:
            errors[key] = exc.message
    if errors:
        return None
    old, new = resolved["a"], resolved["b"]
    changed = prompt_diff(old.prompt(), new.prompt())
    return {"a": old.version, "b": new.version, "fields": list(changed.items()), "same": not changed}


@router.get("/ui/prompts/{ref}", include_in_schema=False)
def prompt_page(request: Request, ref: str) -> Response:
    name, fmt = split_format(ref)
    viewer = gate(request, fmt)
    if not isinstance(viewer, Viewer):
        return viewer
    versions = PromptVersions(request.app.state.flywheel.store)
    rows = version_rows(versions, name)
    if not rows:
        return not_found(request, f"no stored prompt named '{name}'", fmt)
    a, b = request.query_params.get("a") or "", request.query_params.get("b") or ""
    errors: dict[str, str] = {}
    diff = None
    if a or b:
        if not (a and b):
            errors["b" if a else "a"] = "give both a and b (two versions or labels)"
        else:
            diff = diff_of(versions, name, a, b, errors)
    elif len(rows) >= 2:
        a, b = rows[1]["version"], rows[0]["version"]
        diff = diff_of(versions, name, a, b, errors)
    status = 400 if errors else 200
    if fmt == "csv":
        return as_csv(rows, ("version", "created_at", "labels", "description", "path"), "prompt-versions.csv", status=status)
    if fmt != "html":
        plain = None if diff is None else {**diff, "fields": {f: [list(op) for op in ops] for f, ops in diff["fields"]}}
        return as_json(rows, name=name, diff=plain, errors=errors)
    return render(request, "prompt_detail.html", status=status, tx=Text(language(request)), name=name, rows=rows,
                  diff=diff, errors=errors, a=a, b=b)
