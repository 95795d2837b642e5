"""Guard policies: a guard is a check plus an on-fail action, run as an input or output pipeline.

    policy = GuardPolicy.from_config(app_config.guards, where=lambda *p: project.where("apps", "docs_qa", "guards", *p))
    inp = policy.input.run(question, ctx)                 # may block, redact (with a vault), fix, refrain
    out = policy.output.run(answer, ctx, regenerate=fn)   # may also reask (bounded) or fall back to another alias

Every guard run is a span (kind "guard") and a `GuardAction` on the outcome. A guard whose check crashes fails
closed (counts as failed) unless its action is log-only, where it fails open; either way the crash is recorded.

A guard never forwards text it did not check: text longer than a guard's `max_chars` is checked in
overlapping windows of `max_chars` characters (every character is seen; the first failing window decides),
and a redaction is checked again afterwards: what still fails is blocked rather than passed on.
Checks get the services they need (the gateway an LLM judge calls) from `ctx.services`, or from the
policy's `services` when the context has none.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from flywheel.checks.base import Check, CheckContext, build
from flywheel.checks.language import by_language
from flywheel.checks.pii import PLACEHOLDER, Vault, placeholder_type
from flywheel.config import GUARD_ACTIONS, OUTPUT_ONLY_ACTIONS, GuardsConfig, GuardSpec, check_on_fail
from flywheel.errors import ConfigError, UserError
from flywheel.guards.scope import judge_scope
from flywheel.prompts.render import language_of, pick_language
from flywheel.registry import did_you_mean, unknown_alias
from flywheel.tracing import tracer
from flywheel.types import CheckResult, GuardAction, content_hash

ACTIONS = GUARD_ACTIONS  # one list: flywheel.yaml is checked against it when it loads
OUTPUT_ONLY = OUTPUT_ONLY_ACTIONS
POLICY_KEYS = {"check", "on_fail", "max_reasks", "message", "fallback", "max_chars", "scope"}
MESSAGES = {
    "block": {"en": "Sorry, I can't help with that request.", "zh": "抱歉，我无法协助处理这个请求。"},
    "refrain": {"en": "I don't know.", "zh": "我不知道。"},
}
DEFAULT_BLOCK = MESSAGES["block"]["en"]
DEFAULT_REFRAIN = MESSAGES["refrain"]["en"]
DEFAULT_MAX_CHARS = 100_000
WINDOW_OVERLAP = 1_000  # characters shared by consecutive windows, so a phrase on a boundary is seen whole

# regenerate(feedback, alias) -> new output text; alias is None for a re-ask on the same model
Regenerate = Callable[[str, "str | None"], str]
Message = str | Mapping[str, str] | None  # one message, or one per language ({en: …, zh: …})


@dataclass
class Guard:
    check: Check
    on_fail: str = "block"
    max_reasks: int = 1
    message: Message = None
    fallback: str | None = None
    max_chars: int = DEFAULT_MAX_CHARS  # longer text is checked in windows of this size
    scope: str | None = None  # a judge guard's `scope:` on a stream (flywheel.guards.scope); None: its check's

    @property
    def name(self) -> str:
        return self.check.name

    def stop_message(self, action: str, language: str) -> str:
        """The message shown when this guard stops an answer, in the user's language when it has one."""
        message = self.message
        if isinstance(message, str) and message:
            return message
        if isinstance(message, Mapping) and message:
            return pick_language(message, language)
        return pick_language(MESSAGES["refrain" if action == "refrain" else "block"], language)


@dataclass
class GuardOutcome:
    text: str
    passed: bool = True  # False when the final text came from block / refrain
    action: str | None = None  # the last action taken, None when every guard passed
    message: str | None = None
    results: list[CheckResult] = field(default_factory=list)
    vault: Vault = field(default_factory=Vault)  # placeholder -> original (nonce'd per run), to restore the answer
    reasks: int = 0
    actions: list[GuardAction] = field(default_factory=list)  # what each guard did, in order

    @property
    def refused(self) -> bool:
        return self.action in ("block", "refrain")


