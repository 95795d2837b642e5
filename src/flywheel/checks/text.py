"""Text checks: substrings, equality, prefixes, regular expressions and length ranges.

    - contains: "version"            - icontains-any: [pin, version]      - regex: "v\\d+\\.\\d+"
    - equals: "42"                   - starts-with: "Yes"                 - max_words: 120
    - words: {min: 5, max: 80}       - max_sentences: 3                   - chars: {max: 500}

Counts are CJK aware: every Chinese / Japanese / Korean character counts as one word, since those
scripts do not separate words with spaces.

Every check here judges the answer as a whole (`scope = "answer"`): on a stream none is run on one sentence
alone. A found text or a reached minimum stands once the answer so far has it (`settles = "pass"`), a maximum
exceeded stands too (`"fail"`: the stream stops at once); the rest is judged on the whole answer at its end.
"""

from __future__ import annotations

import json
import re
from typing import Any

from flywheel.checks.base import Check, CheckContext, register
from flywheel.text import split_sentences
from flywheel.types import CheckResult

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]+")
_WORD = re.compile(r"\w+(?:['’]\w+)*")


def _text(arg: Any, what: str) -> str:
    if isinstance(arg, bool) or arg is None or isinstance(arg, dict | list):
        raise ValueError(f"{what} needs a text value, got {arg!r}")
    return str(arg)


def _texts(arg: Any, what: str) -> list[str]:
    if not isinstance(arg, list) or not arg:
        raise ValueError(f"{what} needs a non-empty list of texts, got {arg!r}")
    return [_text(a, what) for a in arg]


def _result(passed: bool, reason: str, score: float | None = None, **details: Any) -> CheckResult:
    return CheckResult(
        passed=passed, score=float(passed) if score is None else score, reason=reason, details=details
    )


def _short(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


# ---------------------------------------------------------------- substrings


class _Contains(Check):
    scope = "answer"  # "参考资料" anywhere in the answer, not in every sentence
    settles = "pass"
    fold = False

    def __init__(self, arg: Any = None):
        super().__init__(arg)
        self.needle = _text(arg, self.name)

    def evaluate(self, output: str, ctx: CheckContext) -> CheckResult:
        hay, needle = (output.casefold(), self.needle.casefold()) if self.fold else (output, self.needle)
        found = needle in hay
        return _result(found, f"{'found' if found else 'did not find'} {self.needle!r}")


@register
class Contains(_Contains):
    """contains: TEXT — the output contains TEXT (case-sensitive)."""

    name = "contains"


@register
class IContains(_Contains):
    """icontains: TEXT — the output contains TEXT, ignoring case."""

    name = "icontains"
    fold = True


class _ContainsMany(Check):
    scope = "answer"
    settles = "pass"
    fold = False
    need_all = False

    def __init__(self, arg: Any = None):
        super().__init__(arg)
        self.needles = _texts(arg, self.name)

    def evaluate(self, output: str, ctx: CheckContext) -> CheckResult:
        hay = output.casefold() if self.fold else output
        found = [n for n in self.needles if (n.casefold() if self.fold else n) in hay]
        missing = [n for n in self.needles if n not in found]
        passed = not missing if self.need_all else bool(found)
        reason = f"found {found}" + (f", missing {missing}" if missing else "")
        return _result(
            passed,
            reason,
            len(found) / len(self.needles) if self.need_all else float(passed),
            found=found,
            missing=missing,
        )


@register
class ContainsAny(_ContainsMany):
    """contains-any: [A, B] — the output contains at least one of the texts."""

    name = "contains-any"


@register
class IContainsAny(_ContainsMany):
    """icontains-any: [A, B] — at least one of the texts, ignoring case."""

    name = "icontains-any"
    fold = True


@register
class ContainsAll(_ContainsMany):
    """contains-all: [A, B] — the output contains every one of the texts."""

    name = "contains-all"
    need_all = True


@register
class IContainsAll(_ContainsMany):
    """icontains-all: [A, B] — every one of the texts, ignoring case."""

    name = "icontains-all"
    fold = True
    need_all = True


# ---------------------------------------------------------------- equality, prefix, regex


@register
class Equals(Check):
    """equals: VALUE — the output equals VALUE (outer whitespace ignored; a mapping/list compares as JSON)."""

    name = "equals"
    scope = "answer"

    def __init__(self, arg: Any = None):
        super().__init__(arg)
        if arg is None:
            raise ValueError("equals needs a value")

    def evaluate(self, output: str, ctx: CheckContext) -> CheckResult:
        if isinstance(self.arg, dict | list):
            try:
                parsed = json.loads(output)
            except ValueError:
                return _result(False, "output is not JSON, so it cannot equal the expected structure")
            same = parsed == self.arg
            return _result(same, "JSON equal" if same else "JSON differs from the expected value")
        expected = str(self.arg).strip()
        same = output.strip() == expected
        return _result(
            same, "equal" if same else f"expected {_short(expected)!r}, got {_short(output.strip())!r}"
        )


@register
class StartsWith(Check):
    """starts-with: TEXT — the output (after leading whitespace) starts with TEXT."""

    name = "starts-with"
    scope = "answer"

    def __init__(self, arg: Any = None):
        super().__init__(arg)
        self.prefix = _text(arg, self.name)

    def evaluate(self, output: str, ctx: CheckContext) -> CheckResult:
        ok = output.lstrip().startswith(self.prefix)
        return _result(ok, f"{'starts' if ok else 'does not start'} with {self.prefix!r}")


_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}


