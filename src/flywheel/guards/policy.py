"""Guard policies: a guard is a check plus an on-fail action, run as an input or output pipeline.

    policy = GuardPolicy.from_config(app_config.guards, where=lambda *p: project.where("apps", "docs_qa", "guards", *p))
    inp = policy.input.run(question, ctx)                 # may block, redact (with a vault), fix, refrain
    out = policy.output.run(answer, ctx, regenerate=fn)   # may also reask (bounded) or fall back to another alias

Every guard run is a span (kind "guard"). A guard whose check crashes fails closed (counts as failed) unless
its action is log-only, where it fails open; either way the crash is recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flywheel.checks.base import Check, CheckContext, build
from flywheel.config import GuardsConfig, GuardSpec
from flywheel.errors import ConfigError, UserError
from flywheel.tracing import tracer
from flywheel.types import CheckResult

ACTIONS = ("block", "redact", "fix", "reask", "fallback", "refrain", "log-only")
OUTPUT_ONLY = ("reask", "fallback")
SOURCE_ACTIONS = ("drop", "block", "refrain", "log-only")  # the `sources:` stage, on retrieved context
POLICY_KEYS = {"check", "on_fail", "max_reasks", "message", "fallback", "max_chars"}
DEFAULT_BLOCK = "Sorry, I can't help with that request."
DEFAULT_REFRAIN = "I don't know."
DEFAULT_MAX_CHARS = 100_000

# regenerate(feedback, alias) -> new output text; alias is None for a re-ask on the same model
Regenerate = Callable[[str, "str | None"], str]


@dataclass
class Guard:
    check: Check
    on_fail: str = "block"
    max_reasks: int = 1
    message: str | None = None
    fallback: str | None = None
    max_chars: int = DEFAULT_MAX_CHARS  # longer text is cut before checking (never sent whole to a slow detector)

    @property
    def name(self) -> str:
        return self.check.name


@dataclass
class GuardOutcome:
    text: str
    passed: bool = True  # False when the final text came from block / refrain
    action: str | None = None  # the last action taken, None when every guard passed
    message: str | None = None
    results: list[CheckResult] = field(default_factory=list)
    vault: dict[str, str] = field(default_factory=dict)  # placeholder -> original, to restore in the response
    reasks: int = 0

    @property
    def refused(self) -> bool:
        return self.action in ("block", "refrain")


class GuardPipeline:
    def __init__(self, guards: list[Guard], stage: str):
        self.guards, self.stage = guards, stage

    def __bool__(self) -> bool:
        return bool(self.guards)

    def run(self, text: str, ctx: CheckContext | None = None, regenerate: Regenerate | None = None) -> GuardOutcome:
        ctx = ctx or CheckContext()
        outcome = GuardOutcome(text=_as_text(text))
        i = 0
        while i < len(self.guards):
            guard = self.guards[i]
            result = self._check(guard, outcome.text, ctx)
            outcome.results.append(result)
            if result.passed or (result.error and guard.on_fail == "log-only"):
                i += 1
                continue
            action = guard.on_fail if not result.error else _closed(guard.on_fail)
            outcome.action = action
            if action == "log-only":
                i += 1
            elif action == "block":
                return self._stop(outcome, guard.message or DEFAULT_BLOCK, "block")
            elif action == "refrain":
                return self._stop(outcome, guard.message or DEFAULT_REFRAIN, "refrain")
            elif action == "redact":
                outcome.text = self._redact(guard, outcome.text, outcome.vault)
                i += 1
            elif action == "fix":
                outcome.text = _as_text(guard.check.fix(outcome.text, result))  # type: ignore[attr-defined]
                i += 1
            elif action in OUTPUT_ONLY:
                if regenerate is None or outcome.reasks >= guard.max_reasks:
                    return self._stop(outcome, guard.message or DEFAULT_REFRAIN, "refrain")
                outcome.reasks += 1
                feedback = f"Your previous answer failed the `{guard.name}` check: {result.reason}. Answer again."
                alias = guard.fallback if action == "fallback" else None
                with tracer.span(f"guard.{action}", kind="guard", inputs=feedback,
                                 **{"flywheel.guard.action": action, "flywheel.guard.check": guard.name}):
                    outcome.text = _as_text(regenerate(feedback, alias))
                i = 0  # the new output goes through every output guard again
        return outcome

    def _check(self, guard: Guard, text: str, ctx: CheckContext) -> CheckResult:
        with tracer.span(f"guard.{guard.name}", kind="guard", inputs={"stage": self.stage, "chars": len(text)},
                         **{"flywheel.guard.check": guard.name, "flywheel.guard.on_fail": guard.on_fail}) as sp:
            result = guard.check.run(text[: guard.max_chars], ctx)
            action = "pass" if result.passed else guard.on_fail
            if result.error:
                action = "log-only" if guard.on_fail == "log-only" else _closed(guard.on_fail)
                sp.record_error(f"guard crashed: {result.error}")
            sp.set(outputs={"passed": result.passed, "score": result.score, "reason": result.reason},
                   **{"flywheel.guard.action": action})
            return result

    def _redact(self, guard: Guard, text: str, vault: dict[str, str]) -> str:
        redacted = guard.check.redact(text)  # type: ignore[attr-defined]
        if isinstance(redacted, tuple):
            redacted, more = redacted
            vault.update(more)
        return _as_text(redacted)

    @staticmethod
    def _stop(outcome: GuardOutcome, message: str, action: str) -> GuardOutcome:
        outcome.text, outcome.message, outcome.action, outcome.passed = message, message, action, False
        return outcome


@dataclass
class SourcesOutcome:
    keep: list[int]  # indices of the sources that may be shown to the model
    dropped: list[int] = field(default_factory=list)
    passed: bool = True  # False when a block / refrain guard stopped the whole answer
    action: str | None = None
    message: str | None = None


class SourcesPipeline:
    """Guards on retrieved context (documents, tool results): each check's `flag_sources` names the sources
    carrying hidden instructions; `drop` removes them, block / refrain stop the answer, log-only records."""

    def __init__(self, guards: list[Guard]):
        self.guards = guards

    def __bool__(self) -> bool:
        return bool(self.guards)

    def run(self, sources: list[str]) -> SourcesOutcome:
        outcome = SourcesOutcome(keep=list(range(len(sources))))
        for guard in self.guards:
            shown = [sources[i][: guard.max_chars] for i in outcome.keep]
            with tracer.span(f"guard.{guard.name}", kind="guard", inputs={"stage": "sources", "sources": len(shown)},
                             **{"flywheel.guard.check": guard.name, "flywheel.guard.on_fail": guard.on_fail}) as sp:
                try:
                    flagged = [outcome.keep[i] for i in guard.check.flag_sources(shown)]  # type: ignore[attr-defined]
                except Exception as exc:  # noqa: BLE001 - fail closed unless log-only, and record it
                    sp.record_error(f"guard crashed: {type(exc).__name__}: {exc}")
                    flagged, action = [], ("log-only" if guard.on_fail == "log-only" else "block")
                    if action == "block":
                        return self._stop(outcome, guard, "block", sp)
                    sp.set(outputs={"flagged": []}, **{"flywheel.guard.action": action})
                    continue
                action = guard.on_fail if flagged else "pass"
                sp.set(outputs={"flagged": flagged}, **{"flywheel.guard.action": action})
                if not flagged:
                    continue
                outcome.action = action
                if action in ("block", "refrain"):
                    return self._stop(outcome, guard, action, sp)
                if action == "drop":
                    outcome.dropped += flagged
                    outcome.keep = [i for i in outcome.keep if i not in flagged]
        return outcome

    @staticmethod
    def _stop(outcome: SourcesOutcome, guard: Guard, action: str, sp: Any) -> SourcesOutcome:
        default = DEFAULT_BLOCK if action == "block" else DEFAULT_REFRAIN
        outcome.passed, outcome.action, outcome.message = False, action, guard.message or default
        sp.set(**{"flywheel.guard.action": action})
        return outcome


class GuardPolicy:
    def __init__(self, input: GuardPipeline | None = None, output: GuardPipeline | None = None,
                 sources: SourcesPipeline | None = None):
        self.input = input or GuardPipeline([], "input")
        self.output = output or GuardPipeline([], "output")
        self.sources = sources or SourcesPipeline([])

    @classmethod
    def from_config(cls, config: GuardsConfig | dict | None,
                    where: Callable[..., str] | None = None, aliases: set[str] | None = None) -> GuardPolicy:
        """Build and validate; every mistake is a ConfigError naming file:line (via `where(stage, i, key)`)."""
        if config is None:
            return cls()
        if isinstance(config, dict):
            config = GuardsConfig.model_validate(config)
        loc = where or (lambda *p: None)
        return cls(
            GuardPipeline([_build(s, "input", i, loc, aliases) for i, s in enumerate(config.input)], "input"),
            GuardPipeline([_build(s, "output", i, loc, aliases) for i, s in enumerate(config.output)], "output"),
            SourcesPipeline([_build(s, "sources", i, loc, aliases) for i, s in enumerate(config.sources)]),
        )


def restore(text: str, vault: dict[str, str]) -> str:
    """Put redacted values back into a response (longest placeholders first, so _1 never eats _10)."""
    for placeholder in sorted(vault, key=len, reverse=True):
        text = text.replace(placeholder, vault[placeholder])
    return text


def _build(spec: GuardSpec, stage: str, i: int, where: Callable[..., str | None],
           aliases: set[str] | None) -> Guard:
    raw: dict[str, Any] = spec.model_dump()
    action = raw["on_fail"]
    if stage == "sources":
        return _build_source_guard(spec, raw, i, where)
    if action not in ACTIONS:
        raise ConfigError(f"unknown on_fail action `{action}` for guard `{spec.check}`",
                          where=where(stage, i, "on_fail"), hint=f"use one of: {', '.join(ACTIONS)}")
    if stage == "input" and action in OUTPUT_ONLY:
        raise ConfigError(f"on_fail `{action}` only applies to output guards (it regenerates the answer)",
                          where=where(stage, i, "on_fail"), hint="use block, redact, fix, refrain or log-only")
    args = {k: v for k, v in raw.items() if k not in POLICY_KEYS}
    arg = args.pop("value") if set(args) == {"value"} else (args or None)
    try:
        check = build(spec.check, arg, where=where(stage, i, "check"))
    except ConfigError:
        raise
    except UserError as exc:
        raise ConfigError(exc.message, where=exc.where, hint=exc.hint) from None
    if action == "redact" and not callable(getattr(check, "redact", None)):
        raise ConfigError(f"check `{spec.check}` cannot redact", where=where(stage, i, "on_fail"),
                          hint="redact works with checks that find spans (pii); use block or refrain")
    if action == "fix" and not callable(getattr(check, "fix", None)):
        raise ConfigError(f"check `{spec.check}` has no automatic fix", where=where(stage, i, "on_fail"),
                          hint="use reask to let the model fix it, or block")
    fallback = raw.get("fallback")
    if action == "fallback":
        if not fallback:
            raise ConfigError(f"guard `{spec.check}` falls back but names no alias", where=where(stage, i),
                              hint="add `fallback: ALIAS` (a model alias from models:)")
        if aliases is not None and fallback not in aliases:
            raise ConfigError(f"guard `{spec.check}` falls back to unknown alias `{fallback}`",
                              where=where(stage, i, "fallback"), hint=f"known aliases: {', '.join(sorted(aliases))}")
    max_reasks = raw.get("max_reasks", 1)
    if not isinstance(max_reasks, int) or not 0 <= max_reasks <= 5:
        raise ConfigError(f"max_reasks must be a whole number from 0 to 5, not {max_reasks!r}",
                          where=where(stage, i, "max_reasks"), hint="bounded re-asks keep cost predictable")
    return Guard(check=check, on_fail=action, max_reasks=max_reasks, message=raw.get("message"),
                 fallback=fallback, max_chars=int(raw.get("max_chars", DEFAULT_MAX_CHARS)))


def _build_source_guard(spec: GuardSpec, raw: dict[str, Any], i: int, where: Callable[..., str | None]) -> Guard:
    action = raw["on_fail"]
    if action not in SOURCE_ACTIONS:
        raise ConfigError(f"on_fail `{action}` does not apply to retrieved sources (guard `{spec.check}`)",
                          where=where("sources", i, "on_fail"), hint=f"use one of: {', '.join(SOURCE_ACTIONS)}")
    args = {k: v for k, v in raw.items() if k not in POLICY_KEYS}
    try:
        check = build(spec.check, args or None, where=where("sources", i, "check"))
    except UserError as exc:
        raise ConfigError(exc.message, where=exc.where, hint=exc.hint) from None
    if not callable(getattr(check, "flag_sources", None)):
        raise ConfigError(f"check `{spec.check}` cannot scan retrieved sources", where=where("sources", i, "check"),
                          hint="source guards need a check that flags sources, such as injection")
    return Guard(check=check, on_fail=action, message=raw.get("message"),
                 max_chars=int(raw.get("max_chars", DEFAULT_MAX_CHARS)))


def _closed(action: str) -> str:
    """A crashed check can't say what to redact or fix, so those fail closed as a block."""
    return "block" if action in ("redact", "fix", "reask", "fallback", "block") else action


def _as_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return "" if value is None else str(value)
