#!/usr/bin/env python3
"""Fit flywheel's prompt-injection model and write it as portable JSON (no pickle).

    python scripts/train_injection.py                       # → src/flywheel/checks/models/injection.json
    python scripts/train_injection.py --quick --out /tmp/m.json   # small and fast (tests)

Training data (see src/flywheel/checks/models/README.md):
- attacks: `tensor-trust/extraction_robustness_dataset.jsonl` (the free training file), plus the
  English and Chinese attacks written for flywheel (`checks/data/injection_attacks.jsonl`), plus those
  attacks hidden inside benign documents (indirect injection);
- benign: the training split of the questions in `cmrc2018-dev/queries.jsonl` and
  `askfsdl-scope/queries.jsonl` and the sentences of `mrpc/msr_paraphrase_train.txt` (the held-out
  split is never used here), the training file's access codes, hand-written hard benign requests and
  benign texts that share attack vocabulary (`checks/data/injection_benign_vocabulary.jsonl`: passwords, instructions, AI,
  code, translation), requests addressed to an assistant in the second person and the imperative
  (`checks/data/injection_assistant_requests.jsonl`: "What are your opening hours?", "Can you help me…",
  "你们的营业时间是？"), benign documents made of several such sentences, the training split of the
  passages in `cmrc2018-dev/corpus.jsonl` and of Python standard-library docstrings (technical
  prose), synthetic technical documents and tool results, and windows of all of these as
  `scan_sources` scores them.
Rows that also occur, word for word, in a Tensor Trust test file are dropped, so that the benchmark
never scores a training row; nothing else is read from the test files.

The model: TF-IDF of character 2-4-grams and of word 1-2-grams plus dense rule / shape features
(`flywheel.checks.injection_features`) of text normalised by `injection_features.normalise` — the one
normaliser scoring uses too (full-width forms, zero-width characters, words and Chinese spelt out
character by character) —, logistic regression, vocabulary pruned to the features with
the largest weights, decision threshold chosen on cross-validated scores (false-positive rate on
benign questions at most 0.5 %). Needs scikit-learn and numpy (training only).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import re
import sys
import time
from pathlib import Path

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from flywheel.checks import injection_corpus, injection_data
from flywheel.checks.injection import SENTENCE, windows
from flywheel.checks.injection_features import char_ngrams, dense, normalise, word_ngrams

_CJK = re.compile(r"[\u4e00-\u9fff]")

DEFAULT_OUT = ROOT / "src" / "flywheel" / "checks" / "models" / "injection.json"
TEST_FILES = ("hijacking_robustness_dataset.jsonl", "prompt_extraction_detection.jsonl")


def _documents(rng: random.Random, sentences: list[str], n: int, size: tuple[int, int]) -> list[str]:
    return [" ".join(rng.sample(sentences, rng.randint(*size))) for _ in range(n)] if len(sentences) > size[1] else []


def _embed(rng: random.Random, docs: list[str], attacks: list[str], n: int) -> list[str]:
    """Indirect injection: an attack sentence hidden at a random place in a benign document."""
    out = []
    for _ in range(min(n, len(docs))):
        doc, attack = rng.choice(docs), rng.choice(attacks)
        if rng.random() < 0.3:  # glued into the middle of a sentence, as text hidden in a page often is
            cut = rng.randint(0, len(doc))
            out.append(doc[:cut] + attack + doc[cut:])
            continue
        parts = SENTENCE.split(doc)
        parts.insert(rng.randint(0, len(parts)), attack)
        out.append(" ".join(parts))
    return out


def _windows(rng: random.Random, docs: list[str], n: int) -> list[str]:
    """Benign document windows, as `scan_sources` scores them."""
    pieces = [w for d in docs for w in windows(d)]
    return rng.sample(pieces, min(n, len(pieces)))


def _sentences(rng: random.Random, docs: list[str], n: int) -> list[str]:
    """Single sentences of benign documents (`scan_sources` also scores sentence by sentence)."""
    pieces = [p for d in docs for p in SENTENCE.split(d) if len(p) >= 8]
    return rng.sample(pieces, min(n, len(pieces)))


def collect(root: Path, seed: int, quick: bool) -> tuple[list[str], list[int], list[bool], dict]:
    """(texts, labels, is_question, source counts); is_question marks benign questions for the threshold."""
    rng = random.Random(seed)
    train_file = injection_data.tensor_trust(root, "extraction_robustness_dataset.jsonl")
    test_texts = set()
    for name in TEST_FILES:
        for row in injection_data.tensor_trust(root, name):
            test_texts.update(str(row.get(k, "")).strip() for k in ("attack", "access_code", "llm_output"))
    tt_attacks = list(dict.fromkeys(r["attack"] for r in train_file))
    tt_codes = list(dict.fromkeys(r["access_code"] for r in train_file))
    own_attacks = injection_corpus.attacks()
    indirect = [a for a in own_attacks if "AI" in a or "模型" in a or "助手" in a]
    benign = injection_data.benign_split(root, held=False)
    hard = injection_corpus.hard_benign()
    en_docs = _documents(rng, benign["mrpc"], 600, (3, 8))
    zh_docs = _documents(rng, benign["cmrc2018"], 300, (3, 6))
    passages = [p for p in injection_data.cmrc_passages(root) if not injection_data.held_out(p)]
    stdlib = [d for d in injection_data.stdlib_docs() if not injection_data.held_out(d)]
    tech = injection_corpus.technical_docs()
    zh_indirect = [a for a in own_attacks if _CJK.search(a)]
    hidden = (_embed(rng, en_docs[:300], indirect + tt_attacks, 250) + _embed(rng, zh_docs[:150], indirect, 150)
              + _embed(rng, _windows(rng, stdlib + tech, 400), indirect + tt_attacks, 400)
              + _embed(rng, _windows(rng, passages, 400), zh_indirect, 400)
              + _embed(rng, _sentences(rng, passages, 300), zh_indirect, 300))
    doc_windows = (_windows(rng, passages, 1500) + _windows(rng, stdlib, 1200) + tech
                   + _sentences(rng, passages, 1500) + _sentences(rng, stdlib, 1000))

    groups = [("tensor-trust extraction attacks", tt_attacks, 1, False),
              ("flywheel attacks (en+zh)", own_attacks, 1, False),
              ("attacks hidden in documents", hidden, 1, False),
              ("cmrc2018 questions (train split)", benign["cmrc2018"], 0, True),
              ("askfsdl questions (train split)", benign["askfsdl"], 0, True),
              ("mrpc sentences (train split)", benign["mrpc"], 0, True),
              ("tensor-trust training access codes", tt_codes, 0, False),
              ("flywheel hard benign (en+zh)", hard, 0, True),
              ("flywheel benign with attack vocabulary (en+zh)", injection_corpus.benign(), 0, True),
              ("flywheel requests addressed to an assistant (en+zh)", injection_corpus.assistant_requests(), 0,
               True),
              ("benign documents (mrpc / cmrc sentences)", en_docs + zh_docs, 0, False),
              ("benign passages: cmrc2018 corpus (train split), Python stdlib docstrings (train split)",
               passages + stdlib, 0, False),
              ("benign document windows and technical docs / tool results", doc_windows, 0, False),
              ("flywheel documentation sentences (en+zh)", injection_corpus.documentation(), 0, False)]
    texts, labels, question, counts = [], [], [], {}
    seen: set[str] = set()
    for name, items, label, is_q in groups:
        items = [t for t in dict.fromkeys(items) if t.strip() and t.strip() not in test_texts and t not in seen]
        if quick:
            items = rng.sample(items, min(len(items), 400))
        seen.update(items)
        counts[name] = len(items)
        texts += items
        labels += [label] * len(items)
        question += [is_q] * len(items)
    return texts, labels, question, counts


class Featurizer:
    """sklearn vectorizers over flywheel's own analyzers, so scoring can be re-done in pure Python."""

    def __init__(self, char_vocab: list[str] | None = None, word_vocab: list[str] | None = None,
                 max_char: int = 20000, max_word: int = 6000):
        self.char = TfidfVectorizer(analyzer=lambda n: list(char_ngrams(n).elements()), sublinear_tf=True, min_df=2,
                                    max_features=None if char_vocab else max_char,
                                    vocabulary=char_vocab, lowercase=False)
        self.word = TfidfVectorizer(analyzer=lambda n: list(word_ngrams(n).elements()), sublinear_tf=True, min_df=2,
                                    max_features=None if word_vocab else max_word,
                                    vocabulary=word_vocab, lowercase=False)
        self.dense_names: list[str] = []

    def _dense(self, raw: list[str], norm: list[str]) -> sparse.csr_matrix:
        rows = [dense(r, n) for r, n in zip(raw, norm, strict=True)]
        self.dense_names = self.dense_names or sorted(rows[0])
        return sparse.csr_matrix(np.array([[row[k] for k in self.dense_names] for row in rows]))

    def fit_transform(self, raw: list[str], norm: list[str]) -> sparse.csr_matrix:
        return sparse.hstack([self.char.fit_transform(norm), self.word.fit_transform(norm),
                              self._dense(raw, norm)]).tocsr()

    def transform(self, raw: list[str], norm: list[str]) -> sparse.csr_matrix:
        return sparse.hstack([self.char.transform(norm), self.word.transform(norm), self._dense(raw, norm)]).tocsr()

    def blocks(self) -> tuple[int, int]:
        return len(self.char.vocabulary_), len(self.word.vocabulary_)