@register
class Regex(Check):
    """regex: PATTERN or {pattern: PATTERN, flags: "ims"} — a Python regular expression matches somewhere."""

    name = "regex"
    scope = "answer"

    def __init__(self, arg: Any = None):
        super().__init__(arg)
        pattern, flags = (
            (arg.get("pattern"), str(arg.get("flags", ""))) if isinstance(arg, dict) else (arg, "")
        )
        pattern = _text(pattern, self.name)
        bad = set(flags) - set(_FLAGS)
        if bad:
            raise ValueError(f"unknown regex flags {sorted(bad)}; valid: {sorted(_FLAGS)}")
        value = 0
        for f in flags:
            value |= _FLAGS[f]
        try:
            self.pattern = re.compile(pattern, value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
        # a match stands in any longer answer, unless the pattern looks past it (`$`, `\Z`, a lookahead)
        self.settles = "" if re.search(r"\$|\\Z|\(\?[=!]", pattern) else "pass"

    def evaluate(self, output: str, ctx: CheckContext) -> CheckResult:
        m = self.pattern.search(output)
        if m is None:
            return _result(False, f"no match for /{self.pattern.pattern}/")
        return _result(True, f"matched {_short(m.group(0))!r}", match=m.group(0))


# ---------------------------------------------------------------- counts


def count_words(text: str) -> int:
    cjk = sum(map(len, _CJK.findall(text)))  # one word each
    return cjk + len(_WORD.findall(_CJK.sub(" ", text) if cjk else text))


def count_sentences(text: str) -> int:
    return sum(1 for part in split_sentences(text) if _WORD.search(part))


def count_chars(text: str) -> int:
    return len(text.strip())


def _bound(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or value != int(value):
        raise ValueError(f"{what} must be a whole number ≥ 0, got {value!r}")
    return int(value)


class _Count(Check):
    scope = "answer"  # 50 words in all, not per sentence
    unit = ""
    counter = staticmethod(count_words)
    side = ""  # "min", "max" or "" for a {min, max} range

    def __init__(self, arg: Any = None):
        super().__init__(arg)
        if self.side:
            bounds = {self.side: arg}
        elif isinstance(arg, dict) and arg and set(arg) <= {"min", "max"}:
            bounds = arg
        else:
            raise ValueError(f"{self.name} needs {{min: N, max: M}} (either may be left out), got {arg!r}")
        self.min = _bound(bounds.get("min"), f"{self.name} min")
        self.max = _bound(bounds.get("max"), f"{self.name} max")
        if self.min is None and self.max is None:
            raise ValueError(f"{self.name} needs a number")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"{self.name}: min {self.min} is above max {self.max}")
        # a longer answer never counts fewer: a maximum exceeded stands, and so does a minimum reached alone
        self.settles = "fail" if self.max is not None else "pass"

    def settled(self, result: CheckResult) -> bool:
        if result.passed:
            return self.max is None
        return self.max is not None and result.details.get("count", 0) > self.max

    def slack(self, result: CheckResult) -> int:
        """Text of n characters adds at most n words or sentences (characters: trailing space may count too)."""
        n = result.details.get("count")
        if not isinstance(n, int) or self.unit == "characters":
            return 0
        safe = [self.min - n - 1] if self.min is not None and self.min > n else []  # before the minimum is reached
        safe += [self.max - n] if self.max is not None and self.max >= n else []  # before the maximum is exceeded
        return min(safe, default=0)

    def evaluate(self, output: str, ctx: CheckContext) -> CheckResult:
        n = self.counter(output)
        low_ok = self.min is None or n >= self.min
        high_ok = self.max is None or n <= self.max
        passed = low_ok and high_ok
        if passed:
            score = 1.0
        elif not high_ok:
            score = self.max / n if n else 0.0  # type: ignore[operator]
        else:
            score = n / self.min if self.min else 0.0
        span = f"{'' if self.min is None else self.min}..{'' if self.max is None else self.max}"
        return _result(
            passed, f"{n} {self.unit} ({'within' if passed else 'outside'} {span})", score, count=n
        )


def _count_family(unit: str, counter: Any, stem: str) -> None:
    for side in ("min", "max", ""):
        name = f"{side}_{stem}" if side else stem
        doc = (
            f"{name}: N — at {'least' if side == 'min' else 'most'} N {unit}"
            if side
            else f"{name}: {{min: N, max: M}} — the number of {unit} lies in the range"
        )
        register(
            type(
                f"Count_{name}",
                (_Count,),
                {"name": name, "unit": unit, "side": side, "counter": staticmethod(counter), "__doc__": doc},
            )
        )


_count_family("words", count_words, "words")
_count_family("sentences", count_sentences, "sentences")
_count_family("characters", count_chars, "chars")
