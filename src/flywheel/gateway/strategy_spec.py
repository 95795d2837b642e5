"""The strategy spec grammar (`self_consistency:5`, `best_of:3:judge`, `critique:2`, `ensemble:a+b`): parsed
once, before any call, so a typo is a UserError naming the valid forms. The strategies themselves are in
flywheel.gateway.strategies (docs/strategies.md)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flywheel.errors import UserError

if TYPE_CHECKING:
    from flywheel.gateway.strategies import Strategy

NAMES = ("none", "self_consistency", "best_of", "critique", "ensemble")
FORMS = ("none, self_consistency:N[:field=PATH], best_of:N[:judge[=ALIAS]|:CHECK[=ARG]], critique:R[:ALIAS], "
         "ensemble:A+B[+C…][:judge[=ALIAS]]")
ALIASES = {"best_of_n": "best_of"}  # the name the literature uses; the spec keeps the short one
MAX_SAMPLES = 32


@dataclass(frozen=True)
class StrategySpec:
    """A strategy as written on the command line or in YAML (`self_consistency:5`, `best_of:3:judge`…)."""

    name: str = "none"
    n: int = 1  # samples (self_consistency, best_of) or rounds (critique)
    field: str | None = None  # self_consistency: vote on this JSON field
    judge: str | None = None  # best_of / ensemble: rank with a judge on this alias ("" = the request's alias)
    check: str | None = None  # best_of: rank with this check (`name` or `name=arg`)
    critic: str | None = None  # critique: the alias that critiques (default: the request's)
    aliases: tuple[str, ...] = ()  # ensemble

    def __str__(self) -> str:
        if self.name == "none":
            return "none"
        if self.name == "ensemble":
            tail = "" if self.judge is None else (":judge" + (f"={self.judge}" if self.judge else ""))
            return f"ensemble:{'+'.join(self.aliases)}{tail}"
        parts = [self.name, str(self.n)]
        if self.field:
            parts.append(f"field={self.field}")
        if self.check:
            parts.append(self.check)
        elif self.judge is not None and self.name == "best_of":
            parts.append("judge" + (f"={self.judge}" if self.judge else ""))
        if self.critic:
            parts.append(self.critic)
        return ":".join(parts)

    @classmethod
    def parse(cls, text: str, where: str | None = None) -> StrategySpec:
        """UserError (with `where`) naming the valid forms when `text` is not one of them."""
        parts = [p.strip() for p in text.strip().split(":")]
        name, args = parts[0].lower().replace("-", "_"), parts[1:]
        name = ALIASES.get(name, name)

        def bad(why: str) -> UserError:
            return UserError(f"bad strategy {text!r}: {why}", where=where, hint=f"write one of: {FORMS}")

        if name not in NAMES:
            from flywheel.registry import unknown_name

            raise unknown_name("strategy name", name, NAMES, where=where, hint=f"write one of: {FORMS}")
        if name == "none":
            if args:
                raise bad("`none` takes no arguments")
            return cls()
        if "" in args:
            raise bad("an empty part between ':' (nothing after a ':')")
        if name == "ensemble":
            aliases = tuple(a.strip() for a in args[0].split("+") if a.strip())
            if len(aliases) < 2 or len(args) > 2:
                raise bad("an ensemble names two or more aliases joined by +, e.g. ensemble:small+strong")
            if len(set(aliases)) < len(aliases):
                twice = sorted({a for a in aliases if aliases.count(a) > 1})
                raise bad(f"an ensemble takes one answer from each alias, and {', '.join(twice)} is named twice "
                          f"(for several samples of one alias use self_consistency:N or best_of:N)")
            judge = _judge_arg(args[1], bad) if len(args) == 2 else None
            return cls(name, len(aliases), aliases=aliases, judge=judge)
        # isdecimal, not isdigit: '²' is a digit int() cannot read
        if not args or not args[0].isdecimal() or not 1 <= int(args[0]) <= MAX_SAMPLES:
            raise bad(f"{name} needs a count from 1 to {MAX_SAMPLES}, e.g. {name}:3")
        n, rest = int(args[0]), args[1:]
        if len(rest) > 1:
            raise bad(f"too many parts after {name}:{n}")
        opt = rest[0] if rest else None
        if name == "self_consistency":
            if opt is not None and not (opt.startswith("field=") and len(opt) > 6):
                raise bad("self_consistency takes only `field=PATH`")
            return cls(name, n, field=opt[6:] if opt else None)
        if name == "critique":
            return cls(name, n, critic=opt)
        if opt is None or opt == "judge" or opt.startswith("judge="):
            return cls(name, n, judge=_judge_arg(opt or "judge", bad))
        build_check(opt, where)  # an unknown check or a bad argument fails here, not mid-run
        return cls(name, n, check=opt)

    def aliases_used(self) -> list[str]:
        """Model aliases the spec names (to check they exist before a run)."""
        named = [*self.aliases, self.judge or "", self.critic or ""]
        return [a for a in named if a]

    def build(self) -> Strategy:
        from flywheel.gateway import strategies

        if self.name == "none":
            return strategies.Strategy(self)
        return {"self_consistency": strategies.SelfConsistency, "best_of": strategies.BestOfN,
                "critique": strategies.SelfCritique, "ensemble": strategies.Ensemble}[self.name](self)


def build_check(text: str, where: str | None = None) -> Any:
    """A check from `name` or `name=arg` (the argument read as a YAML scalar: `max_words=10` gives 10)."""
    import yaml

    from flywheel.checks import from_entry

    name, eq, arg = text.partition("=")
    return from_entry({name: yaml.safe_load(arg)} if eq else name, where)


def _judge_arg(opt: str, bad: Callable[[str], UserError]) -> str:
    if opt == "judge":
        return ""
    if opt.startswith("judge=") and len(opt) > 6:
        return opt[6:]
    raise bad("expected `judge` or `judge=ALIAS`")


def parse_strategies(value: str, where: str | None = None) -> list[StrategySpec]:
    """`none,self_consistency:5,…` → specs, duplicates dropped, order kept."""
    specs = [StrategySpec.parse(p, where) for p in value.split(",") if p.strip()]
    if not specs:
        raise UserError("no strategy given", where=where, hint=f"write e.g. none,self_consistency:5 ({FORMS})")
    return list({str(s): s for s in specs}.values())
