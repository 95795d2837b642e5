"""`flywheel traces`: the latest traces, and `flywheel traces show TRACE_ID` for one trace's span tree."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import click
from rich.cells import cell_len

from flywheel.cli import emit_json, main
from flywheel.cli.console import UNLIMITED_WIDTH, output_width
from flywheel.errors import UserError
from flywheel.text.display import safe_display

ID_CHARS = 8  # shown in the table; `show` accepts any unique prefix of 6 or more


@main.group(invoke_without_command=True)
@click.option("--last", "last", default=20, show_default=True, type=click.IntRange(1, 10_000),
              help="How many of the most recent traces to list.")
@click.option("--app", default=None, help="Only traces of this app.")
@click.option("--status", default=None, type=click.Choice(["ok", "error", "incomplete"]),
              help="Only traces with this status (incomplete: the process stopped mid-request).")
@click.option("--feedback", default=None, type=click.Choice(["positive", "negative", "any", "none"]),
              help="Only traces whose user vote is positive (thumbs up, score ≥ 0.5) or negative (thumbs down, score < 0.5; a changed vote counts as the last one), with any feedback, or none.")
@click.option("--model", default=None, help="Only traces of this model alias.")
@click.option("--session", "session_id", default=None, help="Only the turns of this conversation (session id).")
@click.option("--since", default=None, help="Only traces since a time: an age (15m, 24h, 7d) or an ISO date.")
@click.option("--search", default=None, help="Only traces whose question or answer contains this text (words "
                                              "separated by spaces: each of them, anywhere; letter case, full/half width and "
                                              "traditional/simplified Chinese are ignored).")
@click.option("--json", "as_json", is_flag=True, help="Print the traces as JSON.")
@click.pass_context
def traces(ctx: click.Context, last: int, app: str | None, status: str | None, feedback: str | None,
           model: str | None, session_id: str | None, since: str | None, search: str | None, as_json: bool) -> None:
    """List recent traces (newest first), including incomplete ones (their process stopped mid-request).
    `flywheel traces show ID` prints one trace's span tree with each span's inputs and outputs."""
    if ctx.invoked_subcommand is not None:
        return
    from flywheel.tracing.query import dropped_spans
    from flywheel.tracing.search import TraceQuery, search_traces
    from flywheel.workflows.records import name_incomplete_runs

    q, errors = TraceQuery.from_params({"app": app, "status": status, "feedback": feedback, "model": model,
                                        "session_id": session_id, "since": since, "search": search})
    if errors:
        field, why = next(iter(errors.items()))
        option = {"session_id": "session"}.get(field, field)
        raise UserError(f"invalid --{option} {ctx.params.get(field)!r}: {why}",
                        hint="see `flywheel traces --help` for what each filter takes")
    with _runtime(ctx) as rt:
        rows = search_traces(rt.store, q, limit=last).rows
        dropped = dropped_spans(rt.store)
        name_incomplete_runs(rt.store, rows)
    if as_json:
        emit_json(rows)
        return
    if not rows and any(v for v in (app, status, feedback, model, session_id, since, search)):
        click.echo("no traces match these filters (`flywheel traces` with none lists the most recent)")
        return
    _print_table(rows, dropped=dropped)


@traces.command("show")
@click.argument("trace_id")
@click.option("--json", "as_json", is_flag=True, help="Print the trace, its span tree and its feedback as JSON.")
@click.pass_context
def show(ctx: click.Context, trace_id: str, as_json: bool) -> None:
    """Show one trace (a unique prefix of its id, or the response id an SDK returned, is enough) as a span tree
    with inputs and outputs, and its feedback."""
    from flywheel.feedback import for_trace
    from flywheel.feedback.events import label_corrections, trace_id_of
    from flywheel.store.schema_feedback import superseded_ids
    from flywheel.tracing import get_trace

    with _runtime(ctx) as rt:
        trace = get_trace(rt.store, trace_id_of(trace_id.strip()))
        events = for_trace(rt.store, trace["trace_id"]) if trace is not None else []
        fixes = label_corrections(rt.store, events)  # a reviewer's correction, kept with their label
    if trace is None:
        raise UserError(f"no trace with id '{trace_id}' in this project's store",
                        hint="run `flywheel traces` to list recent trace ids")
    if as_json:  # `superseded`: a vote its voter changed later (the history stays, the later vote counts)
        gone = superseded_ids(events)
        emit_json({**trace, "feedback": [{**e.model_dump(), "superseded": e.id in gone,
                                          "correction": fixes.get(e.id or 0)} for e in events]})
        return
    _print_tree(trace)
    _print_feedback(events, fixes=fixes)


def _runtime(ctx: click.Context) -> Any:
    from flywheel.apps.runtime import Runtime

    return Runtime(ctx.obj.project, tracing=False)  # reading traces must not record new ones


# ------------------------------------------------------------------------------------ rendering
# Plain fixed-width text (not a rich Table): columns are measured in terminal cells, so Chinese, Japanese and
# Korean text (two cells a character) lines up and the question gets every column the others leave, down to
# an 80-column terminal.

WIDE_NAME = 100  # terminal width from which the name column is shown
WIDE_TOTALS = 124  # … and the tokens and cost columns


def _print_table(rows: list[dict[str, Any]], width: int | None = None, dropped: int = 0) -> None:
    width = width or output_width()
    if not rows:
        click.echo("no traces yet: run something traced (e.g. `flywheel chat \"hello\"`) first")
        return
    cols: list[tuple[str, str, bool]] = [("time", "time", False), ("trace", "trace", False)]
    if width >= WIDE_NAME:
        cols.append(("name", "name", False))
    cols += [("latency", "latency", True)]
    if width >= WIDE_TOTALS:
        cols += [("tokens", "tokens", True), ("cost $", "cost", True)]
    cols += [("status", "status", False), ("question", "question", False)]
    cells = [_cells(r) for r in rows]
    widths = {key: max(cell_len(title), *(cell_len(c[key]) for c in cells)) for title, key, _ in cols}
    if width < UNLIMITED_WIDTH:  # on a terminal a long name gives way to the question; off one it stays whole
        widths["name"] = min(widths.get("name", 0), 24)
    fixed = sum(widths[key] for _, key, _ in cols[:-1]) + 2 * (len(cols) - 1)
    widths["question"] = max(12, width - fixed - 1)
    click.echo(_line([(title, widths[key], right) for title, key, right in cols]), color=False)
    for c in cells:
        line = _line([(c[key], widths[key], right) for _, key, right in cols])
        color = "red" if c["status"] == "error" else "yellow" if c["status"] == "incomplete" else None
        click.echo(click.style(line, fg=color) if color else line)
    if dropped:
        click.secho(f"{dropped} span(s) were dropped while the store fell behind (see `writer_drops`, "
                    "docs/tracing.md)", fg="yellow", err=True)


def _cells(r: dict[str, Any]) -> dict[str, str]:
    name = r["name"] if not r.get("app") or r["app"] == r["name"] else f"{r['name']} ({r['app']})"
    tokens = f"{r['input_tokens']}/{r['output_tokens']}" if (r["input_tokens"] or r["output_tokens"]) else "-"
    return {"time": _when(r["started_at"]), "trace": r["trace_id"][:ID_CHARS], "name": _clean(name),
            "latency": _ms(r["latency_ms"]), "tokens": tokens, "cost": _cost(r["cost_usd"]),
            "status": r["status"], "question": _clean(r.get("input_preview"))}


def _line(cells: list[tuple[str, int, bool]]) -> str:
    out = []
    for text, w, right in cells:
        text = fit(text, w)
        pad = " " * (w - cell_len(text))
        out.append(pad + text if right else text + pad)
    return "  ".join(out).rstrip()


def fit(text: str, cells: int) -> str:
    """`text` cut to at most `cells` terminal cells (wide characters count two), ending in "…" when cut."""
    if cell_len(text) <= cells:
        return text
    out, used = [], 0
    for ch in text:
        w = cell_len(ch)
        if used + w > cells - 1:
            break
        out.append(ch)
        used += w
    kept = "".join(out)
    space = kept.rfind(" ")
    if space >= max(1, len(kept) - 12):  # end on a word boundary when one is near (words stay whole)
        kept = kept[:space]
    return kept.rstrip() + "…"


def _print_tree(trace: dict[str, Any], width: int | None = None) -> None:
    """The span tree, a line per span and its in/out (a reasoning model's thinking on a `reasoning:` line of its
    own, cut to the terminal's width: `--json` has it whole; with n > 1 choices, a `choice N:` line for each
    answer, each followed by its own reasoning)."""
    from flywheel.tracing.store_sink import choice_outputs, with_reasoning

    width = width or output_width()
    status = trace["status"]
    head = (f"{_clean(trace['name'])}  {status}  trace {trace['trace_id']}  {_when(trace['started_at'])}  "
            f"{_ms(trace.get('latency_ms'))}  tokens {trace.get('input_tokens', 0)}/{trace.get('output_tokens', 0)}"
            f"  ${_cost(trace.get('cost_usd'))}")
    click.echo(fit(head, width))
    if status == "incomplete":
        click.secho("  (its root span never ended: the process stopped or is still running)", fg="yellow")

    def add(span: dict[str, Any], prefix: str, last: bool) -> None:
        branch, more = ("└─ ", "   ") if last else ("├─ ", "│  ")
        parts = [_clean(span["name"]), span["kind"], _ms(span["latency_ms"])]
        if span.get("model"):
            parts.append(_clean(span["model"]))
        if span.get("input_tokens") is not None or span.get("output_tokens") is not None:
            parts.append(f"tokens {span.get('input_tokens') or 0}/{span.get('output_tokens') or 0}")
        if span.get("cost_usd"):
            parts.append(f"${_cost(span['cost_usd'])}")
        click.echo(fit(prefix + branch + "  ".join(parts), width))
        inner = prefix + more + ("│  " if span["children"] else "   ")
        shown_in = _inputs(span.get("inputs"))
        if shown_in:
            click.echo(fit(f"{inner}in:  {shown_in}", width))
        if span.get("error"):
            click.secho(fit(f"{inner}err: {_clean(span['error'])}", width), fg="red")
        else:
            state = span["output_state"]
            if state in ("missing", "empty"):
                shown: list[tuple[str, Any, str | None]] = []
                click.echo(fit(f"{inner}out: ({state} output)", width))
            elif (choices := choice_outputs(span["outputs"])) is not None:  # n > 1: each answer, then its reasoning
                shown = [(f"choice {k}", answer, thinking) for k, (answer, thinking) in enumerate(choices)]
                click.echo(fit(f"{inner}out: {len(choices)} choices", width))
            else:  # a reasoning model's answer, its thinking apart
                shown = [("out", *with_reasoning(span["outputs"]))]
            for label, answer, thinking in shown:
                click.echo(fit(f"{inner}{label}: {_answer(answer, thinking)}", width))
                if thinking is not None:
                    click.secho(fit(f"{inner}reasoning: {_clean(thinking)}", width), dim=True)
        for i, child in enumerate(span["children"]):
            add(child, prefix + more, i == len(span["children"]) - 1)

    for i, span in enumerate(trace["spans"]):
        add(span, "", i == len(trace["spans"]) - 1)


def _answer(answer: Any, thinking: str | None) -> str:
    """A model's answer on one line; a reasoning model that only thought (cut by max_tokens) answered nothing."""
    return "(no answer: the model only reasoned)" if thinking is not None and not answer else _clean(_outputs(answer))


