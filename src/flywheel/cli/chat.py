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
@click.option("--model", "-m", "alias", default="default", show_default=True,
              help="Model alias from flywheel.yaml.")
@click.option("--system", "-s", default=None, help="System message.")
@click.option("--stream", is_flag=True, help="Print the answer as it is generated.")
@click.option("--json", "as_json", is_flag=True, help="Print the ChatResult as JSON.")
@click.pass_obj
def chat(state, message: str, alias: str, system: str | None, stream: bool, as_json: bool) -> None:
    """Send MESSAGE to a model alias and print the answer, its tokens, cost, latency and trace id."""
    from flywheel.apps.runtime import Runtime
    from flywheel.types import ChatRequest

    request = ChatRequest.of(message, system=system, model=alias)
    with Runtime(state.project) as rt:
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
