"""`flywheel serve`: the HTTP server (OpenAI/Anthropic-compatible proxy, app API, feedback) on uvicorn."""

from __future__ import annotations

import inspect
import json
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import click

from flywheel.cli import main
from flywheel.errors import UserError


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so a port in use is one clear error (exit 2), not a uvicorn log."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UserError(f"cannot listen on {host}:{port}: unknown host ({exc.strerror})",
                        hint="pass --host 127.0.0.1, 0.0.0.0 or an address of this machine") from None
    family, kind, proto, _, addr = infos[0]
    # the protocol number matters: asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP, and
    # without it every keep-alive response waited ~40 ms for the client's delayed ACK (Nagle)
    sock = socket.socket(family, kind, proto or socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as exc:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                        hint="pick another --port, or stop what is using it") from None
    sock.listen(2048)  # connections queue from the moment the banner names the address, not once uvicorn starts
    sock.set_inheritable(True)
    return sock


def log_config(access_log: bool) -> dict[str, Any]:
    """uvicorn's logging config plus flywheel's JSON access log on stderr (applied in every worker)."""
    from uvicorn.config import LOGGING_CONFIG

    cfg: dict[str, Any] = {**LOGGING_CONFIG, "loggers": dict(LOGGING_CONFIG["loggers"])}
    cfg["formatters"] = {**LOGGING_CONFIG["formatters"], "flywheel_json": {"format": "%(message)s"}}
    cfg["handlers"] = {**LOGGING_CONFIG["handlers"],
                       "flywheel_access": {"class": "logging.StreamHandler", "formatter": "flywheel_json",
                                           "stream": "ext://sys.stderr"}}
    cfg["loggers"]["flywheel.server.access"] = {"handlers": ["flywheel_access"], "propagate": False,
                                                "level": "INFO" if access_log else "WARNING"}
    # what the apps say while serving (a prompt label moved: "app support: prompt support_qa is now version …")
    cfg["loggers"]["flywheel.apps"] = {"handlers": ["default"], "propagate": False, "level": "INFO"}
    return cfg


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind. Anything but a loopback address requires API keys (flywheel keys create).")
@click.option("--port", default=8300, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 512),
              help="Worker processes (share the port; budgets and rate limits are counted in the store, or in "
                   "Redis with `server.redis`).")
@click.option("--cors", "cors", multiple=True,
              help="Allow browser calls from this origin (repeatable; default: `server.cors_origins`).")
@click.option("--max-body-mb", default=None, type=click.FloatRange(min=0.001),
              help="Largest request body accepted, bigger → 413 (default: `server.max_body_mb`, 4).")
@click.option("--access-log/--no-access-log", default=True, show_default=True,
              help="One JSON line per request on stderr.")
@click.pass_obj
def serve(state: Any, host: str, port: int, workers: int, cors: tuple[str, ...], max_body_mb: float | None,
          access_log: bool) -> None:
    """Serve the OpenAI-compatible proxy, the app API and feedback over HTTP (FastAPI on uvicorn)."""
    try:
        import uvicorn
    except ImportError:
        from flywheel.text.install import pip_install

        raise UserError("the server needs FastAPI and uvicorn", hint=pip_install("server")) from None
    from flywheel.apps.session_vaults import redis_url_of, share_vaults_with_workers
    from flywheel.config.models import validate_cors_origin
    from flywheel.server.app import is_loopback
    from flywheel.server.counters import check_redis_answers
    from flywheel.server.tokens import check_env_secrets

    check_env_secrets()  # a guessable FLYWHEEL_SECRET / FLYWHEEL_ADMIN_KEY: exit 2 before anything starts
    project = state.project  # a bad flywheel.yaml fails here: one line, exit 2
    for origin in cors:
        validate_cors_origin(origin)
    loopback = is_loopback(host)
    if not loopback:
        _check_keys(project, host)  # refuses to start without keys: before anything is bound
    redis_url = redis_url_of(project.config)
    if redis_url:  # a Redis that does not answer at start is a typo or a missing service: exit 2, not 503s
        check_redis_answers(redis_url)
    # chat sessions' vaults (in Redis, else in the store): one key for every worker (FLYWHEEL_VAULT_KEY), drawn now
    vault_warning = share_vaults_with_workers(redis_url, workers)
    if vault_warning:
        click.echo(f"warning: {vault_warning}", err=True)
    sock = bind(host, port)
    port = sock.getsockname()[1]
    settings = project.config.server
    max_body = int((max_body_mb or settings.max_body_mb) * 1024 * 1024)
    cors = cors or tuple(settings.cors_origins)
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"flywheel serving {project.root} at http://{shown}:{port}  (OpenAI base_url http://{shown}:{port}/v1; "
               f"dashboard http://{shown}:{port}/ui; {workers} worker{'s' if workers != 1 else ''}; Ctrl-C to stop)",
               err=True)
    if loopback and workers > 1:  # only a warning depends on the keys here: looked up beside the start-up
        threading.Thread(target=_warn_if_open, args=(project, host), daemon=True).start()
    elif not loopback:
        click.echo("API keys required on every route but /healthz, /readyz and /metrics", err=True)
    common: dict[str, Any] = {"log_config": log_config(access_log), "access_log": False, "log_level": "info",
                              "timeout_graceful_shutdown": 30, "server_header": False}
    if workers == 1:
        from flywheel.server.app import lazy_app

        failed: list[BaseException] = []

        def stop(exc: BaseException) -> None:  # the app could not be built (a bad guard check …): exit
            failed.append(exc)
            server.should_exit = True

        def ready(app: Any) -> None:  # one store for the app and the open-mode check, opened once
            if loopback and not app.state.flywheel.keys.any_active():
                _warn_open(host)

        # live at once; the app itself is built in the background once the socket is bound (see LazyApp)
        app = lazy_app(project, on_failure=stop, on_ready=ready, host=host, max_body_bytes=max_body,
                       cors_origins=list(cors) or None)
        server = uvicorn.Server(uvicorn.Config(app, **common))
        server.run(sockets=[sock])
        if failed:
            raise failed[0]  # a UserError: one line, exit 2
    else:
        from uvicorn.supervisors import Multiprocess

        failed_file = Path(tempfile.mkdtemp(prefix="flywheel-serve-")) / "failed.json"
        os.environ.update({"FLYWHEEL_PROJECT": str(project.root), "FLYWHEEL_HOST": host,
                           "FLYWHEEL_MAX_BODY_BYTES": str(max_body), "FLYWHEEL_CORS_ORIGINS": ",".join(cors),
                           _FAILED_ENV: str(failed_file)})
        config = uvicorn.Config("flywheel.cli.serve:worker_app_from_env", factory=True, workers=workers, **common)
        try:
            if "target" in inspect.signature(Multiprocess).parameters:  # uvicorn < 0.36
                Multiprocess(config, target=uvicorn.Server(config).run, sockets=[sock]).run()  # type: ignore[call-arg]
            else:
                Multiprocess(config, sockets=[sock]).run()
            _raise_worker_failure(failed_file)
        finally:
            shutil.rmtree(failed_file.parent, ignore_errors=True)
    if not sys.stderr.closed:
        logging.getLogger("flywheel.server").info("stopped")


