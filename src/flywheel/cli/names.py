"""Names given on the command line (`--app`, `--model`, `--judge` …): one unknown is the option's mistake, so the
error names the option, the closest known names and all of them — not the flywheel.yaml line the names live in."""

from __future__ import annotations

from typing import Any

from flywheel.registry import unknown_alias, unknown_name


def check_app(project: Any, name: str, option: str = "--app") -> str:
    """`name` when it is an app of the project (or the built-in default); else the UserError blaming `option`."""
    from flywheel.apps.registry import DEFAULT_APP

    known = {DEFAULT_APP, *project.config.apps}
    if name not in known:
        raise unknown_name("app", name, known, option=option,
                           hint="use one of those, or add it under `apps:` in flywheel.yaml")
    return name


def check_alias(gateway: Any, alias: str, option: str) -> str:
    """`alias` when the gateway knows it (a model alias or a route name); else the UserError blaming `option`."""
    routes = set(gateway.router.routes) if gateway.router is not None else set()
    if alias not in gateway.models and alias not in routes:
        raise unknown_alias(alias, {*gateway.models, *routes}, option=option)
    return alias
