"""`flywheel init`: scaffold a project (flywheel.yaml, prompts/, evals/); and what every command prints for
an error or a log line: scrubbed of secrets, with control characters made visible."""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import traceback
from importlib import resources
from pathlib import Path
from typing import Any

import click

from flywheel.cli import emit_json, main
from flywheel.config import CONFIG_NAME, DATA_DIR
from flywheel.errors import UserError
from flywheel.text.display import safe_display
from flywheel.text.secrets import scrub_secrets, secret_env_values


def _key_env_names(state: Any) -> list[str]:
    """`models.*.api_key_env` of the project, when its config was already loaded (never loads it here)."""
    project = getattr(state, "_project", None)
    models = getattr(getattr(project, "config", None), "models", None) or {}
    return [getattr(alias, "api_key_env", None) or "" for alias in models.values()]


def shown(text: str, state: Any = None) -> str:
    """Text for the terminal: secrets scrubbed (key shapes and the values of secret environment variables,
    e.g. a 401 body quoting the key), escape sequences and control characters made harmless."""
    return safe_display(scrub_secrets(text, values=secret_env_values(names=_key_env_names(state))), multiline=True)


def print_error(exc: BaseException, state: Any = None) -> None:
    """One red `error:` line (and its hint) for a UserError."""
    from flywheel.errors import GatewayError

    if isinstance(exc, GatewayError) and exc.attempts:
        message = gateway_message(exc, state)
    else:
        message = exc.render() if isinstance(exc, UserError) else str(exc)
    click.secho(f"error: {shown(message, state)}", fg="red", err=True)


def gateway_message(exc: Any, state: Any = None) -> str:
    """A failed gateway call as one message: each distinct failure once (with its attempt count) and the URL it
    went to, and for an endpoint that refused every connection, what to do about it."""
    project = getattr(state, "_project", None)
    models = getattr(getattr(project, "config", None), "models", None) or {}
    missing = _missing_key(exc, models) or _not_set_up(exc)
    if missing:
        return missing
    groups: dict[tuple[str, str, str], int] = {}
    for a in exc.attempts:
        code = f"HTTP {a.status}: " if a.status else ""
        key = (a.alias, a.model, code + a.error)
        groups[key] = groups.get(key, 0) + 1
    n = len(exc.attempts)
    lines = [f"all models failed for alias '{exc.alias}' ({n} attempt{'s' * (n != 1)}):"]
    for (alias, model, error), n in groups.items():
        url = getattr(models.get(alias), "base_url", None)
        at = f" at {url}" if url else ""
        lines.append(f"  {alias} ({model}){at}: {error}" + (f" (×{n})" if n > 1 else ""))
    refused = [a for a in exc.attempts if "connect" in a.error.lower()]
    if len(refused) == len(exc.attempts):
        urls = sorted({str(getattr(models.get(a.alias), "base_url", None) or a.alias) for a in refused})
        if all(_on_this_machine(url) for url in urls):
            hint = (f"nothing answered at {', '.join(urls)}: start the server (Ollama: `ollama serve` and "
                    f"`ollama pull MODEL`), or fix `base_url:` of the alias in flywheel.yaml")
        else:  # a hosted API: nobody here can start it
            hint = (f"could not reach {', '.join(urls)}: check this machine's network connection (and HTTPS_PROXY "
                    f"if you need a proxy), or fix `base_url:` of the alias in flywheel.yaml")
    else:
        hint = exc.hint or ""
    return "\n".join(lines) + (f"\n  hint: {hint}" if hint else "")


def _on_this_machine(url: str) -> bool:
    """A base_url on localhost (a server the user starts), not a hosted API."""
    from urllib.parse import urlparse

    host = (urlparse(url).hostname or "").lower()
    return host in ("localhost", "0.0.0.0", "::1") or host.startswith("127.") or host.endswith(".localhost")


def _missing_key(exc: Any, models: dict[str, Any]) -> str | None:
    """When no attempt left this machine because each alias's `api_key_env` is unset: that, in one line, and how to
    set it (not the generic "check the endpoint is up" of a failed call)."""
    unset: dict[str, list[str]] = {}
    for a in exc.attempts:
        env = getattr(models.get(a.alias), "api_key_env", None)
        if not (a.local_mistake and env and not os.environ.get(env)):
            return None
        unset.setdefault(env, [])
        if a.alias not in unset[env]:
            unset[env].append(a.alias)
    if not unset:
        return None
    names = ", ".join(unset)
    aliases = "; ".join(f"model alias {', '.join(map(repr, aliases))} reads {env} (api_key_env)"
                        for env, aliases in unset.items())
    verb = "is" if len(unset) == 1 else "are"
    return (f"{names} {verb} not set: {aliases}\n  hint: export {next(iter(unset))}=YOUR_KEY in this shell, or "
            "use another alias (--model, or `model:` of the app in flywheel.yaml)")


def _not_set_up(exc: Any) -> str | None:
    """When the one alias tried could not be set up here, so nothing was sent (a `transformers` folder that does
    not exist, a missing extra): its error as it is, with its flywheel.yaml:line, not "check the endpoint is up"."""
    failed = {(a.alias, a.error) for a in exc.attempts}
    if len(failed) != 1 or not all(a.local_mistake for a in exc.attempts):
        return None
    alias, error = next(iter(failed))
    if not error.startswith("config: "):
        return None
    head, _, hint = error.removeprefix("config: ").partition("\n")
    return f"{head} (model alias '{alias}')" + (f"\n{hint}" if hint else "")


def print_crash(exc: BaseException, state: Any = None) -> None:
    """A bug (not a user error): the traceback, scrubbed, so an exception quoting a key does not print it."""
    text = "".join(traceback.format_exception(exc))
    click.echo(shown(text, state), err=True, nl=False)


