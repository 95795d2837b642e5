"""The Presidio backend: Presidio's AnalyzerEngine with its model-free NoOpNlpEngine (no spaCy model).

Presidio is an optional dependency (`pip install presidio-analyzer`). Importing it pulls in spaCy and,
through its transformers engine module, torch, which costs seconds; so nothing here is imported
until a `backend="presidio"` analyzer is first used, and the engine is built once per process.

The registry is Presidio's predefined recognizers, minus the ones flywheel replaces (phone, date,
URL, US driver's licence, credit card: weaker on real text, see `flywheel bench guards`), plus every
flywheel recognizer wrapped as a Presidio `EntityRecognizer`. The result: Presidio's extra entity
types (crypto wallets, UK NHS, US ITIN / passport / bank numbers, MAC addresses, country IDs …)
together with ours, through one engine that users can extend with their own Presidio recognizers.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from flywheel.checks.pii_recognizers import PiiEntity, Recognizer

# Presidio recognizers that flywheel's own recognizers replace.
REPLACED = ("PhoneRecognizer", "DateRecognizer", "UrlRecognizer", "UsLicenseRecognizer", "CreditCardRecognizer")

_lock = threading.Lock()
_engines: dict[tuple[str, ...], Any] = {}


def available() -> bool:
    try:
        import importlib.util

        return importlib.util.find_spec("presidio_analyzer") is not None
    except (ImportError, ValueError):
        return False


def _no_network() -> None:
    # tldextract (used by Presidio's URL and email validation) downloads the public-suffix list on
    # first use unless told not to; a guard must never reach the network.
    os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", " ")


def stock_engine() -> Any:
    """Presidio exactly as shipped, regex only: the peer that `flywheel bench guards` compares against."""
    return _engine(("stock",), [], replace=False)


def engine(recognizers: list[Recognizer]) -> Any:
    """Presidio's engine with flywheel's recognizers in place of the replaced ones (cached per set)."""
    return _engine(tuple(r.name for r in recognizers), recognizers, replace=True)


def _engine(key: tuple[str, ...], recognizers: list[Recognizer], replace: bool) -> Any:
    with _lock:
        if key in _engines:
            return _engines[key]
        _no_network()
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NoOpNlpEngine

        nlp = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "no_op"}])
        registry = RecognizerRegistry(supported_languages=["en"])
        registry.load_predefined_recognizers(languages=["en"], nlp_engine=nlp)
        if replace:
            for name in REPLACED:
                registry.remove_recognizer(name)
            for rec in recognizers:
                registry.add_recognizer(_adapter(rec))
        eng = AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=["en"])
        _engines[key] = eng
        return eng


def _adapter(rec: Recognizer) -> Any:
    """Wrap a flywheel recognizer as a Presidio EntityRecognizer (defined lazily: Presidio is optional)."""
    from presidio_analyzer import EntityRecognizer, RecognizerResult

    class FlywheelRecognizer(EntityRecognizer):
        def __init__(self, inner: Recognizer):
            self.inner = inner
            super().__init__(supported_entities=[inner.entity], name=f"flywheel_{inner.name}",
                             supported_language="en")

        def load(self) -> None:
            pass

        def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[Any]:
            if entities and self.inner.entity not in entities:
                return []
            return [RecognizerResult(e.type, e.start, e.end, e.score) for e in self.inner.find(text)]

    return FlywheelRecognizer(rec)


def analyze(eng: Any, text: str, entities: list[str] | None = None) -> list[PiiEntity]:
    """Run a Presidio engine and convert its results (every score; the caller applies its threshold)."""
    results = eng.analyze(text=text, language="en", entities=entities or None, score_threshold=0.0)
    out = []
    for r in results:
        name = (r.recognition_metadata or {}).get("recognizer_name", "presidio")
        out.append(PiiEntity(r.entity_type, r.start, r.end, float(r.score), text[r.start:r.end], name))
    return out
