"""`flywheel review`: label production traces (keyboard-first terminal UI), build queues, script labels, progress
and agreement. The queue logic is flywheel.feedback.queues; this module parses and renders."""

from __future__ import annotations

import shlex
import sys
import time
from typing import Any

import click

from flywheel.cli import emit_json, main
from flywheel.errors import UserError
from flywheel.text.when import parse_when

DAY = 86_400.0
VERDICT_KEYS = {"binary": {"p": "pass", "f": "fail"}, "pairwise": {"a": "a", "b": "b", "t": "tie"}}


def _store(state: Any) -> Any:
    from flywheel.store import Store

    return Store.open(state.project.store_url)


def _annotator_option(value: str | None) -> str:
    if not value or not value.strip():
        raise UserError("who is labelling? an annotator name is required",
                        hint="pass --annotator NAME or set FLYWHEEL_ANNOTATOR")
    return value.strip()


@main.group("review", invoke_without_command=True)
@click.option("--annotator", envvar="FLYWHEEL_ANNOTATOR", help="Your name as an annotator (or $FLYWHEEL_ANNOTATOR).")
@click.option("--queue", "queue_name", help="Queue name or id (default: the newest queue).")
@click.pass_context
def review(ctx: click.Context, annotator: str | None, queue_name: str | None) -> None:
    """Label sampled traces pass / fail (or A / B / tie) in a keyboard-first terminal UI; `review sample` builds
    the queue."""
    if ctx.invoked_subcommand is not None:
        return
    from flywheel.feedback import queues
    from flywheel.feedback.events import text_scrubber

    name = _annotator_option(annotator)
    with _store(ctx.obj) as store:
        if queue_name:
            queue = queues.get_queue(store, queue_name)
        else:
            known = queues.list_queues(store)
            if not known:
                raise UserError("there is no review queue yet", hint="build one: flywheel review sample --daily 50")
            queue = known[0]
        ReviewSession(store, queue, name, ttl=ctx.obj.project.config.review.lock_ttl_s,
                      scrub=text_scrubber(ctx.obj.project)).run()


class KeyReader:
    """One key per action on a terminal; when stdin is not a terminal (tests, scripts), one action per line:
    its first character is the key and the rest of the line the text (a reason after a verdict, a correction
    after `e`)."""

    def __init__(self) -> None:
        self.stream: Any = sys.stdin
        self.tty = self.stream.isatty()

    def read(self) -> tuple[str, str]:
        if self.tty:
            return str(click.getchar()).lower(), ""
        while True:
            line = self.stream.readline()
            if not line:
                return "q", ""  # end of input: quit
            line = line.strip()
            if line:
                return line[0].lower(), line[1:].strip()

    def text(self, prompt: str, given: str) -> str:
        if given or not self.tty:
            return given
        return str(click.prompt(prompt, default="", show_default=False)).strip()


