"""`flywheel ingest PATH…` (loaders → chunks → embeddings → index) and `flywheel search QUERY`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from flywheel.cli import emit_json, main
from flywheel.errors import UserError
from flywheel.text.display import safe_display


def _parse_filters(values: tuple[str, ...]) -> dict[str, Any] | None:
    filters: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UserError(f"bad --filter {item!r}", hint="write --filter key=value (repeat for more keys)")
        try:
            value = json.loads(raw)  # numbers and booleans stay typed; anything else is a string
            if not isinstance(value, (int, float, bool)):
                value = raw
        except json.JSONDecodeError:
            value = raw
        filters.setdefault(key, []).append(value)
    return {k: v[0] if len(v) == 1 else v for k, v in filters.items()} or None


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--tenant", default="default", show_default=True, help="Index the documents for this tenant.")
@click.option("--sync", is_flag=True, help="Also remove the chunks of files deleted from these folders.")
@click.option("--meta", "meta", multiple=True, metavar="KEY=VALUE",
              help="Metadata added to every document (filter on it with `flywheel search --filter`).")
@click.option("--text-field", default="text", show_default=True, help="JSONL: the field holding the text.")
@click.option("--max-file-mb", default=50.0, show_default=True, type=click.FloatRange(0.001),
              help="Skip files larger than this.")
@click.option("--follow-links", is_flag=True,
              help="Also index what symbolic links leading outside the ingested folders point to.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_obj
def ingest(state: Any, paths: tuple[str, ...], tenant: str, sync: bool, meta: tuple[str, ...], text_field: str,
           max_file_mb: float, follow_links: bool, as_json: bool) -> None:
    """Index files and folders (Markdown, PDF, HTML, text, JSONL, BEIR corpora). Unchanged files are skipped;
    an interrupted run resumes where it stopped."""
    from flywheel.apps.runtime import Runtime
    from flywheel.retrieval.ingest import ingest as run_ingest
    from flywheel.retrieval.loaders import LoadOptions

    options = LoadOptions(max_bytes=int(max_file_mb * 1024 * 1024), text_field=text_field,
                          metadata=_parse_filters(meta) or {})
    project = state.project
    _check_folders(paths)
    try:
        with Runtime(project) as rt:
            if as_json:
                summary = run_ingest(paths, rt.store, project.config, tenant=tenant, sync=sync, options=options,
                                     root=project.root, follow_links=follow_links)
                emit_json(summary.to_dict())
            else:
                summary = _with_progress(lambda progress: run_ingest(
                    paths, rt.store, project.config, tenant=tenant, sync=sync, progress=progress, options=options,
                    root=project.root, follow_links=follow_links))
    except KeyboardInterrupt:
        click.secho("interrupted: the files indexed so far are saved; run the same command again to resume",
                    fg="yellow", err=True)
        sys.exit(130)
    if not as_json:
        _print_summary(summary, tenant)
    _check_explicit_files(paths, summary.skipped, project.root)


def _check_folders(paths: tuple[str, ...]) -> None:
    """An empty folder is a mistake (a wrong path), not a successful ingest of nothing."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir() and not any(p.is_file() for p in path.rglob("*")):
            raise UserError(f"folder {raw} has no files to ingest",
                            hint="point `flywheel ingest` at a folder of Markdown, PDF, HTML, text or JSONL files")


def _check_explicit_files(paths: tuple[str, ...], skipped: list[tuple[str, str]], root: Path) -> None:
    """A file named on the command line that could not be indexed is an error (exit 2); files skipped inside a
    folder are only listed."""
    named = {Path(raw).resolve(): raw for raw in paths if Path(raw).is_file()}
    failed = []
    for source, reason in skipped:
        path = Path(source) if Path(source).is_absolute() else root / source
        raw = named.get(path.resolve())
        if raw is not None:
            failed.append(f"{raw}: {reason}")
    if failed:
        raise UserError(f"cannot ingest {'; '.join(failed)}",
                        hint="give Markdown, PDF, HTML, text or JSONL files (`flywheel ingest --help`)")


