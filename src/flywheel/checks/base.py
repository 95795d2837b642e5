"""The Check protocol and its registry. One detector, three uses: eval suites, pytest and online guards.

A check is a class registered by name. It is built from the argument written in YAML
(`contains: "version"`, `max_words: 120`, `judge: "criterion"`, `pii: {entities: [EMAIL_ADDRESS]}`)
and run on an output with a `CheckContext`. Every check can be negated by prefixing `not-`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

from flywheel.errors import UserError
from flywheel.types import CheckResult

_REGISTRY: dict[str, type[Check]] = {}


@dataclass
class CheckContext:
    """What a check may look at besides the output."""

    input: str = ""  # the user's question / prompt
    vars: dict[str, Any] = field(default_factory=dict)
    reference: str | None = None
    sources: list[str] = field(default_factory=list)  # retrieved context shown to the model, in [n] order
    system_prompt: str | None = None
    secrets: list[str] = field(default_factory=list)
    latency_ms: float | None = None
    cost_usd: float | None = None
    trace_id: str | None = None
    services: Any = None  # gateway / embedder access for checks that need them (set by the caller)


class Check:
    """Base class. Subclasses set `name`, parse `arg` in `__init__` and implement `evaluate`."""

    name: ClassVar[str] = ""
    needs_llm: ClassVar[bool] = False

    def __init__(self, arg: Any = None):
        self.arg = arg

    def evaluate(self, output: str, ctx: CheckContext) -> CheckResult:
        raise NotImplementedError

    def definition(self) -> dict[str, Any]:
        """What identifies this check; LLM checks add their judge prompt and resolved judge model."""
        return {"check": self.name, "arg": self.arg}

    def spec(self) -> str:
        blob = json.dumps(self.definition(), sort_keys=True, default=str, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]

    def run(self, output: str | None, ctx: CheckContext | None = None) -> CheckResult:
        ctx = ctx or CheckContext()
        try:
            result = self.evaluate(output if output is not None else "", ctx)
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001 - a crashing check is a recorded failure, not a crash
            result = CheckResult(passed=False, score=0.0, reason=f"check crashed: {exc}",
                                 error=f"{type(exc).__name__}: {exc}")
        result.spec = self.spec()
        result.name = self.name
        return result


class Not(Check):
    """`not-<name>`: passes when the inner check fails (a crashed inner check stays failed)."""

    def __init__(self, inner: Check):
        super().__init__(inner.arg)
        self.inner = inner
        self.name = f"not-{inner.name}"  # type: ignore[misc]

    def definition(self) -> dict[str, Any]:
        return {"not": self.inner.definition()}

    def evaluate(self, output: str, ctx: CheckContext) -> CheckResult:
        r = self.inner.run(output, ctx)
        if r.error:
            return r
        return CheckResult(passed=not r.passed, score=1.0 - r.score, reason=f"negated: {r.reason}",
                           details=r.details)


def register(cls: type[Check]) -> type[Check]:
    if not cls.name:
        raise TypeError(f"{cls.__name__} needs a `name`")
    _REGISTRY[cls.name] = cls
    return cls


def registered() -> dict[str, type[Check]]:
    _load_builtin()
    return dict(_REGISTRY)


def build(name: str, arg: Any = None, where: str | None = None) -> Check:
    """Build a check by registry name (with optional `not-` prefix); bad names/args raise UserError."""
    _load_builtin()
    negate = name.startswith("not-")
    base = name[4:] if negate else name
    cls = _REGISTRY.get(base)
    if cls is None:
        raise UserError(f"unknown check `{name}`", where=where,
                        hint=f"valid checks: {', '.join(sorted(_REGISTRY))} (any may be prefixed with not-)")
    try:
        check = cls(arg)
    except UserError:
        raise
    except (TypeError, ValueError) as exc:
        raise UserError(f"bad argument for check `{base}`: {exc}", where=where,
                        hint=(cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else None) from None
    return Not(check) if negate else check


def from_entry(entry: Any, where: str | None = None) -> Check:
    """Build from a YAML entry: `{contains: x}`, `{check: contains, value: x}` or a bare name `is-json`."""
    if isinstance(entry, str):
        return build(entry, None, where)
    if isinstance(entry, dict):
        if "check" in entry:
            rest = {k: v for k, v in entry.items() if k != "check"}
            arg = rest.pop("value", rest or None) if "value" in rest else (rest or None)
            return build(str(entry["check"]), arg, where)
        if len(entry) == 1:
            (name, arg), = entry.items()
            return build(str(name), arg, where)
    raise UserError(f"cannot read check entry {entry!r}", where=where,
                    hint="write `- contains: text`, `- max_words: 100` or `- check: pii`")


_loaded = False


def _load_builtin() -> None:
    """Import the check families so their @register lines run (one module per family)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    import importlib
    import pkgutil

    import flywheel.checks as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        if mod.name != "base":
            importlib.import_module(f"flywheel.checks.{mod.name}")
