"""`flywheel keys create|list|revoke`: virtual API keys for `flywheel serve` (only a salted hash is stored)."""

from __future__ import annotations

from typing import Any

import click

from flywheel.cli import emit_json, main
from flywheel.errors import UserError


@main.group("keys")
def keys() -> None:
    """Create, list and revoke API keys for `flywheel serve` (tenant, models, apps, budget, rate limits)."""


def _names(value: str | None, known: list[str], what: str) -> list[str] | None:
    if not value:
        return None
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UserError(f"unknown {what}: {', '.join(unknown)}", hint=f"known {what}s: {', '.join(known)}")
    return names


def _budget(value: str | None) -> tuple[float | None, str]:
    if value is None:
        return None, "month"
    amount, _, period = value.partition("/")
    try:
        usd = float(amount.strip().lstrip("$"))
    except ValueError:
        raise UserError(f"invalid --budget-usd {value!r}", hint="a number of USD, e.g. 10 or 10/month or 50/total") \
            from None
    return usd, (period.strip() or "month")


def _store(state: Any) -> Any:
    from flywheel.store import Store

    return Store.open(state.project.store_url)


@keys.command("create")
@click.option("--name", required=True, help="A name for the key (unique among active keys).")
@click.option("--tenant", default="default", show_default=True, help="The only tenant this key reads and writes.")
@click.option("--models", help="Comma-separated model aliases the key may use (default: all).")
@click.option("--apps", help="Comma-separated apps the key may use (default: all).")
@click.option("--budget-usd", "budget", help="Spend limit in USD: 10 (per month), 10/month or 10/total.")
@click.option("--rpm", type=click.IntRange(min=1), help="Requests per minute.")
@click.option("--tpm", type=click.IntRange(min=1), help="Tokens per minute.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def create(state: Any, name: str, tenant: str, models: str | None, apps: str | None, budget: str | None,
           rpm: int | None, tpm: int | None, as_json: bool) -> None:
    """Create a key and print it once (it cannot be shown again)."""
    from flywheel.apps.registry import DEFAULT_APP
    from flywheel.server.keys import KeyStore

    cfg = state.project.config
    model_list = _names(models, sorted(cfg.models), "model alias")
    app_list = _names(apps, sorted({DEFAULT_APP, *cfg.apps}), "app")
    usd, period = _budget(budget)
    with _store(state) as store:
        key, row = KeyStore(store).create(name, tenant=tenant, models=model_list, apps=app_list, budget_usd=usd,
                                          budget_period=period, rpm=rpm, tpm=tpm)
    if as_json:
        emit_json({"key": key, **row})
        return
    click.echo(key)
    click.echo(f"key {name!r} for tenant {tenant!r} created; store it now, it is not shown again", err=True)


@keys.command("list")
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked keys.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def list_keys(state: Any, include_revoked: bool, as_json: bool) -> None:
    """List keys (never the secrets): name, tenant, limits and spend."""
    from flywheel.server.keys import KeyStore

    with _store(state) as store:
        rows = KeyStore(store).list(include_revoked=include_revoked)
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no keys (the server runs open on 127.0.0.1 only)", err=True)
        return
    for r in rows:
        per = "in total" if r["budget_period"] == "total" else f"per {r['budget_period']}"
        budget = f"${r['spent_usd']:.4f} spent of ${r['budget_usd']:g} {per}" if r["budget_usd"] is not None \
            else "no budget"
        limits = ", ".join(f"{k} {r[k]}" for k in ("rpm", "tpm") if r[k]) or "no rate limit"
        scope = f"models {','.join(r['models'])}" if r["models"] else "all models"
        scope += f"; apps {','.join(r['apps'])}" if r["apps"] else "; all apps"
        revoked = "  REVOKED" if r["revoked_at"] else ""
        click.echo(f"{r['name']}  fw-{r['key_id']}-…  tenant {r['tenant']}  {budget}  {limits}  {scope}{revoked}")


@keys.command("revoke")
@click.argument("name")
@click.pass_obj
def revoke(state: Any, name: str) -> None:
    """Revoke the key NAME (or its key id); requests with it fail with 401 at once, in every worker."""
    from flywheel.server.keys import KeyStore

    with _store(state) as store:
        if not KeyStore(store).revoke(name):
            raise UserError(f"no active key named {name!r}", hint="see `flywheel keys list`")
    click.echo(f"revoked {name}", err=True)