def _with_progress(run: Any) -> Any:
    from flywheel.cli.progress import ingest_progress

    with ingest_progress() as progress:
        return run(progress)


def _print_summary(summary: Any, tenant: str) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    table = Table(title=f"ingest · tenant {escape(safe_display(tenant))}", show_header=False, min_width=36)
    table.add_column(style="bold")
    table.add_column(justify="right")
    for label, value in (("files", summary.files), ("indexed", summary.indexed), ("unchanged", summary.unchanged),
                         ("chunks added", summary.chunks_added), ("chunks removed", summary.chunks_removed),
                         ("embedded (not cached)", summary.embedded), ("skipped", len(summary.skipped)),
                         ("removed (sync)", len(summary.removed_files)), ("seconds", f"{summary.seconds:.1f}")):
        table.add_row(label, str(value))
    if summary.boilerplate:  # page boilerplate dropped by the loaders (follow lines, reference lists, menus)
        table.add_row("boilerplate lines dropped", ", ".join(f"{k} {n}" for k, n in sorted(summary.boilerplate.items())))
    if summary.not_embedded:  # chunks in languages the embedder does not cover: keyword search only
        table.add_row("not embedded (language)", ", ".join(f"{k} {n}" for k, n in sorted(summary.not_embedded.items())))
    console.print(table)
    if summary.not_embedded_reason:
        console.print(f"[dim]not embedded: {escape(summary.not_embedded_reason)}[/]")
    if summary.skipped:
        skipped = Table(title="skipped", show_lines=False)
        skipped.add_column("file")
        skipped.add_column("reason")
        for source, reason in summary.skipped:
            skipped.add_row(escape(safe_display(source)), escape(safe_display(reason)))
        console.print(skipped)
    for source, warning in summary.warnings:
        console.print(f"[yellow]warning[/] {escape(safe_display(source))}: {escape(safe_display(warning))}")


@main.command()
@click.argument("query", nargs=-1, required=True)
@click.option("--k", "k", default=None, type=click.IntRange(1, 1000), help="Hits to return [retrieval.k, 5].")
@click.option("--tenant", default="default", show_default=True)
@click.option("--mode", type=click.Choice(["hybrid", "bm25", "dense"]), default="hybrid", show_default=True)
@click.option("--filter", "filters", multiple=True, metavar="KEY=VALUE",
              help="Only chunks whose metadata (or source, doc_id, lang) matches; repeat a key for any-of.")
@click.option("--json", "as_json", is_flag=True, help="Print the hits as JSON.")
@click.pass_obj
def search(state: Any, query: tuple[str, ...], k: int | None, tenant: str, mode: str, filters: tuple[str, ...],
           as_json: bool) -> None:
    """Search the ingested documents (hybrid BM25 + dense by default)."""
    from flywheel.apps.runtime import Runtime

    with Runtime(state.project) as rt:
        hits = rt.retriever.search(" ".join(query).strip(), k=k, tenant=tenant, filters=_parse_filters(filters), mode=mode)  # type: ignore[arg-type]
    rows: list[dict[str, Any]] = [{"chunk_id": h.chunk.id, "doc_id": h.chunk.doc_id, "source": h.chunk.source,
             "location": h.chunk.location, "text": h.chunk.text, "score": h.score, "ranks": h.ranks,
             "scores": h.scores} for h in hits]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no results above the relevance floor (retrieval.min_relevance); try other words or "
                   "`flywheel ingest` more documents")
        return
    for i, r in enumerate(rows, start=1):
        where = safe_display(r["source"] + (f" · {r['location']}" if r["location"] else ""))
        ranks = " ".join(f"{name}#{rank}" for name, rank in r["ranks"].items() if rank)
        click.secho(f"[{i}] {where}  score {r['score']:.4f}  {ranks}", bold=True)
        text = " ".join(safe_display(r["text"], multiline=True).split())
        click.echo(f"    {text[:300]}{'…' if len(text) > 300 else ''}")
