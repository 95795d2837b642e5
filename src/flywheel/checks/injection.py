"""Prompt-injection detection (direct and indirect) and the `injection` and `prompt-leak` checks.

    - injection                          # the text (a user's input, for an input guard) and ctx.sources
    - injection: {threshold: 0.7, sources: false}
    - prompt-leak                        # the answer reveals neither ctx.system_prompt nor ctx.secrets
    - prompt-leak: {secrets: [hunter2], min_overlap: 0.5}

Injection is scored by a small logistic-regression model over character and word n-grams plus rule
and shape features (see `injection_features`), shipped as portable JSON in `checks/models/` (no
pickle: loading it runs no code) and fitted by `scripts/train_injection.py`, both on text normalised by
`injection_features.normalise` (spelt-out words such as `i g n o r e` or `忽 略 之 前` joined, full-width
and zero-width characters undone). Scoring is pure Python,
about 1 ms for a short prompt. Indirect injection: `scan_sources(sources)` scores each retrieved
document or tool result line by line and sentence by sentence with a second model trained for
retrieved text (`injection_sources`), so one planted instruction in a long page is not diluted by the
rest of it, and licence terms or e-mails that tell their human reader what to do are not flagged.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flywheel.checks.base import Check, CheckContext, register
from flywheel.checks.injection_features import char_ngrams, dense, normalise, rule_hits, word_ngrams
from flywheel.checks.injection_leak import LeakDetector
from flywheel.checks.injection_sources import SourcesModel, sources_model
from flywheel.types import CheckResult

MODEL_PATH = Path(__file__).parent / "models" / "injection.json"
WINDOW_CHARS = 400  # the direct model's training script cuts documents into windows of about this size
MAX_SOURCE_CHARS = 200_000  # per source; the rest is not scanned
# The model was trained on windows cut this way (scripts/train_injection.py): keep it with the model.
SENTENCE = re.compile(r"(?<=[.!?])\s+|(?<=[。！？\n])\s*")  # "flywheel.yaml" is not two sentences


class InjectionModel:
    """The portable model: TF-IDF tables (n-gram -> [idf, weight]), dense weights, intercept, threshold."""

    def __init__(self, data: dict[str, Any]):
        if data.get("format") != "flywheel-injection-v1":
            raise ValueError(f"not a flywheel injection model (format {data.get('format')!r})")
        self.char: dict[str, list[float]] = data["char"]
        self.word: dict[str, list[float]] = data["word"]
        self.dense: dict[str, float] = data["dense"]
        self.intercept = float(data["intercept"])
        self.threshold = float(data["threshold"])
        self.sources: dict[str, int] = data.get("sources", {})
        blob = json.dumps([self.intercept, self.threshold, len(self.char), len(self.word), self.dense], sort_keys=True)
        self.version = hashlib.sha256(blob.encode()).hexdigest()[:12]

    @classmethod
    def load(cls, path: str | Path = MODEL_PATH) -> InjectionModel:
        with open(path, encoding="utf-8") as fh:
            return cls(json.load(fh))

    @staticmethod
    def _block(counts: dict[str, int], table: dict[str, list[float]]) -> float:
        num = sq = 0.0
        for gram, n in counts.items():
            entry = table.get(gram)
            if entry is None:
                continue
            w = (1.0 + math.log(n)) * entry[0]
            num += w * entry[1]
            sq += w * w
        return num / math.sqrt(sq) if sq else 0.0

    def score(self, text: str) -> float:
        """Probability-like score in 0..1 that the text is an injection attempt."""
        norm = normalise(text)
        if not norm:
            return 0.0
        z = self.intercept + self._block(char_ngrams(norm), self.char) + self._block(word_ngrams(norm), self.word)
        z += sum(self.dense.get(name, 0.0) * value for name, value in dense(text, norm).items())
        return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))


@functools.lru_cache(maxsize=4)
def default_model(path: str = str(MODEL_PATH)) -> InjectionModel:
    return InjectionModel.load(path)


@dataclass
class Verdict:
    score: float
    flagged: bool
    rules: list[str] = field(default_factory=list)


def _as_text(value: Any) -> str:
    """Text of a str, bytes (undecodable bytes replaced) or a record with `.text` (a Chunk or Hit)."""
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, str):
        return value
    text = getattr(value, "text", None)
    return text if isinstance(text, str) else str(value)


def windows(text: str, size: int = WINDOW_CHARS) -> list[str]:
    """Consecutive groups of sentences of about `size` characters (a long sentence is cut)."""
    out, cur = [], ""
    for sentence in SENTENCE.split(text[:MAX_SOURCE_CHARS]):
        while len(sentence) > size:
            out.append((cur + " " + sentence[:size]).strip())
            cur, sentence = "", sentence[size:]
        if len(cur) + len(sentence) > size and cur:
            out.append(cur.strip())
            cur = ""
        cur += " " + sentence
    if cur.strip():
        out.append(cur.strip())
    return out


class InjectionDetector:
    """The direct model (text a user sends) and the sources model (retrieved text), each with a decision
    threshold (the model's own unless given)."""

    def __init__(self, threshold: float | None = None, model: InjectionModel | None = None,
                 sources_threshold: float | None = None, sources: SourcesModel | None = None):
        self.model = model or default_model()
        self.threshold = self.model.threshold if threshold is None else float(threshold)
        self.sources_model = sources or sources_model()
        self.sources_threshold = self.sources_model.threshold if sources_threshold is None else float(sources_threshold)

    def detect(self, text: Any) -> Verdict:
        text = _as_text(text)
        score = self.model.score(text)
        return Verdict(score, score >= self.threshold, rule_hits(text) if score >= self.threshold else [])

    def source_unit(self, source: Any) -> tuple[float, str]:
        """The highest-scoring line or sentence of a retrieved source and its score ((0, "") when empty)."""
        return max(self.sources_model.scores(_as_text(source)), default=(0.0, ""))

    def source_score(self, source: Any) -> float:
        """How likely a retrieved source carries instructions planted for an AI (its best unit's score)."""
        return self.source_unit(source)[0]

    def scan_sources(self, sources: Iterable[Any]) -> list[int]:
        """Indices of the sources (retrieved documents, tool results) that carry an injection."""
        return [i for i, s in enumerate(sources) if self.source_score(s) >= self.sources_threshold]


@functools.lru_cache(maxsize=8)
def detector(threshold: float | None = None, sources_threshold: float | None = None) -> InjectionDetector:
    return InjectionDetector(threshold, sources_threshold=sources_threshold)


def detect_injection(text: str, threshold: float | None = None) -> Verdict:
    return detector(threshold).detect(text)


def scan_sources(sources: Iterable[Any], threshold: float | None = None) -> list[int]:
    """Indices of the sources that carry an injection (for the docs-QA app's retrieved context); `threshold`
    is the sources model's (its own unless given)."""
    return detector(None, threshold).scan_sources(sources)


def _options(arg: Any, allowed: set[str], name: str) -> dict[str, Any]:
    if arg is None or arg is True:
        return {}
    if not isinstance(arg, dict):
        raise TypeError(f"{name} takes a mapping of options ({', '.join(sorted(allowed))}), got {arg!r}")
    unknown = set(arg) - allowed - {"on_fail"}
    if unknown:
        raise ValueError(f"unknown {name} option(s): {', '.join(sorted(unknown))} (valid: {', '.join(sorted(allowed))})")
    return dict(arg)


def _unit_interval(value: Any, name: str) -> float | None:
    if value is not None and not (isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < 1):
        raise ValueError(f"injection {name} must be a number between 0 and 1, got {value!r}")
    return None if value is None else float(value)


@register
class InjectionCheck(Check):
    """injection: {threshold, sources, sources_threshold} (thresholds between 0 and 1, sources: true or false).

    Passes when neither the text nor (sources: true) ctx.sources carry a prompt-injection attempt."""

    name = "injection"

    def __init__(self, arg: Any = None):
        super().__init__(arg)
        opts = _options(arg, {"threshold", "sources", "sources_threshold"}, self.name)
        threshold = _unit_interval(opts.get("threshold"), "threshold")
        sources_threshold = _unit_interval(opts.get("sources_threshold"), "sources_threshold")
        sources = opts.get("sources", True)
        if not isinstance(sources, bool):
            raise TypeError(f"injection sources must be true or false, got {sources!r}")
        self.sources = sources
        self.detector = detector(threshold, sources_threshold)

    def definition(self) -> dict[str, Any]:
        return {**super().definition(), "model": self.detector.model.version,
                "sources_model": self.detector.sources_model.version}

    def flag_sources(self, sources: list[str]) -> list[int]:
        """Indices of retrieved sources carrying injected instructions (the `sources:` guard stage)."""
        return self.detector.scan_sources(sources)

    def evaluate(self, output: str, ctx: CheckContext) -> CheckResult:
        det = self.detector
        verdict = det.detect(output) if output else Verdict(0.0, False)
        units = [det.source_unit(s) for s in ctx.sources] if self.sources and ctx.sources else []
        flagged = [i for i, (score, _) in enumerate(units) if score >= det.sources_threshold]
        worst = max((score for score, _ in units), default=0.0)
        details: dict[str, Any] = {"score": round(verdict.score, 4), "threshold": det.threshold,
                                   "rules": verdict.rules, "flagged_sources": flagged,
                                   "sources_score": round(worst, 4), "sources_threshold": det.sources_threshold}
        if verdict.flagged:
            reason = f"prompt injection in the text (score {verdict.score:.2f})"
        elif flagged:
            first = units[flagged[0]][1]
            snippet = first if len(first) <= 80 else first[:77] + "..."
            reason = (f"instructions hidden in source(s) {', '.join(f'[{i + 1}]' for i in flagged)} "
                      f"(score {units[flagged[0]][0]:.2f}: \"{snippet}\")")
        else:
            return CheckResult(passed=True, score=1.0 - max(verdict.score, worst), reason="no injection found",
                               details=details)
        return CheckResult(passed=False, score=1.0 - (verdict.score if verdict.flagged else worst), reason=reason,
                           details=details)


@register
class PromptLeakCheck(Check):
    """prompt-leak: {secrets: [TEXT, ...], min_overlap: 0..1}.

    Passes when the output reveals neither the system prompt (ctx.system_prompt) nor any secret (ctx.secrets
    and the `secrets` listed here)."""

    name = "prompt-leak"

    def __init__(self, arg: Any = None):
        super().__init__(arg)
        opts = _options(arg, {"secrets", "min_overlap"}, self.name)
        secrets = opts.get("secrets", [])
        if not isinstance(secrets, list) or not all(isinstance(s, str) for s in secrets):
            raise ValueError(f"prompt-leak secrets must be a list of strings, got {secrets!r}")
        self.secrets = secrets
        self.leaks = LeakDetector(min_overlap=float(opts.get("min_overlap", LeakDetector.min_overlap)))

    def evaluate(self, output: str, ctx: CheckContext) -> CheckResult:
        secrets = [*ctx.secrets, *self.secrets]
        if not (ctx.system_prompt or "").strip() and not any(s.strip() for s in secrets):
            return CheckResult(passed=True, score=1.0, reason="nothing to check: no system prompt or secrets given",
                               details={"leaks": [], "checked": False})
        found = self.leaks.find(_as_text(output), ctx.system_prompt, secrets)
        details = {"leaks": [f.as_dict() for f in found]}
        if not found:
            return CheckResult(passed=True, score=1.0, reason="no system prompt or secret revealed", details=details)
        worst = max(f.score for f in found)
        kinds = sorted({f"{f.what} ({f.how})" for f in found})
        return CheckResult(passed=False, score=1.0 - worst, reason=f"the output reveals {', '.join(kinds)}",
                           details=details)