def _weights(texts: list[str], y: np.ndarray) -> np.ndarray:
    """Equal total weight for each (script, label) group: Chinese attacks are outnumbered by Chinese
    benign text, and English by English, in different proportions; without this one language's
    attacks would be under-weighted."""
    cjk = np.array([bool(_CJK.search(t)) for t in texts])
    w = np.ones(len(texts))
    for lang in (False, True):
        for label in (0, 1):
            mask = (cjk == lang) & (y == label)
            if mask.any():
                w[mask] = len(texts) / (4 * mask.sum())
    return w


def _model(c: float) -> LogisticRegression:
    return LogisticRegression(C=c, max_iter=3000, solver="liblinear")


def _fit(x: sparse.csr_matrix, y: np.ndarray, c: float, w: np.ndarray) -> LogisticRegression:
    return _model(c).fit(x, y, sample_weight=w)


def _prune(feat: Featurizer, model: LogisticRegression, keep_char: int, keep_word: int) -> tuple[list[str], list[str]]:
    coef = model.coef_[0]
    n_char, n_word = feat.blocks()
    char_names = feat.char.get_feature_names_out()
    word_names = feat.word.get_feature_names_out()
    top_c = np.argsort(-np.abs(coef[:n_char]))[:keep_char]
    top_w = np.argsort(-np.abs(coef[n_char:n_char + n_word]))[:keep_word]
    return sorted(char_names[i] for i in top_c), sorted(word_names[i] for i in top_w)


