"""Error types. `UserError` is anything the user can fix; the CLI prints it without a traceback."""

from __future__ import annotations


class FlywheelError(Exception):
    """Base class for every error flywheel raises on purpose."""


class UserError(FlywheelError):
    """A mistake the user can fix: bad config, missing file, unreachable endpoint.

    `where` is a location such as ``flywheel.yaml:12`` and `hint` says what to do.
    """

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

    __slots__ = ("alias", "error", "model", "status")

    def __init__(self, alias: str, model: str, error: str, status: int | None = None):
        self.alias, self.model, self.error, self.status = alias, model, error, status

    def __repr__(self) -> str:
        code = f" HTTP {self.status}" if self.status else ""
        return f"{self.alias} ({self.model}){code}: {self.error}"


class GatewayError(UserError):
    """Every attempt on every model of the fallback chain failed."""

    def __init__(self, alias: str, attempts: list[AttemptFailure]):
        self.alias = alias
        self.attempts = attempts
        tried = "; ".join(repr(a) for a in attempts) or "no attempt was made"
        super().__init__(
            f"all models failed for alias '{alias}' after {len(attempts)} attempt(s): {tried}",
            hint="check the endpoint is up and the API key is set, or add `fallbacks:` to the alias",
        )
