"""`flywheel prompts list|show|diff|label|rollback|register`: prompt versions and labels kept in the store."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from flywheel.cli import emit_json, main
from flywheel.errors import UserError

FILE_REF = "file"  # a diff/label reference meaning "the prompt file as it is now"


@main.group("prompts")
def prompts() -> None:
    """Prompt versions and labels: list, show, diff, label, rollback, register."""


@contextmanager
def _open(state: Any) -> Iterator[tuple[Any, Any]]:
    from flywheel.prompts.registry import PromptRegistry
    from flywheel.prompts.versions import PromptVersions
    from flywheel.store import Store

    with Store.open(state.project.store_url) as store:
        # Reading does not record: only `register`, `label` and the apps store versions.
        yield PromptRegistry(state.project.root, log_warnings=False), PromptVersions(store)


def _known(registry: Any, versions: Any) -> list[str]:
    return sorted({*registry.names(), *versions.names()})


def _check_name(name: str, registry: Any, versions: Any) -> None:
    from flywheel.registry import unknown_name

    if name not in _known(registry, versions):
        renamed = registry.renamed(name)
        if renamed is not None:
            raise UserError(f"prompt file {renamed[0]} declares `name: {renamed[1]}`, so its versions and labels are "
                            f"stored as '{renamed[1]}'",
                            hint=f"use `{renamed[1]}` instead of `{name}`, or make the file name and `name:` agree")
        raise unknown_name("prompt", name, _known(registry, versions),
                           hint="add prompts/NAME.yaml to the project, or `flywheel prompts register PATH`")


def _file_prompt(name: str, registry: Any) -> Any | None:
    """The prompt file's current content, or None when there is no such file."""
    if name not in registry.names():
        return None
    return registry.get(name)


def _prompt_at(name: str, ref: str, registry: Any, versions: Any) -> Any:
    if ref == FILE_REF:
        prompt = _file_prompt(name, registry)
        if prompt is None:
            raise UserError(f"prompt '{name}' has no file in this project", hint="compare two stored versions instead")
        return prompt
    return versions.get(name, versions.resolve(name, ref)).prompt()


def _pad(text: str, width: int = 21) -> str:
    """`text` left-aligned in `width` terminal cells (a Chinese character takes two)."""
    from rich.cells import cell_len

    return text + " " * max(1, width - cell_len(text))


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _labels_of(version: str, labels: dict[str, str]) -> list[str]:
    return sorted(label for label, v in labels.items() if v == version)


@prompts.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def list_prompts(state: Any, as_json: bool) -> None:
    """Every prompt: its file's current version, its stored versions and its labels."""
    rows = []
    with _open(state) as (registry, versions):
        labels = versions.labels()
        for name in _known(registry, versions):
            error = None
            try:  # one broken file is listed with its error, not in the way of every other prompt
                prompt = _file_prompt(name, registry)
            except UserError as exc:
                prompt, error = None, f"{exc.where}: {exc.message}" if exc.where else exc.message
            stored = versions.versions(name)
            rows.append({"name": name, "version": prompt.version if prompt else None,
                         "path": prompt.path if prompt else None, "versions": len(stored),
                         "labels": labels.get(name, {}), "warnings": list(prompt.warnings) if prompt else [],
                         "error": error})
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no prompts")
        return
    for r in rows:
        tags = ", ".join(f"{label}={v}" for label, v in sorted(r["labels"].items())) or "no labels"
        current = r["version"] or ("(broken)" if r["error"] else "(no file)")
        click.echo(f"{_pad(r['name'])}{current:<13} {r['versions']} stored  {tags}")
        for w in r["warnings"]:
            click.secho(f"  warning: {w}", fg="yellow", err=True)
        if r["error"]:
            click.secho(f"  error: {r['error']}", fg="red", err=True)
    if any(r["error"] for r in rows):
        raise SystemExit(2)  # listed, and still a failure for scripts: a prompt file cannot be loaded


