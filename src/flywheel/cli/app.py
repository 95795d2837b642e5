"""`flywheel ask` (one question through an app), and what `ask` and `flywheel demo` (cli/demo.py) print."""

from __future__ import annotations

import shlex
from importlib import resources
from pathlib import Path
from typing import Any

import click

from flywheel.cli import emit_json, main
from flywheel.cli.names import check_alias, check_app
from flywheel.errors import UserError


def bundled_docs() -> Path:
    """The documentation shipped inside the package (src/flywheel/docs links to the repository's docs/)."""
    path = Path(str(resources.files("flywheel").joinpath("docs")))
    if not (path / "getting-started.md").is_file():
        raise UserError(f"the bundled documentation is missing from {path}",
                        hint="reinstall flywheel (pip install -e .); the wheel ships flywheel/docs/")
    return path


def command_prefix(project_dir: Path | str) -> str:
    """The `flywheel` command to print for a project, ready to paste: a folder with spaces (or quotes, `$` …) in
    its path is shell-quoted."""
    return "flywheel" if str(project_dir) in ("", ".") else f"flywheel --project {shlex.quote(str(project_dir))}"


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


# The lines around a Chinese answer, in Chinese (the answer itself is written in the question's language).
_ZH_NOTES = {"no_passage": "已拒答：没有找到相关的段落，所以没有调用模型",
             "model_declined": "模型拒绝回答：它表示资料里没有答案",
             "guard_blocked": "已拒答：被护栏拦截",
             "exact": "来自缓存：之前回答过同一个问题，没有调用模型",
             "semantic": "来自缓存：之前回答过相似的问题，没有调用模型"}


def print_answer(answer: Any, root: Path, command: str) -> None:
    from flywheel.cli.chat import answer_note
    from flywheel.text.display import safe_display  # document text and names must not drive the terminal
    from flywheel.text.language import detect_language

    zh = detect_language(answer.text) == "zh"
    click.echo(safe_display(answer.text, multiline=True))
    if answer.citations:
        click.secho("\n来源" if zh else "\nSources", bold=True)
        for c in answer.citations:
            where = f" · {c.location}" if c.location else ""
            click.echo(f"  [{c.id}] {safe_display(_shown_source(c.source, root) + where)}")
    note = answer_note(answer)  # answered from the cache, or refused and why
    if note and zh:
        note = _ZH_NOTES.get(answer.refusal or answer.cache, note)
    if note:  # a line of its own, not in parentheses: the notes hold some
        click.secho(note, dim=True)
    if answer.trace_id:
        show = f"`{command} traces show {answer.trace_id}`"
        click.secho(f"追踪 {answer.trace_id} · 查看：{show}" if zh else f"trace {answer.trace_id} · see it with {show}",
                    dim=True)


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
            check_alias(rt.gateway, model, "--model")  # before anything runs; lists the known ones
        app = rt.app(check_app(project, app_name))
        answer = app.run(text, tenant=tenant, model=model)
        tenant = str(tenant or getattr(app, "tenant", None) or "default")
        empty = (getattr(app, "kind", None) == "docs_qa" and answer.refused and not answer.checks
                 and rt.retriever.count(tenant) == 0)  # other kinds (sql_qa, chat) do not read documents
    if as_json:
        emit_json(answer_json(answer))
        return
    print_answer(answer, project.root, command_prefix(state.project_dir))
    if empty:
        from flywheel.text.language import detect_language

        zh = detect_language(answer.text) == "zh"
        run = (f"`{command_prefix(state.project_dir)} ingest {'文档目录' if zh else 'PATH'}"
               f"{'' if tenant == 'default' else f' --tenant {shlex.quote(tenant)}'}`")
        whose = (("这个项目", "this project") if tenant == "default"  # a new user has not met tenants yet
                 else (f"租户 '{tenant}'", f"tenant '{tenant}'"))
        click.secho(f"{whose[0]}还没有任何文档：请先运行 {run}" if zh
                    else f"{whose[1]} has no documents yet: run {run} first", fg="yellow")


def _bulk_embedder(project: Any) -> Any:
    """The embedder for the demo's ingest: the configured one. (It used to force the torch backend; the local
    embedder's `auto` now runs the shipped ONNX graph for every batch, the fastest backend, without torch.)"""
    return "config"


def _summary_dict(summary: Any) -> dict[str, Any]:
    return summary.to_dict() if hasattr(summary, "to_dict") else dict(summary)


def _summary_line(summary: Any) -> str:
    s = _summary_dict(summary)
    line = (f"{s['files']} files: {s['indexed']} indexed ({s['chunks_added']} chunks), "
            f"{s['unchanged']} unchanged")
    if s.get("embedded"):  # also after an interrupted run, whose files are unchanged but not all embedded yet
        line += f", {s['embedded']} chunks embedded"
    if s.get("skipped"):
        line += f", {len(s['skipped'])} skipped"
    return line