def windows(text: str, size: int) -> list[tuple[int, str]]:
    """(start, piece) covering all of `text` in pieces of at most `size` characters, overlapping a little."""
    size = max(1, size)
    if len(text) <= size:
        return [(0, text)]
    overlap = min(WINDOW_OVERLAP, size // 4)
    step = size - overlap
    return [(start, text[start:start + size]) for start in range(0, len(text) - overlap, step)]


class GuardPipeline:
    def __init__(self, guards: list[Guard], stage: str, services: Any = None):
        self.guards, self.stage, self.services = guards, stage, services

    def __bool__(self) -> bool:
        return bool(self.guards)

    def run(self, text: str, ctx: CheckContext | None = None, regenerate: Regenerate | None = None,
            vault: Vault | None = None) -> GuardOutcome:
        """`vault`: where an input redaction's placeholders go (a chat session's, so they keep one nonce and
        number across turns); a fresh one by default."""
        ctx = self._context(ctx)
        outcome = GuardOutcome(text=_as_text(text), vault=vault if vault is not None else Vault())
        language = language_of(ctx.input or outcome.text)
        i = 0
        while i < len(self.guards):
            guard = self.guards[i]
            can_regenerate = regenerate is not None and outcome.reasks < guard.max_reasks
            result, action = self._check(guard, outcome.text, ctx, partial(_decide, guard, can_regenerate=can_regenerate))
            outcome.results.append(result)
            if action == "pass" or (action == "log-only" and result.error):
                self._record(outcome, guard, result, action)
                i += 1
                continue
            outcome.action = action
            self._record(outcome, guard, result, action)
            if action == "log-only":
                i += 1
            elif action in ("block", "refrain"):
                return self._stop(outcome, guard.stop_message(action, language), action)
            elif action == "redact":
                outcome.text = self._redact(guard, outcome.text, outcome.vault if self.stage == "input" else None)
                # what the redaction missed is not passed on
                again, _ = self._check(guard, outcome.text, ctx, lambda r: "pass" if r.passed else "block")
                if not again.passed:
                    outcome.results.append(again)
                    self._record(outcome, guard, again, "block")
                    return self._stop(outcome, guard.stop_message("block", language), "block")
                i += 1
            elif action == "fix":
                outcome.text = _as_text(guard.check.fix(outcome.text, result))  # type: ignore[attr-defined]
                i += 1
            elif action in OUTPUT_ONLY and regenerate is not None:  # (without one it became a refrain above)
                outcome.reasks += 1
                feedback = f"Your previous answer failed the `{guard.name}` check: {result.reason}. Answer again."
                alias = guard.fallback if action == "fallback" else None
                with tracer.span(f"guard.{action}", kind="guard", inputs=feedback,
                                 **{"flywheel.guard.action": action, "flywheel.guard.check": guard.name}):
                    outcome.text = _as_text(regenerate(feedback, alias))
                i = 0  # the new output goes through every output guard again
        return outcome

    def _context(self, ctx: CheckContext | None) -> CheckContext:
        ctx = ctx or CheckContext()
        if ctx.services is None and self.services is not None:
            ctx = dataclasses.replace(ctx, services=self.services)
        return ctx

    def _record(self, outcome: GuardOutcome, guard: Guard, result: CheckResult, action: str) -> None:
        outcome.actions.append(GuardAction(stage=self.stage, check=guard.name, action=action,  # type: ignore[arg-type]
                                           passed=result.passed, reason=result.reason or result.error or ""))

    def _check(self, guard: Guard, text: str, ctx: CheckContext,
               decide: Callable[[CheckResult], str]) -> tuple[CheckResult, str]:
        """The check's verdict and the action taken on it (`decide`), which is what the guard span records."""
        parts = windows(text, guard.max_chars)
        with tracer.span(f"guard.{guard.name}", kind="guard",
                         inputs={"stage": self.stage, "chars": len(text), "windows": len(parts)},
                         **{"flywheel.guard.check": guard.name, "flywheel.guard.on_fail": guard.on_fail}) as sp:
            result = check_windows(guard.check, parts, ctx)
            action = decide(result)
            if result.error:
                sp.record_error(f"guard crashed: {result.error}")
            sp.set(outputs={"passed": result.passed, "score": result.score, "reason": result.reason},
                   **{"flywheel.guard.action": action})
            return result, action

    def redact(self, text: str, vault: Vault) -> str:
        """`text` masked by every redact guard of this stage with `vault`'s placeholders, without deciding
        anything (a restored answer masked again before it is stored)."""
        for guard in self.guards:
            if guard.on_fail == "redact":
                text = self._redact(guard, text, vault)
        return text

    def _redact(self, guard: Guard, text: str, vault: Vault | None) -> str:
        """The text with what the check finds replaced by placeholders. Each placeholder the check made becomes
        one of `vault`'s (input side: numbered, with the run's nonce, restored in the answer) or, without a
        vault (output side, final), the type alone (`<EMAIL_ADDRESS>`), so an output redaction is never mistaken
        for, and restored as, one of the user's own values. Placeholders already in the text (an earlier
        guard's, or those the model used) are kept out of the check's way while it redacts."""
        kept: list[str] = []

        def hide(m: re.Match[str]) -> str:
            kept.append(m.group(0))
            return chr(_HIDDEN + len(kept) - 1)

        hidden = PLACEHOLDER.sub(hide, text) if len(PLACEHOLDER.findall(text)) < _HIDDEN_MAX else text
        redacted = guard.check.redact(hidden)  # type: ignore[attr-defined]
        out, made = (redacted[0], dict(redacted[1])) if isinstance(redacted, tuple) else (redacted, {})
        out = _as_text(out)
        if made:
            names = {key: vault.placeholder_for(placeholder_type(key) or "REDACTED", value) if vault is not None
                     else f"<{placeholder_type(key) or 'REDACTED'}>" for key, value in made.items()}
            rx = re.compile("|".join(re.escape(k) for k in sorted(names, key=len, reverse=True)))
            out = rx.sub(lambda m: names[m.group(0)], out)
        if hidden is not text:
            out = re.sub(f"[{chr(_HIDDEN)}-{chr(_HIDDEN + _HIDDEN_MAX - 1)}]", lambda m: kept[ord(m.group(0)) - _HIDDEN], out)
        return out

    @staticmethod
    def _stop(outcome: GuardOutcome, message: str, action: str) -> GuardOutcome:
        outcome.text, outcome.message, outcome.action, outcome.passed = message, message, action, False
        return outcome


def check_windows(check: Check, parts: list[tuple[int, str]], ctx: CheckContext) -> CheckResult:
    """Run `check` on each window; the first failing (or crashed) window decides, else every window passed."""
    worst: CheckResult | None = None
    for start, piece in parts:
        result = check.run(piece, ctx)
        if len(parts) > 1:
            result.details = {**result.details, "window": [start, start + len(piece)], "windows": len(parts)}
        if not result.passed or result.error:
            return result
        if worst is None or result.score < worst.score:
            worst = result
    assert worst is not None
    return worst


@dataclass
class SourcesOutcome:
    keep: list[int]  # indices of the sources that may be shown to the model
    dropped: list[int] = field(default_factory=list)
    passed: bool = True  # False when a block / refrain guard stopped the whole answer
    action: str | None = None
    message: str | None = None
    actions: list[GuardAction] = field(default_factory=list)


class SourcesPipeline:
    """Guards on retrieved context (documents, tool results): each check's `flag_sources` names the sources
    carrying hidden instructions; `drop` removes them, block / refrain stop the answer, log-only records.
    A source longer than the guard's `max_chars` is scanned in windows; any flagged window flags it."""

    def __init__(self, guards: list[Guard]):
        self.guards = guards

    def __bool__(self) -> bool:
        return bool(self.guards)

    def run(self, sources: list[str], language: str = "en") -> SourcesOutcome:
        outcome = SourcesOutcome(keep=list(range(len(sources))))
        for guard in self.guards:
            pieces: list[str] = []
            owner: list[int] = []
            for i in outcome.keep:
                for _, piece in windows(sources[i], guard.max_chars):
                    pieces.append(piece)
                    owner.append(i)
            with tracer.span(f"guard.{guard.name}", kind="guard",
                             inputs={"stage": "sources", "sources": len(outcome.keep), "windows": len(pieces)},
                             **{"flywheel.guard.check": guard.name, "flywheel.guard.on_fail": guard.on_fail}) as sp:
                try:
                    hits = guard.check.flag_sources(pieces)  # type: ignore[attr-defined]
                    flagged = sorted({owner[j] for j in hits})
                except Exception as exc:  # noqa: BLE001 - fail closed unless log-only, and record it
                    error = f"guard crashed: {type(exc).__name__}: {exc}"
                    sp.record_error(error)
                    action = "log-only" if guard.on_fail == "log-only" else "block"
                    outcome.actions.append(GuardAction(stage="sources", check=guard.name, action=action,
                                                       passed=False, reason=error))
                    if action == "block":
                        return self._stop(outcome, guard, "block", sp, language)
                    sp.set(outputs={"flagged": []}, **{"flywheel.guard.action": action})
                    continue
                action = guard.on_fail if flagged else "pass"
                sp.set(outputs={"flagged": flagged}, **{"flywheel.guard.action": action})
                reason = f"instructions found in source(s) {', '.join(str(i + 1) for i in flagged)}" if flagged else ""
                outcome.actions.append(GuardAction(stage="sources", check=guard.name, action=action,
                                                   passed=not flagged, reason=reason))
                if not flagged:
                    continue
                outcome.action = action
                if action in ("block", "refrain"):
                    return self._stop(outcome, guard, action, sp, language)
                if action == "drop":
                    outcome.dropped += flagged
                    outcome.keep = [i for i in outcome.keep if i not in flagged]
        return outcome

    @staticmethod
    def _stop(outcome: SourcesOutcome, guard: Guard, action: str, sp: Any, language: str) -> SourcesOutcome:
        outcome.passed, outcome.action = False, action
        outcome.message = guard.stop_message(action, language)
        sp.set(**{"flywheel.guard.action": action})
        return outcome


class GuardPolicy:
    def __init__(self, input: GuardPipeline | None = None, output: GuardPipeline | None = None,
                 sources: SourcesPipeline | None = None, *, services: Any = None):
        self.input = input or GuardPipeline([], "input")
        self.output = output or GuardPipeline([], "output")
        self.sources = sources or SourcesPipeline([])
        if services is not None:
            self.input.services = self.output.services = services

    def __bool__(self) -> bool:
        return bool(self.input or self.output or self.sources)

    @property
    def version(self) -> str:
        """A stable hash of every guard (check definition, action, limits, messages): part of the cache key,
        since a different policy can change what the app answers."""
        stages = {"input": self.input.guards, "output": self.output.guards, "sources": self.sources.guards}
        blob = {stage: [[g.check.spec(), g.on_fail, g.max_reasks, g.message, g.fallback, g.max_chars]
                        + (["answer"] if g.scope == "answer" else []) for g in guards] for stage, guards in stages.items()}
        return content_hash(json.dumps(blob, sort_keys=True, default=str, ensure_ascii=False))

    @classmethod
    def from_config(cls, config: GuardsConfig | dict | None, where: Callable[..., str] | None = None,
                    aliases: set[str] | None = None, *, services: Any = None,
                    models: Mapping[str, Any] | None = None) -> GuardPolicy:
        """Build and validate; every mistake is a ConfigError naming file:line (via `where(stage, i, key)`).
        `services` (e.g. Services(gateway=…)) is what LLM checks use when a run's context brings none.
        `models` (alias → its config; else the services' gateway's) lets a judge guard be checked against the
        provider that would judge."""
        if config is None:
            return cls(services=services)
        if isinstance(config, dict):
            config = GuardsConfig.model_validate(config)
        loc = where or (lambda *p: None)
        if models is None:
            models = getattr(getattr(services, "gateway", None), "models", None)
        build_one = partial(_build, where=loc, aliases=aliases, models=models if isinstance(models, Mapping) else None)
        return cls(
            GuardPipeline([build_one(s, "input", i) for i, s in enumerate(config.input)], "input"),
            GuardPipeline([build_one(s, "output", i) for i, s in enumerate(config.output)], "output"),
            SourcesPipeline([build_one(s, "sources", i) for i, s in enumerate(config.sources)]),
            services=services,
        )


_HIDDEN, _HIDDEN_MAX = 0xF0000, 60000  # a Unicode private-use plane: no detector matches these characters


def _build(spec: GuardSpec, stage: str, i: int, where: Callable[..., str | None],
           aliases: set[str] | None, models: Mapping[str, Any] | None = None) -> Guard:
    raw: dict[str, Any] = spec.model_dump()
    action = raw["on_fail"]
    message = _message(raw.get("message"), stage, i, where)
    max_chars = _max_chars(raw.get("max_chars", DEFAULT_MAX_CHARS), stage, i, where)
    if stage == "sources":
        judge_scope(raw.get("scope"), stage, spec.check, None, partial(where, stage, i, "scope"))  # none takes a scope
        return _build_source_guard(spec, raw, i, where, message, max_chars)
    check_on_fail(spec.check, action, stage, where(stage, i, "on_fail"))
    args = {k: v for k, v in raw.items() if k not in POLICY_KEYS}
    single = set(args) == {"value"}  # `value: zh` is the check's whole argument
    arg = args["value"] if single else (args or None)
    try:
        check = build(spec.check, arg, where=where(stage, i, "check"))
    except UserError as exc:  # ConfigError included
        where_arg = _named_arg(exc.message, args, stage, i, where, whole=single)
        raise ConfigError(exc.message, where=where_arg or exc.where,
                          hint=_policy_key_hint(args) or exc.hint) from None
    # an LLM check's judge alias (judge, agrees-with-reference, and those under `not-`)
    judge = getattr(getattr(check, "inner", check), "model", None)
    if isinstance(judge, str) and aliases is not None and judge not in aliases:
        raise unknown_alias(judge, aliases, where=where(stage, i, "model"), used_by=f"guard `{spec.check}`",
                            verb="calls", error=ConfigError)
    scope = judge_scope(raw.get("scope"), stage, spec.check, check, partial(where, stage, i, "scope"))
    if getattr(check, "needs_llm", False):
        _check_judge(spec.check, judge if isinstance(judge, str) else None, models,
                     where(stage, i, "model") if judge else where(stage, i))
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
            raise unknown_alias(fallback, aliases, where=where(stage, i, "fallback"), used_by=f"guard `{spec.check}`",
                                verb="falls back to", error=ConfigError)
    max_reasks = raw.get("max_reasks", 1)
    if not isinstance(max_reasks, int) or not 0 <= max_reasks <= 5:
        raise ConfigError(f"max_reasks must be a whole number from 0 to 5, not {max_reasks!r}",
                          where=where(stage, i, "max_reasks"), hint="bounded re-asks keep cost predictable")
    return Guard(check=check, on_fail=action, max_reasks=max_reasks, message=message, fallback=fallback,
                 max_chars=max_chars, scope=scope)


def _build_source_guard(spec: GuardSpec, raw: dict[str, Any], i: int, where: Callable[..., str | None],
                        message: Message, max_chars: int) -> Guard:
    action = raw["on_fail"]
    check_on_fail(spec.check, action, "sources", where("sources", i, "on_fail"))
    args = {k: v for k, v in raw.items() if k not in POLICY_KEYS}
    try:
        check = build(spec.check, args or None, where=where("sources", i, "check"))
    except UserError as exc:
        where_arg = _named_arg(exc.message, args, "sources", i, where)
        raise ConfigError(exc.message, where=where_arg or exc.where,
                          hint=_policy_key_hint(args) or exc.hint) from None
    if not callable(getattr(check, "flag_sources", None)):
        raise ConfigError(f"check `{spec.check}` cannot scan retrieved sources", where=where("sources", i, "check"),
                          hint="source guards need a check that flags sources, such as injection")
    return Guard(check=check, on_fail=action, message=message, max_chars=max_chars)


def _named_arg(message: str, args: Mapping[str, Any], stage: str, i: int, where: Callable[..., str | None],
               whole: bool = False) -> str | None:
    """The line of the argument a check rejected (`threshold: 1.5`, or `value:` when it is the whole argument),
    else None (the guard's line)."""
    if not message.startswith("bad argument"):  # an unknown check, or a check's own located error
        return None
    if whole:
        return where(stage, i, "value")
    named = [key for key in args if re.search(rf"(?<![\w-]){re.escape(key)}(?![\w-])", message)]
    return where(stage, i, named[0]) if len(named) == 1 else None


def _check_judge(check: str, alias: str | None, models: Mapping[str, Any] | None, where: str | None) -> None:
    """An LLM guard (judge) whose judge is the offline extractive provider — the implicit `default` alias when
    the guard names no `model:` — could never return a verdict: every answer would fail closed."""
    name = alias or "default"
    config = (models or {}).get(name)
    if getattr(config, "provider", None) != "extractive":
        return
    judged = f"is judged by model alias '{name}'" if alias else "names no `model:`, so it is judged by `default`"
    raise ConfigError(f"guard `{check}` {judged}, the offline extractive provider: it quotes passages and "
                      "cannot judge, so every answer would be blocked", where=where,
                      hint="add `model: ALIAS` naming an LLM alias from models: (or a route), e.g. model: strong")


def _policy_key_hint(args: Mapping[str, Any]) -> str | None:
    """A check argument the check rejected that looks like a misspelt guard key (`max_reask`)."""
    for key in args:
        close = did_you_mean(key, POLICY_KEYS - {"check"}, n=1)
        if close:
            return f"`{key}` is not a guard key: did you mean `{close[0]}`?"
    return None


def _message(value: Any, stage: str, i: int, where: Callable[..., str | None]) -> Message:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Mapping) and value and all(isinstance(k, str) and isinstance(v, str)
                                                    for k, v in value.items()):
        return by_language(value, where(stage, i, "message"))
    raise ConfigError(f"guard `message` must be text or a mapping of language to text, not {value!r}",
                      where=where(stage, i, "message"), hint='for example message: {en: "Not here.", zh: "不行。"}')


def _max_chars(value: Any, stage: str, i: int, where: Callable[..., str | None]) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 100:
        raise ConfigError(f"max_chars must be a whole number of at least 100, not {value!r}",
                          where=where(stage, i, "max_chars"),
                          hint="longer text is checked in windows of max_chars characters (default 100000)")
    return value


def _decide(guard: Guard, result: CheckResult, can_regenerate: bool) -> str:
    """What a guard does with its check's result: pass, its on_fail action, or what that becomes."""
    if result.passed:
        return "pass"
    if result.error:
        return "log-only" if guard.on_fail == "log-only" else _closed(guard.on_fail)
    if guard.on_fail in OUTPUT_ONLY and not can_regenerate:
        return "refrain"  # no re-ask left: what happens (and what the span and guard_actions say) is a refrain
    return guard.on_fail


def _closed(action: str) -> str:
    """A crashed check can't say what to redact or fix, so those fail closed as a block."""
    return "block" if action in ("redact", "fix", "reask", "fallback", "block") else action


def _as_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return "" if value is None else str(value)
