"""Error types. `UserError` is anything the user can fix; the CLI prints it without a traceback."""

from __future__ import annotations


class FlywheelError(Exception):
    """Base class for every error flywheel raises on purpose."""


class UserError(FlywheelError):
    """A mistake the user can fix: bad config, missing file, unreachable endpoint.

    `where` is a location such as ``flywheel.yaml:12`` and `hint` says what to do. The CLI exits with
    `exit_code`: 2 for a mistake in the user's input or config.
    """

    exit_code = 2

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None):
        self.message = message
        self.where = where
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        head = f"{self.where}: {self.message}" if self.where else self.message
        return f"{head}\n  hint: {self.hint}" if self.hint else head


class ConfigError(UserError):
    """flywheel.yaml (or another user-written file) is invalid."""


class AttemptFailure:
    """One failed attempt against one model, kept for the final error message."""

    __slots__ = ("alias", "error", "local_mistake", "model", "status")

    def __init__(self, alias: str, model: str, error: str, status: int | None = None, *,
                 local_mistake: bool = False):
        self.alias, self.model, self.error, self.status = alias, model, error, status
        # refused before reaching any upstream (a local model folder that does not load, a request the provider
        # cannot express): the user's to fix, like a 4xx
        self.local_mistake = local_mistake

    @property
    def user_fault(self) -> bool:
        return self.local_mistake or self.status in _USER_STATUSES

    def __repr__(self) -> str:
        code = f" HTTP {self.status}" if self.status else ""
        return f"{self.alias} ({self.model}){code}: {self.error}"


# HTTP statuses that mean the request or its credentials are wrong (the user can fix it), not an outage.
_USER_STATUSES = frozenset({400, 401, 403, 404, 422})
UPSTREAM_EXIT = 3  # CLI exit code when the model upstream is down (not a user mistake)


class GatewayError(UserError):
    """Every attempt on every model of the fallback chain failed.

    Exit code 2 when every attempt was refused as a bad request or bad credentials (fix the config or key);
    3 (`UPSTREAM_EXIT`) when the upstream was unreachable, timed out or failed: an outage, not a mistake."""

    def __init__(self, alias: str, attempts: list[AttemptFailure]):
        self.alias = alias
        self.attempts = attempts
        self.retry_after: float | None = None  # the last attempt's Retry-After (seconds), when the upstream sent one
        user_fault = bool(attempts) and all(a.user_fault for a in attempts)
        self.exit_code = 2 if user_fault else UPSTREAM_EXIT
        tried = "; ".join(repr(a) for a in attempts) or "no attempt was made"
        super().__init__(
            f"all models failed for alias '{alias}' after {len(attempts)} attempt(s): {tried}",
            hint="check the endpoint is up and the API key is set" + (
                "" if len({a.alias for a in attempts}) > 1 else ", or add `fallbacks:` to the alias"),
        )
