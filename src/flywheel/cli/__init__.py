"""The `flywheel` command. Thin: parse input, call layer 3, render output.

Each command family lives in its own module and registers itself on `main`.
"""

from __future__ import annotations

import atexit
import gc
import importlib
import json
import sys
from pathlib import Path
from typing import Any

import click

from flywheel.errors import UserError

# command name -> the module in flywheel.cli that defines it; imported only when the command runs,
# so `flywheel chat` doesn't pay for the retrieval or eval stacks.
COMMANDS = {
    "init": "core", "chat": "chat", "traces": "traces", "fake-llm": "fake", "ingest": "retrieval",
    "search": "retrieval", "ask": "app", "demo": "demo", "eval": "evals", "compare": "evals", "bench": "bench",
    "check": "check", "serve": "serve", "keys": "keys", "monitor": "monitor", "report": "report",
    "judge": "judge", "promote": "promote", "review": "review", "feedback": "feedback",
    "prompts": "prompts", "route": "route", "export": "export", "train-check": "train_check",
    "drift": "drift", "skew": "drift", "embed": "retrieval", "store": "store",
    "workflow": "workflow", "finetune": "finetune", "mcp": "mcp",
}
# command name -> its one-line help for `flywheel --help`, so listing the commands imports none of them
# (importing them all took 1.6 s). tests/test_cli_help.py fails when a line drifts from the command's docstring.
SHORT_HELP = {
    "ask": "Answer QUESTION from the ingested documents, with [n] citations.",
    "bench": "Benchmarks that print JSON, measured side by side against a peer in the same run.",
    "chat": "Send MESSAGE to a model alias and print the answer, its tokens, cost, latency and trace id.",
    "check": "Run check NAME over the rows of FILE.jsonl: one verdict per row, and precision / recall / F1 "
             "/ flag rate on clean rows when rows carry `label`.",
    "compare": "Pairwise LLM judge, both A/B orders: `compare RUN_A RUN_B` or `compare --against-traces N`; "
               "results are stored (`compare --show ID`).",
    "demo": "Offline tour: answers with citations, guards, cache, retries and fallback, evals, traces.",
    "drift": "Drift of production traces against a reference: embeddings (MMD, AUC), topics, languages, lengths, "
             "format.",
    "embed": "Compute the vectors of chunks that have none yet (after `flywheel ingest --no-embed`); resumable.",
    "eval": "Run eval suites (default: every YAML file in evals/).",
    "feedback": "Record feedback on a trace (thumbs, score, comment, correction, category); all events or none are "
                "stored.",
    "export": "Export reviewed traces as fine-tuning or eval data (sft, dpo, openai-ft, hf, eval) with a datasheet.",
    "finetune": "LoRA fine-tune a local Hugging Face model on exported SFT rows; serve it with `provider: "
                "transformers`.",
    "fake-llm": "Serve scripted answers on the OpenAI (/v1/chat/completions, /v1/embeddings, /v1/models) "
                "and Anthropic (/v1/messages) wire protocols, for testing apps without a real model.",
    "ingest": "Index files and folders (Markdown, PDF, HTML, text, JSONL, Word, PowerPoint, Excel/CSV, EPUB, BEIR corpora).",
    "init": "Write flywheel.yaml (commented, with provider presets), prompts/ and evals/.",
    "judge": "Calibrate LLM judges against human review labels (agreement κ, few-shot examples, versioned "
             "prompts).",
    "keys": "Create, list and revoke API keys for `flywheel serve` (tenant, models, apps, budget, rate "
            "limits).",
    "mcp": "Serve the project over MCP: `search` and `ask` tools and its prompts (stdio, or --http PORT).",
    "monitor": "Production metrics per time window and group, and the alerts that crossed a threshold.",
    "prompts": "Prompt versions and labels: list, show, diff, label, rollback, register.",
    "promote": "Write eval cases from reviewed traces (--queue, --traces or --feedback negative) into suite "
               "--to.",
    "report": "Reports over production traces: `flywheel report daily`.",
    "review": "Label sampled traces pass / fail (or A / B / tie) in a keyboard-first terminal UI; `review sample` "
              "builds the queue.",
    "route": "Model routes from evals: cheapest passing model, per-query router, A/B arm reports, shadow judging.",
    "search": "Search the ingested documents (hybrid BM25 + dense by default).",
    "serve": "Serve the OpenAI-compatible proxy, the app API and feedback over HTTP (FastAPI on uvicorn).",
    "train-check": "Train check NAME (logistic regression) on a review queue's pass / fail labels; use it as "
                   "`trained: NAME`.",
    "skew": "How an eval suite's inputs differ from production (length, language, format, topics) and the traces "
            "to add.",
    "store": "Manage the store: copy it between SQLite and PostgreSQL.",
    "traces": "List recent traces (newest first), including incomplete ones (their process stopped "
              "mid-request).",
    "workflow": "Run YAML workflows (prompt, retrieve, tool, check, branch, map/reduce, plan steps); resume failed, "
                "interrupted or killed runs.",
}


