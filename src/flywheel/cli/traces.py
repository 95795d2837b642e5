"""`flywheel traces`: the latest traces, and `flywheel traces show TRACE_ID` for one trace's span tree."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import click

from flywheel.cli import emit_json, main
from flywheel.errors import UserError

ID_CHARS = 12  # shown in the table; `show` accepts this prefix


@main.group(invoke_without_command=True)
@click.option("--last", "last", default=20, show_default=True, type=click.IntRange(1, 10_000),
              help="How many of the most recent traces to list.")
@click.option("--app", default=None, help="Only traces of this app.")
@click.option("--json", "as_json", is_flag=True, help="Print the traces as JSON.")
@click.pass_context
def traces(ctx: click.Context, last: int, app: str | None, as_json: bool) -> None:
    """List recent traces (newest first). `flywheel traces show ID` prints one trace's span tree."""
    if ctx.invoked_subcommand is not None:
        return
    from flywheel.tracing import list_traces

    with _runtime(ctx) as rt:
        rows = list_traces(rt.store, last=last, app=app)
    if as_json:
        emit_json(rows)
        return
    _print_table(rows)


@traces.command("show")
@click.argument("trace_id")
@click.option("--json", "as_json", is_flag=True, help="Print the trace and its span tree as JSON.")
@click.pass_context
def show(ctx: click.Context, trace_id: str, as_json: bool) -> None:
    """Show one trace (a unique prefix of its id is enough) as a span tree."""
    from flywheel.tracing import get_trace

    with _runtime(ctx) as rt:
        trace = get_trace(rt.store, trace_id)
    if trace is None:
        raise UserError(f"no trace with id '{trace_id}' in this project's store",
                        hint="run `flywheel traces` to list recent trace ids")
    if as_json:
        emit_json(trace)
        return
    _print_tree(trace)


def _runtime(ctx: click.Context) -> Any:
    from flywheel.apps.runtime import Runtime

    return Runtime(ctx.obj.project, tracing=False)  # reading traces must not record new ones


# ------------------------------------------------------------------------------------ rendering


def _print_table(rows: list[dict[str, Any]]) -> None:
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    if not rows:
        console.print("no traces yet: run something traced (e.g. `flywheel chat \"hello\"`) first")
        return
    cells = []
    for r in rows:
        name = r["name"] if not r.get("app") or r["app"] == r["name"] else f"{r['name']} ({r['app']})"
        tokens = f"{r['input_tokens']}/{r['output_tokens']}" if (r["input_tokens"] or r["output_tokens"]) else "-"
        cells.append([_when(r["started_at"]), r["trace_id"][:ID_CHARS], name[:40], _ms(r["latency_ms"]), tokens,
                      _cost(r["cost_usd"]), r["status"], _one_line(r.get("input_preview"), 80)])
    headers = ["time", "trace", "name", "latency", "tokens", "cost $", "status", "input"]
    table = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False)
    for i, col in enumerate(headers):
        fixed = col != "input"  # every column but the input preview keeps its full width
        width = max(len(col), *(len(c[i]) for c in cells)) if fixed else None
        table.add_column(col, justify="right" if col in ("latency", "tokens", "cost $") else "left",
                         no_wrap=True, overflow="ellipsis", min_width=width)
    for c in cells:
        status = "[red]error[/red]" if c[6] == "error" else escape(c[6])
        table.add_row(*(escape(x) for x in c[:6]), status, escape(c[7]))
    console.print(table)


def _print_tree(trace: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.tree import Tree

    head = (f"[bold]{escape(trace['name'])}[/bold]  trace {trace['trace_id']}  {_when(trace['started_at'])}  "
            f"{_ms(trace.get('latency_ms'))}  tokens {trace.get('input_tokens', 0)}/{trace.get('output_tokens', 0)}"
            f"  ${_cost(trace.get('cost_usd'))}  {trace['status']}")
    root = Tree(head)

    def add(node: Tree, span: dict[str, Any]) -> None:
        parts = [f"[bold]{escape(span['name'])}[/bold]", f"[dim]{span['kind']}[/dim]", _ms(span["latency_ms"])]
        if span.get("model"):
            parts.append(escape(span["model"]))
        if span.get("input_tokens") is not None or span.get("output_tokens") is not None:
            parts.append(f"tokens {span.get('input_tokens') or 0}/{span.get('output_tokens') or 0}")
        if span.get("cost_usd"):
            parts.append(f"${_cost(span['cost_usd'])}")
        if span.get("error"):
            parts.append(f"[red]{escape(_one_line(span['error'], 100))}[/red]")
        else:
            out = span["outputs"]
            shown = "(missing output)" if span["output_state"] == "missing" else (
                "(empty output)" if span["output_state"] == "empty" else _one_line(_text(out), 80))
            parts.append(f"→ {escape(shown)}")
        child = node.add("  ".join(parts))
        for c in span["children"]:
            add(child, c)

    for span in trace["spans"]:
        add(root, span)
    Console().print(root)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _one_line(text: str | None, n: int) -> str:
    if not text:
        return ""
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    t = dt.datetime.fromtimestamp(ts)
    return t.strftime("%H:%M:%S") if t.date() == dt.date.today() else t.strftime("%Y-%m-%d %H:%M")


def _ms(ms: float | None) -> str:
    if ms is None:
        return "-"
    return f"{ms:.1f} ms" if ms < 1000 else f"{ms / 1000:.2f} s"


def _cost(cost: float | None) -> str:
    if not cost:
        return "0"
    return f"{cost:.4f}" if cost >= 0.001 else f"{cost:.6f}"