class ScrubLogs(logging.Filter):
    """Log records reach the terminal scrubbed: the formatted message and any traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = shown(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = shown(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = shown(record.exc_text)
        return True


_LOG_FILTER = ScrubLogs()


def scrub_logs() -> None:
    """Attach the filter to every handler that prints (the root's and logging's last-resort handler)."""
    for handler in [*logging.getLogger().handlers, logging.lastResort]:
        if handler is not None and _LOG_FILTER not in handler.filters:
            handler.addFilter(_LOG_FILTER)

EXAMPLE_SUITE = """\
# An eval suite: run it with `flywheel eval` (every suite in evals/). Reference: docs/evals.md
# The case below is an example about flywheel's own documentation (it passes after `flywheel ingest` of a clone's
# docs/ folder). Replace it with questions YOUR documents answer and words a right answer must contain.
name: docs-qa smoke
target: app:docs_qa
threshold: 0.8
cases:
  - id: what-is-it
    vars: {question: "What is flywheel?"}       # a question your documents answer
    checks:
      - contains: "flywheel"                    # a word or phrase the right answer contains
      - grounding: {}                           # every [n] names a source, every quote is in it
      - max_words: 150
"""


# evals/conftest.py: `pytest evals/` run by a pytest outside flywheel's environment says so (instead of
# "no tests ran": that pytest does not have flywheel's plugin).
EVALS_CONFTEST = """\
# Written by `flywheel init`: `pytest evals/` runs the suites here, one test per case (docs/evals.md).
import sys

try:
    import flywheel.evals.pytest_plugin  # noqa: F401
except ImportError:
    raise SystemExit(f"`pytest evals/` needs pytest in the environment where flywheel is installed; this pytest "
                     f"runs {sys.executable}. Run `pip install pytest` there, or use `flywheel eval`.") from None
"""


def _packaged(*parts: str) -> Path | None:
    ref = resources.files("flywheel").joinpath(*parts)
    return Path(str(ref)) if ref.is_file() else None


@main.command()
@click.option("--force", is_flag=True, help="Overwrite an existing flywheel.yaml.")
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
@click.pass_obj
def init(state, force: bool, as_json: bool) -> None:
    """Write flywheel.yaml (commented, with provider presets), prompts/ and evals/."""
    root = state.project_dir
    if not root.is_dir():
        raise UserError(f"project folder {root} does not exist", hint="create it or pass --project DIR")
    target = root / CONFIG_NAME
    if target.exists() and not force:
        raise UserError(f"{target} already exists", hint="pass --force to overwrite it")
    written = []
    template = _packaged("cli", "init_template.yaml")
    assert template is not None  # package data, always shipped
    target.write_text(template.read_text(encoding="utf-8"), encoding="utf-8")
    written.append(str(target))
    prompt_src = _packaged("prompts", "builtin", "docs_qa.yaml")
    prompt_dst = root / "prompts" / "docs_qa.yaml"
    if prompt_src and not prompt_dst.exists():
        prompt_dst.parent.mkdir(exist_ok=True)
        shutil.copyfile(prompt_src, prompt_dst)
        written.append(str(prompt_dst))
    suite = root / "evals" / "docs_qa.yaml"
    if not suite.exists():
        suite.parent.mkdir(exist_ok=True)
        suite.write_text(EXAMPLE_SUITE, encoding="utf-8")
        written.append(str(suite))
    conftest = root / "evals" / "conftest.py"
    if not conftest.exists():
        conftest.write_text(EVALS_CONFTEST, encoding="utf-8")
        written.append(str(conftest))
    gitignore = root / ".gitignore"
    ignored = _ignore_data_dir(gitignore)
    if as_json:
        emit_json({"written": written + [str(gitignore)] * ignored})
        return
    for path in written:
        click.echo(f"wrote {path}")
    if ignored:
        click.echo(f"added {DATA_DIR}/ (the store: documents, traces, eval runs) to {gitignore}")
    from flywheel.cli.app import command_prefix

    cmd = command_prefix(root)  # with --project DIR, the commands that follow need it too
    click.echo(f"next: {_ingest_suggestion(root, cmd)} then `{cmd} ask \"…\"`; put questions your documents answer "
               f"in evals/docs_qa.yaml and run `{cmd} eval`; edit models: in flywheel.yaml to use an API model")


def _ignore_data_dir(gitignore: Path) -> bool:
    """Add `.flywheel/` (the store, caches) to .gitignore unless a line already ignores it; True when added. An
    existing last line without a newline stays as it was (appending straight after it would change its pattern)."""
    text = gitignore.read_text(encoding="utf-8") if gitignore.exists() else ""
    if DATA_DIR in {line.strip().strip("/") for line in text.splitlines()}:
        return False
    with gitignore.open("a", encoding="utf-8") as f:
        f.write(("\n" if text and not text.endswith("\n") else "") + f"{DATA_DIR}/\n")
    return True


def _ingest_suggestion(root: Path, cmd: str = "flywheel") -> str:
    """`flywheel ingest` of a documents folder that exists here, or a request to point at the user's own."""
    for name in ("docs", "doc", "documentation", "notes", "content", "README.md"):
        if (root / name).exists():
            path = (name if cmd == "flywheel" else str(root / name)) + ("/" if (root / name).is_dir() else "")
            return f"`{cmd} ingest {shlex.quote(path)}`"  # a path from the current folder, pasteable
    return (f"`{cmd} ingest PATH` (a folder of your Markdown, PDF, HTML, text, JSONL, Word, PowerPoint, Excel/CSV or "
            "EPUB files; try it with `flywheel demo`)")