def _print_feedback(events: list[Any], width: int | None = None, fixes: dict[int, str] | None = None) -> None:
    width = width or output_width()
    if not events:
        click.echo("feedback: none")
        return
    from flywheel.store.schema_feedback import superseded_ids

    gone = superseded_ids(events)  # votes their voter changed later: listed as history, marked, dimmed
    click.echo(f"feedback ({len(events)}" + (f", {len(gone)} vote(s) changed later" if gone else "") + "):")
    for e in events:
        value = ("up" if e.value else "down") if e.name == "thumbs" else ("" if e.value is None else _text(e.value))
        parts = [_when(e.created_at), f"{e.name} {_clean(value)}".rstrip(), f"({e.source}"
                 + (f", {_clean(e.actor)})" if e.actor else ")")]
        if e.span_id:
            parts.append(f"span {e.span_id[:8]}")
        if e.comment:
            parts.append(f'"{_clean(e.comment)}"')
        if e.id in gone:
            parts.insert(2, "[replaced by a later vote]")
        click.secho(fit("  " + "  ".join(parts), width), dim=e.id in gone)
        if (fixes or {}).get(e.id):  # the reviewer's correction, on its own line under their label
            click.echo(fit(f"            correction: {_clean((fixes or {})[e.id])}", width))


def _inputs(value: Any) -> str:
    """A one-line view of a span's inputs: for model calls the last user message, how many messages were
    sent and the parameters; otherwise the question/query/… or the JSON."""
    if value is None:
        return ""
    from flywheel.tracing.store_sink import preview

    text = _clean(preview(value, limit=400))
    if isinstance(value, dict) and isinstance(value.get("messages"), list):
        extra = [f"{len(value['messages'])} messages"]
        params = value.get("params")
        if isinstance(params, dict):
            extra += [f"{k}={_clean(_text(v))}" for k, v in params.items()]
        text = f"{text}  ({', '.join(extra)})"
    return text


