"""`flywheel ask` (one question through an app) and `flywheel demo` (the whole loop, offline, on our own docs)."""

from __future__ import annotations

import os
import shutil
import time
from importlib import resources
from pathlib import Path
from typing import Any

import click

from flywheel.cli import emit_json, main
from flywheel.errors import UserError

# Questions the demo asks: answerable (configuration), Chinese, answerable from another page (gateway), and out
# of scope (no relevant passage: "I don't know" without calling a model).
DEMO_QUESTIONS = [
    "How do I pin a model version?",
    "如何在没有网络的情况下运行 flywheel？",
    "Which failures does the gateway retry?",
    "What is the boiling point of mercury?",
]
DEMO_CONFIG = """\
# The `flywheel demo` project: flywheel's own documentation, answered offline by the extractive model.
# Ask your own question:   flywheel --project {root} ask "How do I add a fallback model?"
# Look at what happened:   flywheel --project {root} traces
models:
  default: {{provider: extractive}}   # quotes the retrieved sentences that answer the question, with [n]
apps:
  docs_qa: {{model: default}}
"""


def bundled_docs() -> Path:
    """The documentation shipped inside the package (src/flywheel/docs links to the repository's docs/)."""
    path = Path(str(resources.files("flywheel").joinpath("docs")))
    if not (path / "getting-started.md").is_file():
        raise UserError(f"the bundled documentation is missing from {path}",
                        hint="reinstall flywheel (pip install -e .); the wheel ships flywheel/docs/")
    return path


def _command(project_dir: Path | str) -> str:
    return "flywheel" if str(project_dir) in ("", ".") else f"flywheel --project {project_dir}"


def _shown_source(source: str, root: Path) -> str:
    try:
        return str(Path(source).resolve().relative_to(root))
    except (ValueError, OSError):
        return source


def answer_json(answer: Any, question: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"question": question} if question is not None else {}
    out.update({
        "answer": answer.text,
        "citations": [{"id": c.id, "source": c.source, "location": c.location, "chunk_id": c.chunk_id,
                       "text": c.text} for c in answer.citations],
        "trace_id": answer.trace_id,
        "refused": answer.refused,
        "refusal": answer.refusal,
        "cache": answer.cache,
    })
    return out


def print_answer(answer: Any, root: Path, command: str) -> None:
    from flywheel.text.display import safe_display  # document text and names must not drive the terminal

    click.echo(safe_display(answer.text, multiline=True))
    if answer.citations:
        click.secho("\nSources", bold=True)
        for c in answer.citations:
            where = f" · {c.location}" if c.location else ""
            click.echo(f"  [{c.id}] {safe_display(_shown_source(c.source, root) + where)}")
    from flywheel.cli.chat import answer_note

    note = answer_note(answer)  # answered from the cache, or refused and why
    if note:
        click.secho(f"({note})", dim=True)
    if answer.trace_id:
        click.secho(f"trace {answer.trace_id} · see it with `{command} traces show {answer.trace_id}`", dim=True)


@main.command()
@click.argument("question", nargs=-1, required=True)
@click.option("--tenant", default=None, help="Answer from this tenant's documents (default: the app's tenant).")
@click.option("--model", "model", default=None, help="Model alias from flywheel.yaml (default: the app's model).")
@click.option("--app", "app_name", default="docs_qa", show_default=True, help="Which app under `apps:` answers.")
@click.option("--json", "as_json", is_flag=True,
              help="Print {answer, citations, trace_id, refused, refusal, cache} as JSON.")
@click.pass_obj
def ask(state: Any, question: tuple[str, ...], tenant: str | None, model: str | None, app_name: str,
        as_json: bool) -> None:
    """Answer QUESTION from the ingested documents, with [n] citations."""
    from flywheel.apps.runtime import Runtime

    text = " ".join(question).strip()
    project = state.project
    with Runtime(project) as rt:
        if model is not None:
            rt.gateway.resolve(model)  # unknown alias → UserError listing the known ones
        app = rt.app(app_name)
        answer = app.run(text, tenant=tenant, model=model)
        tenant = tenant or getattr(app, "tenant", "default")
        empty = answer.refused and not answer.checks and rt.retriever.count(tenant) == 0
    if as_json:
        emit_json(answer_json(answer))
        return
    print_answer(answer, project.root, _command(state.project_dir))
    if empty:
        click.secho(f"tenant '{tenant}' has no documents yet: run `{_command(state.project_dir)} ingest PATH"
                    f"{'' if tenant == 'default' else f' --tenant {tenant}'}` first", fg="yellow")