class ReviewSession:
    def __init__(self, store: Any, queue: Any, annotator: str, *, ttl: float = 600.0, console: Any = None,
                 scrub: Any = None):
        from rich.console import Console

        self.store, self.queue, self.annotator, self.ttl = store, queue, annotator, ttl
        self.scrub = scrub  # reasons and corrections: the project's trace scrubber (PII when redact_pii is on)
        self.console = console or Console(highlight=False, soft_wrap=False)
        self.keys = KeyReader()
        self.history: list[str] = []
        self.skipped: set[str] = set()
        self.done = 0

    def run(self) -> None:
        from flywheel.feedback import queues

        pending: Any = None
        while True:
            item = pending or queues.next_item(self.store, self.queue, self.annotator, lock_ttl_s=self.ttl,
                                               skip=self.skipped)
            pending = None
            if item is None:
                self.console.print(f"[green]nothing left for {self.annotator} in queue {self.queue.name}[/] "
                                   f"({self.done} labelled this session)")
                return
            self.render(item)
            outcome = self.ask(item)
            if outcome == "quit":
                queues.release(self.store, item.id, self.annotator)
                from rich.markup import escape

                resume = f"flywheel review --queue {shlex.quote(self.queue.name)} --annotator {shlex.quote(self.annotator)}"
                self.console.print(f"stopped: {self.done} labelled this session; `{escape(resume)}` resumes")
                return
            if isinstance(outcome, tuple):  # undo: show the undone item again
                queues.release(self.store, item.id, self.annotator)
                pending = outcome[1]

    def ask(self, item: Any) -> Any:
        from flywheel.feedback import queues

        verdicts = VERDICT_KEYS[item.kind]
        correction: str | None = None
        while True:
            key, text = self.keys.read()
            if key == "q":
                return "quit"
            if key == "s":
                self.skipped.add(item.id)
                queues.release(self.store, item.id, self.annotator)
                self.console.print("[dim]skipped[/]")
                return "skip"
            if key == "u":
                if not self.history:
                    self.console.print("[yellow]nothing to undo in this session[/]")
                    continue
                last = self.history.pop()
                queues.undo(self.store, last, self.annotator)
                self.done -= 1
                self.console.print(f"[yellow]undid your label on item {last}[/]")
                return ("undo", queues.get_item(self.store, last, self.annotator))
            if key == "e":
                correction = self.keys.text("correction", text) or None
                self.console.print("[dim]correction noted; now the verdict[/]")
                continue
            if key in verdicts:
                reason = self.keys.text("why? (Enter to skip)", text) or None
                try:
                    queues.label(self.store, item.id, self.annotator, verdicts[key], reason=reason,
                                 correction=correction, scrub=self.scrub)
                except UserError as exc:
                    self.console.print(f"[red]{exc.message}[/]")
                    return "skip"
                self.history.append(item.id)
                self.done += 1
                self.console.print(f"[green]{verdicts[key]}[/] saved")
                return "labelled"
            self.console.print(f"[yellow]unknown key {key!r}[/]: {self.legend(item)}")

    def legend(self, item: Any) -> str:
        verdicts = "  ".join(f"[{k}] {v}" for k, v in VERDICT_KEYS[item.kind].items())
        return f"{verdicts}  [e] correction  [u] undo  [s] skip  [q] quit"

    def render(self, item: Any) -> None:
        from rich.columns import Columns
        from rich.markup import escape
        from rich.panel import Panel
        from rich.rule import Rule
        from rich.table import Table

        from flywheel.feedback import queues

        done = queues.progress(self.store, self.queue)
        c = self.console
        c.print(Rule(f"{self.queue.name} · item {item.position + 1}/{done['items']} · {item.id}"
                     f" · {done['complete']} complete · you: {done['annotators'].get(self.annotator, 0)}"))
        c.print(Panel(escape(item.input or "(no input recorded)"), title="input", title_align="left"))
        if item.prompt:
            lines = [f"[bold]{escape(str(m.get('role', '?')))}[/]: {escape(_turn(m))}" for m in item.prompt]
            of = " of A" if item.kind == "pairwise" else ""
            c.print(Panel("\n".join(lines), title=f"final prompt{of} ({len(item.prompt)} messages, exact)",
                          title_align="left", border_style="dim"))
        if item.sources:
            table = Table(title="retrieved sources" + (" of A" if item.kind == "pairwise" else ""),
                          title_justify="left", show_lines=False, expand=True)
            table.add_column("#", justify="right", no_wrap=True)
            table.add_column("score", justify="right", no_wrap=True)
            table.add_column("source", overflow="fold", ratio=1)
            table.add_column("text", overflow="fold", ratio=3)
            for i, s in enumerate(item.sources, 1):
                score = s.get("score")
                table.add_row(str(i), f"{score:.3f}" if isinstance(score, (int, float)) else "",
                              escape(str(s.get("source") or s.get("chunk_id") or "")),
                              escape(str(s.get("text") or "")[:300]))
            c.print(table)
        if item.kind == "pairwise":
            c.print(Columns([Panel(escape(item.output or ""), title="A", title_align="left"),
                             Panel(escape(item.output_b or ""), title="B", title_align="left")], equal=True,
                            expand=True))
        else:
            c.print(Panel(escape(item.output or "(no answer recorded)"), title="answer", title_align="left",
                          border_style="cyan"))
        c.print(self.legend(item), markup=False)