class State:
    """Per-invocation state: the project folder, loaded lazily."""

    def __init__(self, project_dir: str):
        self.project_dir = Path(project_dir)
        self._project = None

    @property
    def project(self):
        if self._project is None:
            from flywheel.config import Project

            self._project = Project.load(self.project_dir)
        return self._project


class FlywheelGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in COMMANDS and name not in self.commands:
            importlib.import_module(f"flywheel.cli.{COMMANDS[name]}")
        return super().get_command(ctx, name)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None,
                                                                          list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError:
            from flywheel.registry import did_you_mean

            name = args[0] if args else ""
            close = did_you_mean(name, self.list_commands(ctx)) if name[:1].isalpha() else []
            if close:  # `flywheel askk` → did you mean 'ask'?
                ctx.fail(f"No such command {name!r}. Did you mean {' or '.join(map(repr, close))}?")
            raise

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from SHORT_HELP, importing only commands it lacks."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = []
        for name in names:
            if name in self.commands or name not in SHORT_HELP:
                cmd = self.get_command(ctx, name)
                if cmd is None or cmd.hidden:
                    continue
                rows.append((name, cmd.get_short_help_str(limit)))
            else:
                rows.append((name, click.Command(name, help=SHORT_HELP[name]).get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_project(args))

    def invoke(self, ctx: click.Context) -> Any:
        from flywheel.cli.core import print_crash, print_error, scrub_logs

        scrub_logs()
        command = [*getattr(ctx, "_protected_args", ()), *ctx.args][:1]  # click ≥ 8.2 keeps the name there
        if command and command[0] in STOPPED_LIKE_CTRL_C:
            _terminate_as_interrupt()
        try:
            return super().invoke(ctx)
        except UserError as exc:
            print_error(exc, ctx.obj)  # scrubbed: an upstream error may quote the API key
            sys.exit(exc.exit_code)  # 2: the user's mistake; 3: the model upstream is down
        except KeyboardInterrupt:
            click.secho("interrupted", fg="yellow", err=True)
            sys.exit(130)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except BrokenPipeError:  # `flywheel traces | head`: the reader left; stop quietly, as SIGPIPE would
            _silence_stdout()
            sys.exit(141)
        except Exception as exc:  # noqa: BLE001 - a bug: its traceback is printed scrubbed, exit 1
            print_crash(exc, ctx.obj)
            sys.exit(1)


# Long jobs that keep their work on Ctrl-C (and print how to resume): a plain `kill` (SIGTERM, as a process
# manager, `timeout` or a CI runner sends it) stops them the same way instead of leaving a half-run behind.
# Servers (`serve`, `fake-llm`) keep their own signal handling.
STOPPED_LIKE_CTRL_C = frozenset({"demo", "embed", "eval", "export", "finetune", "ingest", "monitor", "store",
                                 "workflow"})


def _terminate_as_interrupt() -> None:
    import signal
    import threading

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not raise BrokenPipeError again."""
    import os

    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # not a real file (tests' captured output)
        pass


def hoist_project(args: list[str]) -> list[str]:
    """`flywheel ask --project X "q"` means `flywheel --project X ask "q"`: the global option is moved in front
    wherever it is given (up to a `--`, after which everything is an argument)."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        if arg == "--project" and i + 1 < len(args):
            front += args[i:i + 2]
            i += 2
            continue
        (front if arg.startswith("--project=") else rest).append(arg)
        i += 1
    return front + rest


@click.group(cls=FlywheelGroup, context_settings={"help_option_names": ["-h", "--help"]},
             epilog="\b\nNew here? `flywheel demo` (offline), then `flywheel init` in your project.\n"
                    "Guide: docs/getting-started.md · 中文: docs/zh/getting-started.md\n"
                    "One command's options: flywheel COMMAND --help")
@click.option("--project", "project_dir", default=".", show_default=True, type=click.Path(file_okay=False),
              help="Project folder (holds flywheel.yaml; data goes to DIR/.flywheel/).")
@click.version_option(package_name="flywheel")
@click.pass_context
def main(ctx: click.Context, project_dir: str) -> None:
    """flywheel: gateway, RAG, guardrails, caching, tracing, evals and the data flywheel for LLM apps."""
    ctx.obj = State(project_dir)
    global _teardown_registered
    if not _teardown_registered:  # once per process, however many commands run in it (tests)
        _teardown_registered = True
        atexit.register(_quick_teardown)


_teardown_registered = False


def _quick_teardown() -> None:
    """At exit: collect garbage once, then freeze what is left, so the interpreter's teardown does not walk
    every live object again in its own final collections (~0.1 s per command once SQLAlchemy and pydantic
    are loaded; the memory goes back to the OS either way)."""
    gc.collect()
    gc.freeze()


def emit_json(data: Any) -> None:
    """Print machine-readable output (every command's --json)."""
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
