"""The candidate verifier (shipped JSON model) and the in-process vector index."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from flywheel.cache import vectors
from flywheel.cache.vectors import VectorIndex
from flywheel.cache.verifier import FEATURES, WEIGHTS_PATH, Verifier, default_verifier, features, same_words


def test_the_shipped_model_is_plain_json_over_the_current_features() -> None:
    weights = json.loads(WEIGHTS_PATH.read_text(encoding="utf-8"))  # JSON, not a pickle
    assert weights["features"] == list(FEATURES)
    assert "MRPC" in weights["trained_on"]
    assert 0 < weights["threshold"] < 1
    v = Verifier(weights)
    assert v.threshold == weights["threshold"]
    with pytest.raises(ValueError, match="re-run scripts/train_cache_verifier.py"):
        Verifier({**weights, "features": list(FEATURES[:-1])})


@pytest.mark.parametrize("cached, query", [
    ("The Nasdaq index rose 7.42 points to 1,653.44.", "The Nasdaq index rose 14.35 points to 1,617.91."),
    ("Is the meeting at 2 pm on Friday?", "Is the meeting at 3 pm on Friday?"),
    ("Does the premium plan include phone support?", "Does the premium plan not include phone support?"),
    ("The court upheld the ban on Tuesday.", "The court did not uphold the ban on Tuesday."),
])
def test_rejects_near_duplicates_differing_in_a_number_or_negation(cached: str, query: str) -> None:
    assert not default_verifier().accept(query, cached, 0.97)


def test_same_words_are_accepted_by_rule() -> None:
    assert same_words("What is the capital of France?", "what's the capital of france")
    assert same_words("I can't log in.", "i cannot log in")
    assert not same_words("Is it open?", "Is it not open?")
    assert default_verifier().probability("what's the capital of france", "What is the capital of France?", 0.9) == 1.0


def test_probability_falls_when_a_number_changes() -> None:
    v = default_verifier()
    same = v.probability("Does the starter plan cost 20 dollars a month?", "Does the starter plan cost "
                         "20 dollars per month?", 0.97)
    changed = v.probability("Does the starter plan cost 25 dollars a month?", "Does the starter plan cost "
                            "20 dollars per month?", 0.97)
    assert changed < same


def test_logistic_models_load_too() -> None:
    n = len(FEATURES)
    coef = [0.0] * n
    coef[FEATURES.index("numbers_mismatch")] = -3.0
    v = Verifier({"kind": "logistic", "features": list(FEATURES), "mean": [0.0] * n, "scale": [1.0] * n,
                  "coef": coef, "intercept": 2.0, "threshold": 0.5})
    assert v.accept("Open at 9 am?", "Opens at 9 am?", 0.9)
    assert not v.accept("Open at 9 am?", "Open at 10 am?", 0.9)


def test_features_are_finite_for_odd_input() -> None:
    for a, b in [("", ""), ("???", "!!!"), ("他不是学生", "他是学生"), ("x" * 5000, "y")]:
        f = features(a, b, 0.5)
        assert len(f) == len(FEATURES) and all(np.isfinite(f))
    assert features("他不是学生", "他是学生", 0.9)[FEATURES.index("negation_mismatch")] == 1.0


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_index_prefilter_finds_what_an_exact_scan_finds() -> None:
    rng = np.random.default_rng(3)
    n, dim = vectors.EXACT_BELOW * 2, 64
    data = _unit(rng, n, dim)
    index = VectorIndex(dim)
    index.add([str(i) for i in range(n)], data)
    for i in rng.integers(0, n, size=50):
        noise = rng.standard_normal(dim).astype(np.float32) * rng.uniform(0.02, 0.12)
        query = data[i] + noise
        query /= np.linalg.norm(query)
        exact = data @ query
        best = int(np.argmax(exact))
        found = index.search(query, min_cosine=0.75, k=3)
        if exact[best] >= 0.75:
            assert found and found[0][0] == str(best) and found[0][1] == pytest.approx(exact[best], abs=1e-5)
        else:
            assert found == []


def test_index_skips_expired_and_removed_rows_and_compacts() -> None:
    rng = np.random.default_rng(4)
    data = _unit(rng, 3, 16)
    index = VectorIndex(16)
    now = time.time()
    index.add(["a", "b", "c"], data, [None, now - 1, now + 60])
    assert [r[0] for r in index.search(data[0], min_cosine=0.99, now=now)] == ["a"]
    assert index.search(data[1], min_cosine=0.99, now=now) == []  # expired
    index.remove("a")
    assert index.search(data[0], min_cosine=0.99, now=now) == []
    index.compact(now)
    assert len(index) == 1 and index.search(data[2], min_cosine=0.99, now=now)[0][0] == "c"