def _turn(message: dict[str, Any]) -> str:
    """A prompt message as the reviewer reads it: its text, then the tools it called with their arguments (an
    agent's turn that only called a tool has no text, and the call is what there is to judge)."""
    raw = message.get("tool_calls")
    shown = []
    for call in raw if isinstance(raw, list) else []:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            shown.append(f"→ {function.get('name', '?')}({_content(function.get('arguments'))})")
    return " ".join([t for t in [_content(message.get("content")).strip()] if t] + shown)


def _content(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # content parts
        return " ".join(str(p.get("text", "")) if isinstance(p, dict) else str(p) for p in value)
    return "" if value is None else str(value)


@review.command("sample")
@click.option("--daily", type=click.IntRange(min=1), help="Sample N traces of the last 24 hours (or of --since …).")
@click.option("-n", "--n", "count", type=click.IntRange(min=1), help="Sample N traces of the window (default 50).")
@click.option("--app", help="Only traces of this app.")
@click.option("--tenant", help="Only traces of this tenant.")
@click.option("--strategy", default="mixed", show_default=True,
              help="mixed, random, negative-feedback, guard-triggered, low-score, uncertain or new-topic.")
@click.option("--overlap", type=click.IntRange(min=1), help="Distinct annotators per item (default: review.overlap).")
@click.option("--kind", type=click.Choice(["binary", "pairwise"]), default="binary", show_default=True)
@click.option("--since", help="Window start: 24h, 7d, 2026-06-01, an ISO date-time or Unix seconds.")
@click.option("--until", help="Window end (same forms).")
@click.option("--seed", type=click.IntRange(0, 2**62), help="Sampling seed (default: a random one, recorded on the queue).")
@click.option("--name", help="Queue name (default: <strategy>-<date>).")
@click.option("--json", "as_json", is_flag=True, help="Print the queue and its items as JSON.")
@click.pass_obj
def sample(state: Any, daily: int | None, count: int | None, app: str | None, tenant: str | None, strategy: str,
           overlap: int | None, kind: str, since: str | None, until: str | None, seed: int | None,
           name: str | None, as_json: bool) -> None:
    """Build a review queue from the traces: a stratified mix by default, reproducible from its recorded seed."""
    from flywheel.feedback import queues

    if daily and count:
        raise UserError("--daily N and -n N both set how many traces to sample", hint="pass one of them")
    now = time.time()
    start, end = parse_when(since, "--since", now), parse_when(until, "--until", now)
    if daily and start is None:
        start = (end or now) - DAY
    cfg = state.project.config.review
    with _store(state) as store:
        queue = queues.create_queue(store, name, kind=kind, overlap=overlap or cfg.overlap, strategy=strategy,
                                    n=daily or count or 50, app=app, since=start, until=end, seed=seed,
                                    tenant=tenant)
        listed = queues.items(store, queue)
    if as_json:
        emit_json({**queue.model_dump(), "items": [i.model_dump() for i in listed]})
        return
    strata: dict[str, int] = {}
    for i in listed:
        strata[i.stratum or "?"] = strata.get(i.stratum or "?", 0) + 1
    click.echo(f"queue {queue.name} ({queue.id}): {queue.n_items} {queue.kind} items, overlap {queue.overlap}, "
               f"strategy {queue.strategy}, seed {queue.seed}")
    click.echo("  " + ", ".join(f"{k}: {v}" for k, v in sorted(strata.items())))
    click.echo(f"label them: flywheel review --queue {queue.name} --annotator NAME")


@review.command("label")
@click.argument("item_id")
@click.option("--annotator", envvar="FLYWHEEL_ANNOTATOR", help="Who labels (or $FLYWHEEL_ANNOTATOR).")
@click.option("--verdict", required=True, type=click.Choice(["pass", "fail", "a", "b", "tie"], case_sensitive=False))
@click.option("--reason", help="Why (kept with the label; becomes the judge criterion when promoted).")
@click.option("--correction", help="The answer it should have given.")
@click.option("--json", "as_json", is_flag=True, help="Print the stored label as JSON.")
@click.pass_obj
def label_cmd(state: Any, item_id: str, annotator: str | None, verdict: str, reason: str | None,
              correction: str | None, as_json: bool) -> None:
    """Label one item (for scripts); a pairwise verdict is in the A / B order this annotator is shown."""
    from flywheel.feedback import queues
    from flywheel.feedback.events import text_scrubber

    name = _annotator_option(annotator)
    with _store(state) as store:
        stored = queues.label(store, item_id, name, verdict, reason=reason, correction=correction,
                              scrub=text_scrubber(state.project))
    if as_json:
        emit_json(stored.model_dump())
    else:
        click.echo(f"{name}: {stored.shown} on item {item_id}")


@review.command("undo")
@click.argument("item_id")
@click.option("--annotator", envvar="FLYWHEEL_ANNOTATOR", help="Whose label to remove (or $FLYWHEEL_ANNOTATOR).")
@click.pass_obj
def undo_cmd(state: Any, item_id: str, annotator: str | None) -> None:
    """Remove your label on an item (and its feedback row)."""
    from flywheel.feedback import queues

    name = _annotator_option(annotator)
    with _store(state) as store:
        removed = queues.undo(store, item_id, name)
    click.echo(f"removed {name}'s {removed.shown} on item {item_id}")


@review.command("next")
@click.option("--queue", "queue_name", help="Queue name or id (default: the newest queue).")
@click.option("--annotator", envvar="FLYWHEEL_ANNOTATOR", help="Who labels (or $FLYWHEEL_ANNOTATOR).")
@click.pass_obj
def next_cmd(state: Any, queue_name: str | None, annotator: str | None) -> None:
    """Claim the next item for an annotator and print it as JSON (null when none is left): for scripts."""
    from flywheel.feedback import queues

    name = _annotator_option(annotator)
    with _store(state) as store:
        queue = _queue(store, queue_name)
        item = queues.next_item(store, queue, name, lock_ttl_s=state.project.config.review.lock_ttl_s)
    emit_json(item.model_dump() if item else None)


def _queue(store: Any, name: str | None) -> Any:
    from flywheel.feedback import queues

    if name:
        return queues.get_queue(store, name)
    known = queues.list_queues(store)
    if not known:
        raise UserError("there is no review queue yet", hint="build one: flywheel review sample --daily 50")
    return known[0]


@review.command("status")
@click.option("--queue", "queue_name", help="One queue (default: every queue).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def status(state: Any, queue_name: str | None, as_json: bool) -> None:
    """Per-queue and per-annotator progress: items, complete items (K labels), labels by each annotator."""
    from flywheel.feedback import queues

    with _store(state) as store:
        chosen = [queues.get_queue(store, queue_name)] if queue_name else queues.list_queues(store)
        rows = [{**q.model_dump(), **queues.progress(store, q)} for q in chosen]
    if as_json:
        emit_json(rows[0] if queue_name else {"queues": rows})
        return
    if not rows:
        click.echo("no review queues yet: flywheel review sample --daily 50")
        return
    from rich.table import Table

    from flywheel.cli.console import console

    table = Table(show_edge=False)
    for col in ("queue", "kind", "items", "complete", "overlap", "annotators (labels)"):
        table.add_column(col)
    for r in rows:
        who = ", ".join(f"{k} {v}" for k, v in r["annotators"].items()) or "-"
        table.add_row(r["name"], r["kind"], str(r["items"]), str(r["complete"]), str(r["overlap"]), who)
    console().print(table)
    for r in rows:
        if r.get("gone"):
            click.echo(f"{r['name']}: {r['gone']} item(s) skipped, their trace was deleted")


@review.command("agreement")
@click.option("--queue", "queue_name", help="One queue (default: the labels of every queue of --kind).")
@click.option("--kind", type=click.Choice(["binary", "pairwise"]),
              help="Without --queue: the queues whose labels to measure (default: binary when there are any).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def agreement(state: Any, queue_name: str | None, kind: str | None, as_json: bool) -> None:
    """Inter-annotator agreement: Cohen's κ per pair, Fleiss' κ, Krippendorff's α (95 % bootstrap intervals) and
    the items where annotators disagree. Binary (pass / fail) and pairwise (a / b / tie) labels are never pooled."""
    from flywheel.feedback import queues

    with _store(state) as store:
        if queue_name:
            one = queues.get_queue(store, queue_name)
            if kind and one.kind != kind:
                raise UserError(f"queue {one.name} is {one.kind}, not {kind}", hint="leave out --kind with --queue")
            got, kind, other = queues.labels(store, one), one.kind, []
        else:
            kinds = {q.id: q.kind for q in queues.list_queues(store)}
            every = queues.labels(store, None)
            if kind is None:
                kind = "pairwise" if every and all(kinds.get(lb.queue_id) == "pairwise" for lb in every) else "binary"
            got = [lb for lb in every if kinds.get(lb.queue_id) == kind]
            other = [lb for lb in every if kinds.get(lb.queue_id) != kind]
    if not got:
        raise UserError("no labels yet" + (f" in queue {queue_name!r}" if queue_name else
                                           f" in {kind} queues" if other else ""),
                        hint="label items first: flywheel review --annotator NAME")
    report = {**agreement_report([(lb.item_id, lb.annotator, lb.verdict) for lb in got]), "kind": kind}
    if other:  # pass/fail and a/b/tie pooled would make chance agreement look smaller and κ larger than it is
        click.secho(f"note: {len(other)} label(s) of {'pairwise' if kind == 'binary' else 'binary'} queues are "
                    f"measured separately: --kind {'pairwise' if kind == 'binary' else 'binary'}", err=True,
                    fg="yellow")
    if as_json:
        emit_json(report)
        return
    print_agreement(report)


def agreement_report(rows: list[tuple[str, str, str]]) -> dict[str, Any]:
    try:
        from flywheel.feedback.agreement import agreement_report as compute
    except ImportError:
        raise UserError("agreement statistics are not available in this install (flywheel.feedback.agreement)",
                        hint="reinstall flywheel") from None
    return dict(compute(rows, n_boot=1000, seed=0))


def _num(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "n/a"


def print_agreement(report: dict[str, Any]) -> None:
    from rich.table import Table

    from flywheel.cli.console import console as make_console

    console = make_console()
    console.print(f"items: {report.get('n_items', 0)}, labels: {report.get('n_labels', '?')}")
    table = Table(show_edge=False)
    for col in ("annotators", "Cohen's κ", "95 % CI", "n"):
        table.add_column(col)
    for pair in report.get("pairs", []):
        ci = pair.get("ci95")
        table.add_row(" × ".join(map(str, pair.get("annotators", []))), _num(pair.get("cohen_kappa")),
                      f"[{_num(ci[0])}, {_num(ci[1])}]" if isinstance(ci, (list, tuple)) and len(ci) == 2 else "n/a",
                      str(pair.get("n", "")))
    console.print(table)
    reasons = report.get("reasons") or {}
    for key, ci_key, title in (("fleiss_kappa", "fleiss_ci95", "Fleiss' κ"),
                               ("krippendorff_alpha", "krippendorff_ci95", "Krippendorff's α")):
        ci = report.get(ci_key)
        line = _num(report.get(key))
        if isinstance(ci, (list, tuple)) and len(ci) == 2:
            line += f"  95 % CI [{_num(ci[0])}, {_num(ci[1])}]"
        if key in reasons:
            line += f"  ({reasons[key]})"
        console.print(f"{title}: {line}")
    disagreements = report.get("disagreements") or []
    console.print(f"items where annotators disagree: {len(disagreements)}")
    for d in disagreements[:20]:
        if isinstance(d, dict):
            verdicts = ", ".join(f"{a}: {v}" for a, v in (d.get("verdicts") or {}).items())
            console.print(f"  {d.get('item_id')}  {verdicts}", markup=False)
        else:
            console.print(f"  {d}", markup=False)
    if len(disagreements) > 20:
        console.print(f"  … {len(disagreements) - 20} more (--json lists them all)")
