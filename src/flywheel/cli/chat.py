"""`flywheel chat "message"`: one call through the gateway, traced to the project's store."""

from __future__ import annotations

import click

from flywheel.cli import emit_json, main


def _summary(result) -> str:
    usage = result.usage
    retries = f" · {result.attempts} attempts" if result.attempts > 1 else ""
    return (f"{result.model} · {usage.input_tokens} in / {usage.output_tokens} out tokens · "
            f"${result.cost_usd:.6f} · {result.latency_ms:.0f} ms{retries} · trace {result.trace_id}")


@main.command()
@click.argument("message")
@click.option("--model", "-m", "alias", default=None, help="Model alias from flywheel.yaml (default: `default`, "
              "or the app's model with --app).")
@click.option("--app", "app_name", default=None,
              help="Go through an app of flywheel.yaml (e.g. kind: chat) with its guards and cache.")
@click.option("--system", "-s", default=None, help="System message (without --app).")
@click.option("--stream", is_flag=True, help="Print the answer as it is generated.")
@click.option("--json", "as_json", is_flag=True, help="Print the ChatResult (with --app: the Answer) as JSON.")
@click.pass_obj
def chat(state, message: str, alias: str | None, app_name: str | None, system: str | None, stream: bool,
         as_json: bool) -> None:
    """Send MESSAGE to a model alias and print the answer, its tokens, cost, latency and trace id."""
    from flywheel.apps.runtime import Runtime
    from flywheel.types import ChatRequest

    with Runtime(state.project) as rt:
        if app_name is not None:
            _chat_app(rt, app_name, message, alias, stream, as_json)
            return
        alias = alias or "default"
        request = ChatRequest.of(message, system=system, model=alias)
        gateway = rt.gateway
        gateway.resolve(alias)  # an unknown alias is a UserError before anything is sent
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


def _chat_app(rt, app_name: str, message: str, alias: str | None, stream: bool, as_json: bool) -> None:
    from flywheel.tracing import tracer

    app = rt.app(app_name)
    if alias is not None:
        rt.gateway.resolve(alias)
    if stream and hasattr(app, "stream") and not as_json:
        with tracer.span(app.name, kind="app", inputs={"message": message}, **{"flywheel.app": app.name}) as sp:
            for piece in app.stream(message, model=alias):
                click.echo(piece, nl=False)
            click.echo()
        trace_id, refused = sp.trace_id, False
    else:
        answer = app.run(message, model=alias)
        if as_json:
            emit_json({**answer.model_dump(mode="json"), "result": _dump(getattr(app, "last_result", None))})
            return
        click.echo(answer.text)
        trace_id, refused = answer.trace_id, answer.refused
    result = getattr(app, "last_result", None)
    note = _summary(result) if result is not None else f"{'refused' if refused else 'cached'} · trace {trace_id}"
    if result is not None:
        note = note.replace(f"trace {result.trace_id}", f"trace {trace_id}")
    click.secho(note, dim=True, err=True)


def _dump(result) -> dict | None:
    return None if result is None else result.model_dump(mode="json")
