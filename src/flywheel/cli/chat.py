"""`flywheel chat "message"`: one call through the gateway, traced to the project's store."""

from __future__ import annotations

import click

from flywheel.cli import emit_json, main
from flywheel.cli.names import check_alias, check_app


def _summary(result) -> str:
    usage = result.usage
    retries = f" · {result.attempts} attempts" if result.attempts > 1 else ""
    tokens = (f"{usage.input_tokens} in / {usage.output_tokens} out tokens" if result.usage_reported else
              "tokens not reported by the server")
    return (f"{result.model} · {tokens} · "
            f"${result.cost_usd:.6f} · {result.latency_ms:.0f} ms{retries} · trace {result.trace_id}")


@main.command()
@click.argument("message", nargs=-1, required=True)
@click.option("--model", "-m", "alias", default=None, help="Model alias from flywheel.yaml (default: `default`, "
              "or the app's model with --app).")
@click.option("--app", "app_name", default=None,
              help="Go through an app of flywheel.yaml (e.g. kind: chat) with its guards and cache.")
@click.option("--system", "-s", default=None, help="System message (without --app).")
@click.option("--stream", is_flag=True, help="Print the answer as it is generated.")
@click.option("--json", "as_json", is_flag=True, help="Print the ChatResult (with --app: the Answer) as JSON.")
@click.pass_obj
def chat(state, message: tuple[str, ...] | str, alias: str | None, app_name: str | None, system: str | None, stream: bool,
         as_json: bool) -> None:
    """Send MESSAGE to a model alias and print the answer, its tokens, cost, latency and trace id."""
    from flywheel.apps.runtime import Runtime
    from flywheel.types import ChatRequest

    message = " ".join(message).strip() if isinstance(message, tuple) else message  # unquoted words, like ask
    with Runtime(state.project) as rt:
        if app_name is not None:
            _chat_app(rt, app_name, message, alias, stream, as_json)
            return
        gateway = rt.gateway
        if alias is not None:  # an unknown alias is a UserError before anything is sent
            check_alias(gateway, alias, "--model")
        request_alias_given = alias is not None
        alias = alias or "default"
        request = ChatRequest.of(message, system=system, model=alias)
        gateway.resolve(alias)
        if stream:
            chunks = gateway.stream(request)
            for chunk in chunks:
                if chunk.delta and not as_json:
                    click.echo(chunk.delta, nl=False)
            result = chunks.result
            if not as_json:
                click.echo()
        else:
            result = gateway.chat(request)
            if not as_json:
                click.echo(result.text)
    if as_json:
        emit_json(result.model_dump(mode="json"))
    else:
        click.secho(_summary(result), dim=True, err=True)
        hint = _builtin_default_hint(state.project, alias, request_alias_given, message)
        if hint:
            click.secho(hint, fg="yellow", err=True)


def _builtin_default_hint(project, alias: str, given: bool, message: str) -> str | None:
    """When `default` is the built-in offline extractive model (flywheel.yaml defines no `default`) and the
    user's own aliases went unused: which to pass, and whether the message's first word was meant as one."""
    if given or alias != "default" or project.defines("models", "default"):
        return None
    own = [name for name in project.config.models if name != "default"]
    if not own:
        return None
    first = message.split(maxsplit=1)[0] if message.split() else ""
    if first in own:
        return (f"answered by the built-in offline model (`default`); \"{first}\" was read as part of the message: "
                f"to ask that alias, `flywheel chat -m {first} \"…\"`")
    return (f"answered by the built-in offline model: flywheel.yaml defines no `default` alias; pass one of yours "
            f"with -m ({', '.join(own)}), or name one `default`")


def _chat_app(rt, app_name: str, message: str, alias: str | None, stream: bool, as_json: bool) -> None:
    app = rt.app(check_app(rt.project, app_name))
    if alias is not None:
        check_alias(rt.gateway, alias, "--model")
    if stream and hasattr(app, "stream") and not as_json:
        pieces = app.stream(message, model=alias)
        for piece in pieces:
            click.echo(piece, nl=False)
        click.echo()
        answer = pieces.answer
    else:
        answer = app.run(message, model=alias)
        if as_json:
            emit_json(answer.model_dump(mode="json"))
            return
        click.echo(answer.text)
    if answer is None:
        return
    note = answer_note(answer)
    if note:
        click.secho(note, fg="yellow", err=True)
    models = ", ".join(dict.fromkeys(answer.models.values())) or "no model call"
    click.secho(f"{models} · {answer.usage.input_tokens} in / {answer.usage.output_tokens} out tokens · "
                f"${answer.cost_usd:.6f} · {answer.latency_ms:.0f} ms · trace {answer.trace_id}", dim=True, err=True)


_CACHE_NOTES = {"exact": "answered from the cache (the same question was answered before; no model call)",
                "semantic": "answered from the cache (a similar question was answered before; no model call)",
                "item": "answered from the cache (this item was answered before; no model call)"}


def answer_note(answer) -> str | None:
    """One short line saying the answer came from the cache, or that it was refused and why (None otherwise)."""
    if answer.refusal == "guard_blocked":
        # the last guard that acted decides: an earlier `drop` or `redact` let the answer go on
        stopped = next((a for a in reversed(answer.guard_actions)
                        if not a.passed and a.action not in ("log-only", "pass", "redact", "fix")), None)
        by = f" by the `{stopped.check}` {stopped.stage} guard ({stopped.action})" if stopped else " by a guard"
        return f"refused{by}"
    if answer.refusal == "no_passage":
        return "refused: no relevant passage was found, so no model was called"
    if answer.refusal == "model_declined":
        return "the model declined to answer (it said it does not know)"
    return _CACHE_NOTES.get(answer.cache)
