"""The Check protocol and its registry. One detector, three uses: eval suites, pytest and online guards.

A check is a class registered by name. It is built from the argument written in YAML
(`contains: "version"`, `max_words: 120`, `judge: "criterion"`, `pii: {entities: [EMAIL_ADDRESS]}`)
and run on an output with a `CheckContext`. Every check can be negated by prefixing `not-`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

from flywheel.errors import UserError
from flywheel.registry import Registry
from flywheel.types import CheckResult

# Built-in families register themselves on import; plugins come from the `flywheel.checks` entry-point group.
CHECKS: Registry[type[Check]] = Registry("check", group="flywheel.checks",
                                         hint="any check may be prefixed with not-",
                                         validate=lambda obj: _not_a_check(obj))


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
    services: Any = None  # a `Services` (or anything with .gateway / .embedder, e.g. a Runtime)


@dataclass
class Services:
    """What LLM and embedding checks reach through `ctx.services`. Any object with these attributes works."""

    gateway: Any = None  # has chat(ChatRequest) / achat(ChatRequest) -> ChatResult
    embedder: Any = None  # has embed(list[str]) -> array of vectors
    judge_model: str | None = None  # default alias for LLM checks that name none


def _not_a_check(obj: Any) -> str | None:
    """Why a registered object cannot be a check (a plugin's entry point naming a function …), or None."""
    return None if isinstance(obj, type) and issubclass(obj, Check) else "is not a subclass of flywheel.checks.base.Check"


def service(ctx: CheckContext, name: str) -> Any:
    """`ctx.services.<name>` or None (a Runtime builds its gateway lazily on first access)."""
    return getattr(ctx.services, name, None) if ctx.services is not None else None


class Check:
    """Base class. Subclasses set `name`, parse `arg` in `__init__` and implement `evaluate`."""

    name: ClassVar[str] = ""
    needs_llm: ClassVar[bool] = False
    blocking: ClassVar[bool] = False  # slow synchronous work (models): `arun` moves it to a worker thread
    # What the check judges: "span" (each piece on its own: a secret, an e-mail address) or "answer" (the text as
    # a whole: its language, its length, a phrase it must hold). A stream's guards never judge an "answer" check
    # on a sentence alone; they judge the whole answer at the end (flywheel.guards.streaming).
    scope: ClassVar[str] = "span"
    # For an "answer" check: what its verdict on the start of an answer (a stream's answer so far) already says
    # about the whole answer. "fail": a failure stands whatever follows (max_words: a stream stops at once);
    # "pass": a pass stands, a failure may still be undone (contains: judged at the end); "": neither (is-json,
    # a judge guard with `scope: answer`: judged once, on the whole answer). See `settled`.
    settles: str = ""
    # For an "answer" check: while it fails on the answer so far, a stream holds new text back instead of showing
    # it (language: an answer in the wrong language shows nothing), until more text makes it pass or the end.
    holds: ClassVar[bool] = False

    def __init__(self, arg: Any = None):
        self.arg = arg

    def evaluate(self, output: str, ctx: CheckContext) -> CheckResult:
        raise NotImplementedError

    def settled(self, result: CheckResult) -> bool:
        """Whether `result`, this check's verdict on the start of an answer, stands for any longer answer."""
        return self.scope == "answer" and self.settles == ("pass" if result.passed else "fail") and not result.error

    def slack(self, result: CheckResult) -> int:
        """How many characters may follow the start of an answer this check judged `result` before its verdict
        could change (0: any); a stream judges it again only after that many (max_words: the words left)."""
        return 0

    async def aevaluate(self, output: str, ctx: CheckContext) -> CheckResult:
        """Async evaluation; LLM checks override it to await the gateway instead of blocking a thread."""
        if self.blocking or self.needs_llm:
            return await asyncio.to_thread(self.evaluate, output, ctx)
        return self.evaluate(output, ctx)

    def definition(self) -> dict[str, Any]:
        """What identifies this check; LLM checks add their judge prompt and resolved judge model."""
        return {"check": self.name, "arg": self.arg}

    def bindings(self, ctx: CheckContext | None) -> dict[str, Any]:
        """What the context resolves that also identifies the result (e.g. the judge alias's pinned model)."""
        return {}

    def spec(self, ctx: CheckContext | None = None) -> str:
        bound = self.bindings(ctx)
        if bound:
            return _hash({**self.definition(), **bound})
        cached = self.__dict__.get("_spec")  # the definition is fixed once built; hash it once
        if cached is None:
            cached = self.__dict__["_spec"] = _hash(self.definition())
        return cached

    def run(self, output: str | None, ctx: CheckContext | None = None) -> CheckResult:
        ctx = ctx or CheckContext()
        try:
            result = self.evaluate(output if output is not None else "", ctx)
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001 - a crashing check is a recorded failure, not a crash
            result = _crashed(exc)
        return self._finish(result, ctx)

    async def arun(self, output: str | None, ctx: CheckContext | None = None) -> CheckResult:
        """`run` for event loops: LLM checks await the gateway, cheap checks run inline."""
        ctx = ctx or CheckContext()
        try:
            result = await self.aevaluate(output if output is not None else "", ctx)
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001
            result = _crashed(exc)
        return self._finish(result, ctx)

    def _finish(self, result: CheckResult, ctx: CheckContext) -> CheckResult:
        try:
            result.spec = self.spec(ctx)
        except Exception:  # noqa: BLE001 - an unresolvable binding still leaves the definition's hash
            result.spec = self.spec(None)
        result.name = self.name
        return result


def _hash(blob: dict[str, Any]) -> str:
    text = json.dumps(blob, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _crashed(exc: BaseException) -> CheckResult:
    return CheckResult(passed=False, score=0.0, reason=f"check crashed: {exc}",
                       error=f"{type(exc).__name__}: {exc}")


class Not(Check):
    """`not-<name>`: passes when the inner check fails (a crashed inner check stays failed)."""

    def __init__(self, inner: Check):
        super().__init__(inner.arg)
        self.inner = inner
        self.name = f"not-{inner.name}"  # type: ignore[misc]
        self.needs_llm = inner.needs_llm  # type: ignore[misc]
        self.blocking = inner.blocking  # type: ignore[misc]
        self.scope = inner.scope  # type: ignore[misc]
        self.settles = {"pass": "fail", "fail": "pass"}.get(inner.settles, "")  # not-contains: a find stands
        self.holds = inner.holds  # type: ignore[misc]

    def definition(self) -> dict[str, Any]:
        return {"not": self.inner.definition()}

    def bindings(self, ctx: CheckContext | None) -> dict[str, Any]:
        return self.inner.bindings(ctx)

    def evaluate(self, output: str, ctx: CheckContext) -> CheckResult:
        return self._negate(self.inner.run(output, ctx))

    def settled(self, result: CheckResult) -> bool:
        return not result.error and self.inner.settled(self._inverse(result))

    def slack(self, result: CheckResult) -> int:
        return 0 if result.error else self.inner.slack(self._inverse(result))

    @staticmethod
    def _inverse(r: CheckResult) -> CheckResult:
        """The inner check's result this negated one came from."""
        return CheckResult(passed=not r.passed, score=1.0 - r.score, details=r.details)

    async def aevaluate(self, output: str, ctx: CheckContext) -> CheckResult:
        return self._negate(await self.inner.arun(output, ctx))

    @staticmethod
    def _negate(r: CheckResult) -> CheckResult:
        if r.error:
            return r
        return CheckResult(passed=not r.passed, score=1.0 - r.score, reason=f"negated: {r.reason}",
                           details=r.details)


def register(cls: type[Check]) -> type[Check]:
    if not cls.name:
        raise TypeError(f"{cls.__name__} needs a `name`")
    CHECKS.register(cls.name, cls)
    return cls


def registered() -> dict[str, type[Check]]:
    _load_builtin()
    return dict(CHECKS.items())


def build(name: str, arg: Any = None, where: str | None = None) -> Check:
    """Build a check by registry name (with optional `not-` prefix); bad names/args raise UserError."""
    negate = name.startswith("not-")
    base = name[4:] if negate else name
    if ":" in base and arg is None:  # `trained:NAME` reads as `trained: NAME`
        base, arg = base.split(":", 1)
    _load_builtin(base)
    cls = CHECKS.get(base, where=where)
    try:
        check = cast(Any, cls)(arg, where=where) if _takes_where(cls) else cls(arg)
    except UserError:
        raise
    except (TypeError, ValueError) as exc:
        raise UserError(f"bad argument for check `{base}`: {exc}", where=where,
                        hint=_first_paragraph(cls.__doc__)) from None
    return Not(check) if negate else check


def _takes_where(cls: Any) -> bool:
    """Whether a check class wants to know where it was declared (to find files next to the suite)."""
    import inspect

    try:
        return "where" in inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return False


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


# Cheap families first: building `contains` should not import the PII or injection models.
_FIRST = ("text", "structure", "perf", "language", "judge", "similarity", "grounding")
_imported: set[str] = set()


def _load_builtin(until: str | None = None) -> None:
    """Import the check families so their @register lines run (one module per family).

    With `until`, stop as soon as that check is registered; otherwise import every family.
    """
    import importlib
    import pkgutil

    import flywheel.checks as pkg

    if until is not None and until in CHECKS:
        return
    names = [m.name for m in pkgutil.iter_modules(pkg.__path__) if m.name != "base"]
    for name in sorted(names, key=lambda n: (_FIRST.index(n) if n in _FIRST else len(_FIRST), n)):
        if name in _imported:
            continue
        _imported.add(name)
        importlib.import_module(f"flywheel.checks.{name}")
        if until is not None and until in CHECKS:
            return


def _first_paragraph(doc: str | None) -> str | None:
    """A check's docstring up to its first blank line, on one line (its first line alone may stop mid-sentence)."""
    if not doc:
        return None
    lines = []
    for line in doc.strip().splitlines():
        if not line.strip():
            break
        lines.append(line.strip())
    return " ".join(lines)