@prompts.command("show")
@click.argument("name")
@click.option("--version", "version", help="A stored version (or a unique prefix of at least 4 characters).")
@click.option("--label", "label", help="The version a label points at (e.g. production).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def show(state: Any, name: str, version: str | None, label: str | None, as_json: bool) -> None:
    """Show a prompt's content: the file as it is now, or a stored --version / --label."""
    from flywheel.prompts.diff import dump_yaml

    if version and label:
        raise UserError("give --version or --label, not both")
    with _open(state) as (registry, versions):
        _check_name(name, registry, versions)
        if version or label:
            prompt = versions.load(name, label=label, version=version)
        else:
            prompt = _file_prompt(name, registry)
            if prompt is None:
                raise UserError(f"prompt '{name}' has no file in this project",
                                hint="show a stored one with --version V or --label L")
        stored = {v.version: v for v in versions.versions(name)}
        labels = _labels_of(prompt.version, versions.labels(name).get(name, {}))
    row = stored.get(prompt.version)
    data = {"name": name, "version": prompt.version, "labels": labels, "path": prompt.path,
            "description": prompt.description, "stored_at": row.created_at if row else None,
            "warnings": list(prompt.warnings), "content": prompt.content()}
    if as_json:
        emit_json(data)
        return
    click.echo(f"prompt {name}  version {prompt.version}" + (f"  labels: {', '.join(labels)}" if labels else ""))
    if prompt.path:
        click.echo(f"path: {prompt.path}")
    if row:
        click.echo(f"stored: {_when(row.created_at)}")
    for w in prompt.warnings:
        click.secho(f"warning: {w}", fg="yellow", err=True)
    click.echo("")
    click.echo(dump_yaml(prompt.content()))


@prompts.command("diff")
@click.argument("name")
@click.argument("a")
@click.argument("b")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def diff(state: Any, name: str, a: str, b: str, as_json: bool) -> None:
    """Word-level diff of two versions of prompt NAME (each a version, a label, or `file` for the file now)."""
    from flywheel.prompts.diff import collapse, prompt_diff

    with _open(state) as (registry, versions):
        _check_name(name, registry, versions)
        old, new = _prompt_at(name, a, registry, versions), _prompt_at(name, b, registry, versions)
    changes = prompt_diff(old, new)
    if as_json:
        emit_json({"name": name, "a": old.version, "b": new.version,
                   "fields": {f: [list(run) for run in ops] for f, ops in changes.items()}})
        return
    click.echo(f"prompt {name}: {a} ({old.version}) → {b} ({new.version})")
    if not changes:
        click.echo("no differences")
        return
    colors = {"delete": "red", "insert": "green"}
    marks = {"delete": ("[-", "-]"), "insert": ("{+", "+}")}
    for field, ops in changes.items():
        click.secho(f"\n## {field}", bold=True)
        parts = []
        for op, text in collapse(ops):  # long unchanged stretches shortened; --json has them all
            if op == "equal":
                parts.append(text)
            else:
                parts.append(click.style(f"{marks[op][0]}{text}{marks[op][1]}", fg=colors[op]))
        click.echo("".join(parts))


@prompts.command("label")
@click.argument("name")
@click.argument("ref", metavar="VERSION_OR_LABEL")
@click.option("--as", "label", required=True, help="The label to point at that version (e.g. production).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def label(state: Any, name: str, ref: str, label: str, as_json: bool) -> None:
    """Point a label at a version of prompt NAME (a version, another label, or `file` for the file now)."""
    from flywheel.prompts.versions import check_label

    check_label(label)
    with _open(state) as (registry, versions):
        _check_name(name, registry, versions)
        prompt = _file_prompt(name, registry)
        if prompt is not None:
            versions.record(prompt)  # the file's current version can be labelled without a `register` first
        if ref == FILE_REF:
            if prompt is None:
                raise UserError(f"prompt '{name}' has no file in this project", hint="name a stored version")
            ref = prompt.version
        previous, version = versions.set_label(name, ref, label)
    if as_json:
        emit_json({"name": name, "label": label, "version": version, "previous": previous})
        return
    was = " (unchanged)" if previous == version else f" (was {previous})" if previous else ""
    click.echo(f"{name}: {label} → {version}{was}")


@prompts.command("rollback")
@click.argument("name")
@click.option("--label", "label", default="production", show_default=True, help="The label to move back.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def rollback(state: Any, name: str, label: str, as_json: bool) -> None:
    """Move a label of prompt NAME back to the version it pointed at before its last move."""
    with _open(state) as (registry, versions):
        _check_name(name, registry, versions)
        old, new = versions.rollback(name, label)
    if as_json:
        emit_json({"name": name, "label": label, "from": old, "to": new})
        return
    click.echo(f"{name}: {label} → {new} (was {old})")


def _one_file_per_name(loaded: list[Any]) -> list[Any]:
    """The prompts to store: a packaged prompt that a project file replaces (same `name:`) is left out, and two
    project files that declare one name with different content are an error naming both (both would be stored
    as versions of that name, and the later one would look like the current version)."""
    from flywheel.prompts.registry import builtin_dir

    packaged = builtin_dir().resolve()
    own = {p.name for p in loaded if p.path is None or Path(p.path).resolve().parent != packaged}
    kept = [p for p in loaded if p.name not in own or p.path is None or Path(p.path).resolve().parent != packaged]
    first: dict[str, Any] = {}
    for prompt in kept:
        other = first.setdefault(prompt.name, prompt)
        if other.version != prompt.version:
            raise UserError(f"prompt '{prompt.name}' is declared by two files with different content: {other.path} "
                            f"({other.version}) and {prompt.path} ({prompt.version}); nothing was stored",
                            hint="give each file its own `name:`, or delete the copy you do not use")
    return kept


@prompts.command("register")
@click.argument("paths", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def register(state: Any, paths: tuple[str, ...], as_json: bool) -> None:
    """Record the current version of prompt files in the store (default: every prompt of the project)."""
    from flywheel.prompts.registry import load_prompt_file
    from flywheel.prompts.versions import check_storable

    rows = []
    with _open(state) as (registry, versions):
        refs = list(paths) or [str(p) for p in registry.files()]  # every file, even two declaring one name
        # All files are checked before anything is stored. A PATH is relative to the working directory, else
        # to the project.
        loaded = [load_prompt_file(Path(r).resolve() if r in paths and Path(r).is_file() else registry.path_of(r))
                  for r in refs]
        loaded = _one_file_per_name(loaded)
        for prompt in loaded:
            check_storable(prompt)  # a secret in one file stores none of them
        for prompt in loaded:
            rows.append({"name": prompt.name, "version": prompt.version, "path": prompt.path,
                         "new": versions.record(prompt), "warnings": list(prompt.warnings)})
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        click.echo(f"{_pad(r['name'])}{r['version']}  {'new' if r['new'] else 'known'}  {r['path']}")
        for w in r["warnings"]:
            click.secho(f"  warning: {w}", fg="yellow", err=True)