def _threshold(scores: np.ndarray, y: np.ndarray, question: np.ndarray, max_fpr: float) -> float:
    """Best-F1 threshold among those whose false-positive rate on benign questions is at most max_fpr."""
    best_t, best_f1 = 0.5, -1.0
    neg_q = scores[(y == 0) & question]
    for t in np.linspace(0.05, 0.95, 91):
        if neg_q.size and (neg_q >= t).mean() > max_fpr:
            continue
        pred = scores >= t
        tp = int((pred & (y == 1)).sum())
        fp = int((pred & (y == 0)).sum())
        fn = int((~pred & (y == 1)).sum())
        f1 = 2 * tp / max(2 * tp + fp + fn, 1)
        if f1 > best_f1:
            best_t, best_f1 = float(t), f1
    return round(best_t, 3)


def export(feat: Featurizer, model: LogisticRegression, threshold: float, counts: dict, seed: int) -> dict:
    coef = model.coef_[0]
    n_char, n_word = feat.blocks()
    char_names = feat.char.get_feature_names_out()
    word_names = feat.word.get_feature_names_out()

    def table(names: np.ndarray, idf: np.ndarray, w: np.ndarray) -> dict[str, list[float]]:
        return {str(g): [round(float(i), 5), round(float(c), 5)] for g, i, c in zip(names, idf, w, strict=True)
                if abs(c) > 1e-9}

    return {
        "format": "flywheel-injection-v1",
        "created": dt.date.today().isoformat(),
        "seed": seed,
        "threshold": threshold,
        "intercept": round(float(model.intercept_[0]), 6),
        "char": table(char_names, feat.char.idf_, coef[:n_char]),
        "word": table(word_names, feat.word.idf_, coef[n_char:n_char + n_word]),
        "dense": {name: round(float(c), 6) for name, c in zip(feat.dense_names, coef[n_char + n_word:], strict=True)},
        "sources": counts,
    }