def _outputs(value: Any) -> str:
    """A span's output; for a list of messages (spans received over OTLP) the last message's text; tool calls
    as `→ name(arguments)` after the text."""
    from flywheel.tracing.store_sink import answer_preview

    last = value[-1] if isinstance(value, list) and value and isinstance(value[-1], dict) else value
    if isinstance(last, dict) and last.get("tool_calls"):
        text = last.get("content") if isinstance(last.get("content"), str) else ""
        return "  ".join([*([text] if text else []), *map(_tool_call, last["tool_calls"])])
    if isinstance(value, dict) and isinstance(value.get("text"), str):  # an app's answer: its text, not the wrapper
        cites = value.get("citations")
        return value["text"] + (f"  [{len(cites)} source(s)]" if isinstance(cites, list) and cites else "")
    return (answer_preview(value) or "") if isinstance(value, list) else _text(value)


def _tool_call(call: Any) -> str:
    fn = call.get("function") if isinstance(call, dict) else None
    if not isinstance(fn, dict):
        return "→ " + _text(call)
    args = fn.get("arguments")
    try:
        parsed = json.loads(args) if isinstance(args, str) else args
    except ValueError:
        parsed = args
    shown = (", ".join(f"{k}={_text(v)}" for k, v in parsed.items()) if isinstance(parsed, dict)
             else _text(parsed or ""))
    return f"→ {fn.get('name') or '?'}({shown})"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _clean(text: str | None) -> str:
    """One line, safe for the terminal: whitespace collapsed, escape sequences and controls neutralised."""
    if not text:
        return ""
    return safe_display(" ".join(str(text).split()))


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    t = dt.datetime.fromtimestamp(ts)
    return t.strftime("%H:%M:%S") if t.date() == dt.date.today() else t.strftime("%m-%d %H:%M")


def _ms(ms: float | None) -> str:
    if ms is None:
        return "-"
    return f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


def _cost(cost: float | None) -> str:
    if not cost:
        return "0"
    return f"{cost:.4f}" if cost >= 0.001 else f"{cost:.6f}"


from flywheel.cli import traces_import  # noqa: F401 - registers `traces import`
