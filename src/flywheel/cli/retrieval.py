"""`flywheel ingest PATH…` (loaders → chunks → keyword index, then the embed stage), `flywheel embed` (the embed
stage on its own) and `flywheel search QUERY`."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from flywheel.cli import emit_json, main
from flywheel.errors import UserError
from flywheel.text.display import safe_display
from flywheel.text.install import pip_install


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
@click.option("--no-embed", is_flag=True,
              help="Only write chunks and the keyword index; leave the vectors to `flywheel embed` or `flywheel serve`.")
@click.option("--shard", "shard_spec", default=None, metavar="I/N",
              help="Only the files of partition I of N (by a hash of their path); run I = 0 … N-1 anywhere.")
@click.option("--ray", "ray_address", default=None, metavar="HOST:PORT|auto",
              help="Load, chunk and embed on this Ray cluster (needs flywheel's `ray` extra); this process writes.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_obj
def ingest(state: Any, paths: tuple[str, ...], tenant: str, sync: bool, meta: tuple[str, ...], text_field: str,
           max_file_mb: float, follow_links: bool, no_embed: bool, shard_spec: str | None, ray_address: str | None,
           as_json: bool) -> None:
    """Index files and folders (Markdown, PDF, HTML, text, JSONL, Word, PowerPoint, Excel/CSV, EPUB, BEIR corpora). Unchanged files are skipped;
    an interrupted run resumes where it stopped. Keyword search works as soon as the chunks are written; the
    vectors are computed after (skip with --no-embed)."""
    from flywheel.apps.runtime import Runtime
    from flywheel.retrieval.ingest import ingest as run_ingest
    from flywheel.retrieval.ingest import parse_shard
    from flywheel.retrieval.loaders import LoadOptions

    shard = parse_shard(shard_spec) if shard_spec is not None else None
    options = LoadOptions(max_bytes=int(max_file_mb * 1024 * 1024), text_field=text_field,
                          metadata=_parse_filters(meta) or {})
    project = state.project
    _check_folders(paths, sync)
    if ray_address is not None:  # before the store is opened: a cluster that doesn't answer changes nothing
        from flywheel.retrieval.ray_ingest import connect

        connect(ray_address)
    try:
        with Runtime(project) as rt:
            if as_json:
                summary = run_ingest(paths, rt.store, project.config, tenant=tenant, sync=sync, options=options,
                                     root=project.root, follow_links=follow_links, embed=not no_embed,
                                     shard=shard, ray=ray_address)
                emit_json(summary.to_dict())
            else:
                summary = _with_progress(lambda progress: run_ingest(
                    paths, rt.store, project.config, tenant=tenant, sync=sync, progress=progress, options=options,
                    root=project.root, follow_links=follow_links, embed=bool(ray_address) and not no_embed,
                    shard=shard, ray=ray_address))
                if not no_embed and summary.embed_waiting:  # searchable by keyword now; vectors next
                    _embed_after_ingest(rt, tenant, summary)
    except KeyboardInterrupt:
        # the files indexed so far are searchable by keyword; the rerun (or `flywheel embed`) adds the vectors
        click.secho("interrupted: the files indexed so far are saved; run the same command again to resume",
                    fg="yellow", err=True)
        sys.exit(130)
    failed = _explicit_failures(paths, summary.skipped, project.root)
    if not as_json and not (failed and summary.indexed == summary.unchanged == 0):  # nothing done: the error only
        _print_summary(summary, tenant)
    if failed:
        raise UserError(f"cannot ingest {'; '.join(failed)}",
                        hint="give Markdown, PDF, HTML, text, JSONL, Word, PowerPoint, Excel/CSV or EPUB files (`flywheel ingest --help`)")


def _embed_after_ingest(rt: Any, tenant: str, summary: Any) -> None:
    from flywheel.retrieval.embed import embed_pending

    click.echo(f"{summary.chunks_added} chunks searchable by keyword after {summary.keyword_seconds:.1f} s; "
               f"embedding {summary.embed_waiting} …", err=True)
    with embed_progress() as on_embed:
        done = embed_pending(rt.retriever.index, rt.retriever.embedder, tenant, progress=on_embed)
    summary.embedded, summary.embedder_backend, summary.embed_seconds = done.embedded, done.backend, done.seconds
    summary.embed_waiting = 0
    summary.seconds = round(summary.seconds + done.seconds, 3)


def _check_folders(paths: tuple[str, ...], sync: bool = False) -> None:
    """A missing path or an empty folder is a mistake (a wrong path), not a successful ingest of nothing; both
    are found before the store is opened, so a typo creates no `.flywheel/` and writes nothing. With --sync an
    empty folder is what is left after deleting its files: syncing it removes their chunks."""
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise UserError(f"no such file or folder: {raw}", hint="check the path passed to `flywheel ingest`")
        if path.is_dir() and not sync and not any(p.is_file() for p in path.rglob("*")):
            raise UserError(f"folder {raw} has no files to ingest",
                            hint="point `flywheel ingest` at a folder of Markdown, PDF, HTML, text, JSONL, Word, PowerPoint, Excel/CSV or EPUB files")


def _explicit_failures(paths: tuple[str, ...], skipped: list[tuple[str, str]], root: Path) -> list[str]:
    """"FILE: reason" for each file named on the command line that could not be indexed: an error (exit 2);
    files skipped inside a folder are only listed."""
    named = {Path(raw).resolve(): raw for raw in paths if Path(raw).is_file()}
    failed = []
    for source, reason in skipped:
        path = Path(source) if Path(source).is_absolute() else root / source
        raw = named.get(Path(os.path.realpath(path)))  # (resolve() raises on a symbolic link loop)
        if raw is not None:
            failed.append(f"{raw}: {reason}")
    return failed


def _with_progress(run: Any) -> Any:
    from flywheel.cli.progress import ingest_progress

    with ingest_progress() as progress:
        return run(progress)


def _print_summary(summary: Any, tenant: str) -> None:
    from rich.markup import escape
    from rich.table import Table

    from flywheel.cli.console import console as make_console

    console = make_console()
    table = Table(title=f"ingest · tenant {escape(safe_display(tenant))}", show_header=False, min_width=36)
    table.add_column(style="bold")
    table.add_column(justify="right")
    for label, value in (("files", summary.files), ("indexed", summary.indexed), ("unchanged", summary.unchanged),
                         ("chunks added", summary.chunks_added), ("chunks removed", summary.chunks_removed),
                         ("embedded (not cached)", summary.embedded), ("skipped", len(summary.skipped)),
                         ("removed (sync)", len(summary.removed_files)),
                         ("keyword-searchable after", f"{summary.keyword_seconds:.1f} s"),
                         ("seconds", f"{summary.seconds:.1f}")):
        table.add_row(label, str(value))
    if summary.boilerplate:  # page boilerplate dropped by the loaders (follow lines, reference lists, menus)
        table.add_row("boilerplate lines dropped", ", ".join(f"{k} {n}" for k, n in sorted(summary.boilerplate.items())))
    if summary.not_embedded:  # chunks in languages the embedder does not cover: keyword search only
        table.add_row("not embedded (language)", ", ".join(f"{k} {n}" for k, n in sorted(summary.not_embedded.items())))
    if summary.embed_waiting:
        table.add_row("waiting for vectors", str(summary.embed_waiting))
    console.print(table)
    if summary.embed_waiting:
        console.print(f"[dim]{summary.embed_waiting} chunks are searchable by keyword and wait for vectors: run "
                      f"`flywheel embed` (or `flywheel serve`, which embeds in the background)[/]")
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
@click.option("--tenant", default="default", show_default=True, help="Search this tenant's documents.")
@click.option("--mode", type=click.Choice(["hybrid", "bm25", "dense"]), default="hybrid", show_default=True,
              help="Keyword (bm25) and vector (dense) search fused, or one of them alone.")
@click.option("--filter", "filters", multiple=True, metavar="KEY=VALUE",
              help="Only chunks whose metadata (or source, doc_id, lang) matches; repeat a key for any-of.")
@click.option("--json", "as_json", is_flag=True, help="Print the hits as JSON (a list).")
@click.option("--coverage", "with_coverage", is_flag=True,
              help="With --json: print {hits, coverage} (how much of the tenant's corpus is embedded) instead of "
                   "the list of hits.")
@click.pass_obj
def search(state: Any, query: tuple[str, ...], k: int | None, tenant: str, mode: str, filters: tuple[str, ...],
           as_json: bool, with_coverage: bool) -> None:
    """Search the ingested documents (hybrid BM25 + dense by default)."""
    from flywheel.apps.runtime import Runtime

    if with_coverage and not as_json:
        raise UserError("--coverage goes with --json",
                        hint="the plain output already ends with the coverage line; add --json for the object")
    question = " ".join(query).strip()
    with Runtime(state.project) as rt:
        hits = rt.retriever.search(question, k=k, tenant=tenant, filters=_parse_filters(filters), mode=mode)  # type: ignore[arg-type]
        # --json --coverage: always (also with --mode bm25 or no embedder: embedded 0); plain: when dense counts
        coverage = (rt.retriever.coverage(tenant) if with_coverage
                    or (rt.retriever.embedder is not None and mode != "bm25") else None)
        gap = (rt.retriever.language_gap(question, switch="use --mode hybrid or --mode bm25")
               if mode == "dense" and not hits else None)
        empty = not hits and rt.retriever.index.count(tenant) == 0  # a typo in --tenant, or nothing ingested
    rows: list[dict[str, Any]] = [{"chunk_id": h.chunk.id, "doc_id": h.chunk.doc_id, "source": h.chunk.source,
             "location": h.chunk.location, "text": h.chunk.text, "score": h.score, "ranks": h.ranks,
             "scores": h.scores} for h in hits]
    if gap is not None:  # why nothing came back, not "try other words": no words in this language can match
        click.secho(f"no results: {gap}", fg="yellow", err=as_json)  # with --json, stdout stays the JSON []
    if as_json:  # a bare list, as before; --coverage wraps it (the list stays what existing readers index)
        emit_json({"hits": rows, "coverage": coverage.to_dict()} if with_coverage and coverage is not None else rows)
        return
    if empty:
        click.echo(f"no results: tenant {tenant!r} has no documents; ingest some with "
                   f"`flywheel ingest PATH{'' if tenant == 'default' else f' --tenant {tenant}'}` "
                   "(or check the --tenant name)")
        return
    if not rows and gap is None:
        click.echo("no results above the relevance floor (retrieval.min_relevance); try other words or "
                   "`flywheel ingest` more documents")
        _print_coverage(coverage)
        return
    for i, r in enumerate(rows, start=1):
        where = safe_display(r["source"] + (f" · {r['location']}" if r["location"] else ""))
        ranks = " ".join(f"{name}#{rank}" for name, rank in r["ranks"].items() if rank)
        click.secho(f"[{i}] {where}  score {r['score']:.4f}  {ranks}", bold=True)
        text = " ".join(safe_display(r["text"], multiline=True).split())
        click.echo(f"    {text[:300]}{'…' if len(text) > 300 else ''}")
    _print_coverage(coverage)


def _print_coverage(coverage: Any) -> None:
    if coverage is not None and coverage.total:
        click.secho(coverage.describe(), dim=True)


@main.command()
@click.option("--tenant", default=None, help="Only this tenant's chunks [all tenants].")
@click.option("--watch", is_flag=True, help="Keep going: look for new chunks every --interval seconds.")
@click.option("--interval", default=5.0, show_default=True, type=click.FloatRange(0.1), help="Seconds between looks.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_obj
def embed(state: Any, tenant: str | None, watch: bool, interval: float, as_json: bool) -> None:
    """Compute the vectors of chunks that have none yet (after `flywheel ingest --no-embed`); resumable."""
    import threading

    from flywheel.apps.runtime import Runtime
    from flywheel.retrieval.embed import EmbedSummary, embed_pending

    if tenant is not None:
        from flywheel.retrieval.retriever import check_tenant

        check_tenant(tenant)
    with Runtime(state.project) as rt:
        retriever = rt.retriever
        if retriever.embedder is None:
            raise UserError("no embedder is configured (or the local one is not installed): nothing to embed",
                            hint=f"set `retrieval.embedder` in flywheel.yaml, or {pip_install('local')}")
        if tenant is not None and not retriever.count(tenant):  # a typo in --tenant, or nothing ingested yet
            note = _no_chunks_note(retriever.index, tenant)
            if not watch:
                if as_json:  # stdout stays the JSON; the note goes to stderr
                    emit_json({**EmbedSummary().to_dict(), "model": retriever.embedder.name})
                click.echo(note, err=as_json)
                return
            click.echo(f"{note}; watching for them", err=True)
        stop = threading.Event()
        passes: list[EmbedSummary] = []  # each filled window by window: an interrupt counts what was committed
        try:
            while True:
                done = EmbedSummary()
                passes.append(done)
                if as_json:
                    embed_pending(retriever.index, retriever.embedder, tenant, stop=stop, summary=done)
                else:
                    with embed_progress(force=True) as on_embed:
                        embed_pending(retriever.index, retriever.embedder, tenant, progress=on_embed, stop=stop,
                                      summary=done)
                if as_json and not watch:
                    emit_json({**done.to_dict(), "model": retriever.embedder.name})
                elif done.chunks or not watch:
                    click.echo(f"embedded {done.chunks} chunks ({done.embedded} vectors computed, the rest cached) "
                               f"in {done.seconds:.1f} s with {retriever.embedder.name}")
                if not watch:
                    return
                if not done.chunks:  # `--watch` idles: keep only the passes that did something
                    passes.pop()
                time.sleep(interval)
        except KeyboardInterrupt:
            stop.set()
            total = sum(p.chunks for p in passes)
            click.secho(f"stopped after {total} chunks: the vectors written are kept; run `flywheel embed` again "
                        f"to continue", fg="yellow", err=True)
            sys.exit(130)


def _no_chunks_note(index: Any, tenant: str) -> str:
    """What `flywheel embed --tenant X` says when X has no chunks: like `flywheel search`, plus the tenants that
    have some (a misspelt name is then plain to see)."""
    where = "" if tenant == "default" else f" --tenant {tenant}"
    others = sorted(index.tenants())
    shown = ", ".join(repr(safe_display(t)) for t in others[:10]) + (f" and {len(others) - 10} more" if len(others) > 10 else "")
    return (f"nothing to embed: tenant {safe_display(tenant)!r} has no chunks; ingest some with "
            f"`flywheel ingest PATH{safe_display(where)}` (or check the --tenant name"
            + (f"; tenants with chunks: {shown})" if others else "; no tenant has any chunks yet)"))


@contextmanager
def embed_progress(force: bool = False) -> Iterator[Callable[[int, int], None]]:
    """The embed stage's progress: a bar on a terminal, else a line at most every 5 s (nothing when empty)."""
    out = sys.stderr
    if not out.isatty():
        last = [0.0]

        def lines(done: int, total: int) -> None:
            now = time.monotonic()
            if total and (done == total or now - last[0] >= 5.0) and (done or force):
                last[0] = now
                print(f"embed: {done}/{total} chunks", file=out, flush=True)

        yield lines
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]embed"), BarColumn(), MofNCompleteColumn(), TextColumn("chunks"),
                  TimeElapsedColumn(), console=Console(file=out), transient=True) as bar:
        task = bar.add_task("embed", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total or None)

        yield update