_FAILED_ENV = "FLYWHEEL_SERVE_FAILED_FILE"


def worker_app_from_env() -> Any:
    """The app of one `flywheel serve --workers N` process. A worker whose app cannot be built (the store does
    not answer, an unknown guard check) records why and stops the whole server, which then exits like one
    worker does (one line, exit 2), instead of N workers answering 503 forever."""
    from flywheel.server.app import lazy_app

    failed_file = Path(os.environ[_FAILED_ENV])
    origins = [o for o in os.environ.get("FLYWHEEL_CORS_ORIGINS", "").split(",") if o]
    return lazy_app(os.environ["FLYWHEEL_PROJECT"], on_failure=lambda exc: _stop_server(exc, failed_file),
                    host=os.environ["FLYWHEEL_HOST"], max_body_bytes=int(os.environ["FLYWHEEL_MAX_BODY_BYTES"]),
                    cors_origins=origins or None)


def _stop_server(exc: BaseException, failed_file: Path) -> None:
    if not isinstance(exc, UserError):
        logging.getLogger("flywheel.server").error("building the flywheel app failed", exc_info=exc)
    record = {"user_error": isinstance(exc, UserError), "message": getattr(exc, "message", str(exc)),
              "where": getattr(exc, "where", None), "hint": getattr(exc, "hint", None)}
    try:
        with open(failed_file, "x", encoding="utf-8") as fh:  # the first failing worker's reason wins
            json.dump(record, fh)
    except FileExistsError:
        pass
    os.kill(os.getppid(), signal.SIGTERM)  # the supervisor stops every worker and returns


def _raise_worker_failure(failed_file: Path) -> None:
    try:
        record = json.loads(failed_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if record.get("user_error"):
        raise UserError(record["message"], where=record.get("where"), hint=record.get("hint"))
    raise click.ClickException(f"the server could not start: {record['message']} (see the log above)")


def _warn_if_open(project: Any, host: str) -> None:
    try:
        open_mode = _check_keys(project, host)
    except UserError:  # the store is unreachable: the workers' app build reports it and stops the server
        return
    if open_mode:
        _warn_open(host)


def _warn_open(host: str) -> None:
    click.secho(f"no API keys: the server is OPEN to anyone who can reach {host} "
                "(create one with `flywheel keys create --name NAME`)", fg="yellow", err=True)


def _check_keys(project: Any, host: str) -> bool:
    """True when the server will run open (no keys, loopback). Off loopback with no keys: refuse (exit 2)."""
    from flywheel.server.app import is_loopback
    from flywheel.server.keys import KeyStore
    from flywheel.store import Store

    with Store.open(project.store_url) as store:
        has_keys = KeyStore(store).any_active()
    if has_keys:
        return False
    if not is_loopback(host) and os.environ.get("FLYWHEEL_ADMIN_KEY"):
        return False  # not open: every route needs a key, and the admin key creates the first ones over HTTP
    if not is_loopback(host):
        raise UserError(f"refusing to serve on {host} without API keys: anyone on the network could use your "
                        "models and read your traces",
                        hint="create one first: flywheel keys create --name NAME, or set FLYWHEEL_ADMIN_KEY to create them "
                             "over HTTP (POST /v1/keys); or bind --host 127.0.0.1")
    return True