def _copy_docs(src: Path, dst: Path) -> None:
    """Mirror the bundled docs into the demo project, rewriting only what changed (so re-ingest is a no-op)."""
    wanted = {p.relative_to(src) for p in src.rglob("*.md")}
    for rel in wanted:
        target = dst / rel
        data = (src / rel).read_bytes()
        if not target.is_file() or target.read_bytes() != data:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    for stale in [p for p in dst.rglob("*.md") if p.relative_to(dst) not in wanted]:
        stale.unlink()


@main.command()
@click.option("--dir", "demo_dir", type=click.Path(file_okay=False), default=None,
              help="Demo project folder [default: PROJECT/.flywheel/demo].")
@click.option("--fresh", is_flag=True, help="Delete the demo project first and start over.")
@click.option("--json", "as_json", is_flag=True, help="Print the ingest summary and every answer as JSON.")
@click.pass_obj
def demo(state: Any, demo_dir: str | None, fresh: bool, as_json: bool) -> None:
    """Offline tour: ingest flywheel's own docs, ask questions, show the answers, citations and traces."""
    from flywheel.apps.runtime import Runtime
    from flywheel.config import Project
    from flywheel.retrieval.ingest import ingest

    root = Path(demo_dir) if demo_dir else state.project_dir / ".flywheel" / "demo"
    if fresh and root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    config = root / "flywheel.yaml"
    if not config.exists():
        config.write_text(DEMO_CONFIG.format(root=root), encoding="utf-8")
    _copy_docs(bundled_docs(), root / "docs")
    project = Project.load(root)
    command = _command(root)
    say = (lambda *a, **k: None) if as_json else click.secho

    t0 = time.perf_counter()
    results = []
    with Runtime(project) as rt:
        say(f"Ingesting flywheel's documentation into {root} …", bold=True)
        summary = _ingest_with_progress(ingest, [root / "docs"], rt.store, project, quiet=as_json)
        say(f"{_summary_line(summary)} in {time.perf_counter() - t0:.1f} s\n", dim=True)
        app = rt.app("docs_qa")
        for question in DEMO_QUESTIONS:
            answer = app.run(question)
            results.append(answer_json(answer, question))
            if not as_json:
                click.secho(f"Q: {question}", fg="cyan", bold=True)
                print_answer(answer, project.root.resolve(), command)
                click.echo()
    if as_json:
        emit_json({"project": str(root), "ingest": _summary_dict(summary), "answers": results,
                   "seconds": round(time.perf_counter() - t0, 2)})
        return
    click.secho("Next:", bold=True)
    steps = [(f"{command} traces", "every question above is a trace: retrieval, prompt, model"),
             (f"{command} ask \"your question\"", "ask the docs yourself"),
             ("flywheel init", "start your own project (see docs/getting-started.md)")]
    width = max(len(cmd) for cmd, _ in steps)
    for cmd, what in steps:
        click.echo(f"  {cmd:<{width}}  # {what}")


def _ingest_with_progress(ingest: Any, paths: list[Path], store: Any, project: Any, *, quiet: bool) -> Any:
    """Ingest with a transient progress bar (the first run embeds every chunk: tens of seconds on 2 cores)."""
    embedder = _bulk_embedder(project)
    if quiet:
        return ingest(paths, store, project.config, sync=True, root=project.root, embedder=embedder)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("ingest"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[source]}"), transient=True) as bar:
        task = bar.add_task("ingest", total=None, source="")

        def progress(done: int, total: int, source: str, chunks: int) -> None:
            bar.update(task, completed=done, total=total, source=source)

        return ingest(paths, store, project.config, sync=True, progress=progress, root=project.root,
                      embedder=embedder)


def _bulk_embedder(project: Any) -> Any:
    """The local embedder on its torch backend when sentence-transformers is installed: for the ~150 chunks of
    the docs it takes a fifth of the CPU time of the numpy backend that per-file batches would otherwise pick
    (same model, same vectors). Anything else: the configured embedder."""
    from importlib.util import find_spec

    from flywheel.retrieval.embedders import LocalEmbedder, local_available

    if project.config.retrieval.embedder == "local" and local_available() and find_spec("sentence_transformers"):
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # no "Loading weights" bar amid the output
        return LocalEmbedder(backend="torch")
    return "config"


def _summary_dict(summary: Any) -> dict[str, Any]:
    return summary.to_dict() if hasattr(summary, "to_dict") else dict(summary)


def _summary_line(summary: Any) -> str:
    s = _summary_dict(summary)
    line = (f"{s['files']} files: {s['indexed']} indexed ({s['chunks_added']} chunks), "
            f"{s['unchanged']} unchanged")
    if s.get("skipped"):
        line += f", {len(s['skipped'])} skipped"
    return line