def train(root: Path, out: Path, seed: int = 0, quick: bool = False, c: float = 8.0,
          keep_char: int = 16000, keep_word: int = 4000) -> dict:
    t0 = time.time()
    texts, labels, question, counts = collect(root, seed, quick)
    norm = [normalise(t) for t in texts]
    y, q = np.array(labels), np.array(question)
    if quick:
        keep_char, keep_word = 3000, 800
    w = _weights(texts, y)
    feat = Featurizer(max_char=keep_char * 3, max_word=keep_word * 3)
    first = _fit(feat.fit_transform(texts, norm), y, c, w)
    char_vocab, word_vocab = _prune(feat, first, keep_char, keep_word)
    feat = Featurizer(char_vocab, word_vocab)
    x = feat.fit_transform(texts, norm)
    folds = StratifiedKFold(n_splits=3 if quick else 5, shuffle=True, random_state=seed)
    cv = cross_val_predict(_model(c), x, y, cv=folds, method="predict_proba", params={"sample_weight": w})[:, 1]
    threshold = _threshold(cv, y, q, max_fpr=0.005)
    model = _fit(x, y, c, w)
    data = export(feat, model, threshold, counts, seed)
    _verify(data, texts[:: max(1, len(texts) // 200)], model, feat)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    pred = cv >= threshold
    report = {"out": str(out), "bytes": out.stat().st_size, "rows": len(texts), "attacks": int(y.sum()),
              "threshold": threshold, "cv_recall": round(float(pred[y == 1].mean()), 4),
              "cv_fpr_questions": round(float(pred[(y == 0) & q].mean()), 4),
              "cv_fpr_all_benign": round(float(pred[y == 0].mean()), 4), "seconds": round(time.time() - t0, 1),
              "sources": counts}
    return report


def _verify(data: dict, sample: list[str], model: LogisticRegression, feat: Featurizer) -> None:
    """The exported JSON must score exactly like the fitted scikit-learn model."""
    from flywheel.checks.injection import InjectionModel

    portable = InjectionModel(data)
    expected = model.predict_proba(feat.transform(sample, [normalise(t) for t in sample]))[:, 1]
    got = np.array([portable.score(t) for t in sample])
    worst = float(np.abs(expected - got).max())
    if worst > 1e-3:
        raise SystemExit(f"exported model disagrees with scikit-learn by {worst:.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", help="shared data folder (default: ../shared/data)")
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="small sample and vocabulary (for tests)")
    ap.add_argument("--C", type=float, default=8.0, dest="c")
    args = ap.parse_args()
    root = injection_data.data_dir(args.data)
    if root is None:
        raise SystemExit("shared data folder not found: pass --data PATH or set FLYWHEEL_DATA_DIR")
    print(json.dumps(train(root, Path(args.out), args.seed, args.quick, args.c), indent=2))


if __name__ == "__main__":
    main()
