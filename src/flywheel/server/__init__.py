"""The HTTP server (`flywheel serve`): OpenAI- and Anthropic-compatible proxy, the app API, feedback, virtual
keys with budgets and rate limits, health and metrics. FastAPI is imported only when an app is built, so
importing this package (and `flywheel --help`) stays light.

    from flywheel.server import create_app
    app = create_app(".")        # an ASGI app for uvicorn / gunicorn
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "create_app_from_env"]


def create_app(*args: Any, **kwargs: Any) -> Any:
    from flywheel.server.app import create_app as build

    return build(*args, **kwargs)


def create_app_from_env() -> Any:
    from flywheel.server.app import create_app_from_env as build

    return build()
