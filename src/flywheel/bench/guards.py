"""`flywheel bench guards`: PII, prompt-injection and prompt-leak detectors, side by side with their peers.

PII (`presidio-synth/synth_dataset_v2.json`): precision / recall / F1 per pattern entity with span
overlap (a predicted span is right when it overlaps a gold span of the same type; a gold span is found
when a prediction of its type overlaps it), ours and stock Presidio regex-only (NoOpNlpEngine, default
recognizers, every score) in the same run. Label map: the dataset's DOMAIN_NAME is Presidio's URL; the
other eight types share their names. Speed: the texts are packed into documents of at least 1 KB, and
the p50 of milliseconds per KB is reported. Chinese PII: `tests/data/pii_zh.jsonl` (written for flywheel).

Injection (`tensor-trust/hijacking_robustness_dataset.jsonl`): positives are the distinct `attack`
texts; negatives are the distinct access codes plus the held-out split of the benign questions and
sentences (cmrc2018, askfsdl, MRPC; see `checks/injection_data.py`), never trained on. `fpr_benign`
is over those benign texts only. The baseline (character TF-IDF + logistic regression fitted on the
free training file plus the training split of the benign texts) is fitted and scored in the same run.
Indirect injection (`indirect`, the `sources:` guard stage): flywheel's own held-out set of retrieved
sources (`checks/data/indirect_eval.jsonl`, see the README next to it): English and Chinese e-mails,
tables, web pages, code and licences, clean or with an instruction to an AI planted at the start,
middle or end; carriers and attack phrasings differ from the training ones. Needs no shared data.
Obfuscation (`obfuscation`): the injection sets above, the Chinese and assistant-question test sets and
benign look-alikes (`tests/data/injection_benign_lookalikes.jsonl`: product codes, versions, passwords in
prose, gamer tags in leetspeak, Russian, Greek, science notation, accented words), each spelt out letter by
letter (spaces, hyphens, dots, underscores, zero-width or full-width spaces), in full-width letters, with
Cyrillic or Greek homoglyphs, in leetspeak, with diacritics or a mix (`bench/injection_obfuscation.py`):
detection and false-positive rates per obfuscation, ours and the baseline's side by side; and the indirect
set with the same obfuscations applied to every source (`indirect_obfuscated`).

Leak (`tensor-trust/prompt_extraction_detection.jsonl`): the check gets the row's access code as a
secret and, when the other Tensor Trust files hold defences with the same access code, each of their
pre-prompts as the system prompt (a leak of any counts). `leak_secret_only` uses the access code
alone. The baseline is "the access code occurs in the output" (case-insensitive).
"""

from __future__ import annotations

import functools
import json
import statistics
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import click

from flywheel.checks import injection_data
from flywheel.errors import UserError

PATTERN_ENTITIES = ("CREDIT_CARD", "DATE_TIME", "EMAIL_ADDRESS", "IBAN_CODE", "IP_ADDRESS", "PHONE_NUMBER", "URL",
                    "US_DRIVER_LICENSE", "US_SSN")
LABEL_MAP = {"DOMAIN_NAME": "URL"}
TESTS_DATA = Path(__file__).resolve().parents[3] / "tests" / "data"
INDIRECT_EVAL = Path(__file__).resolve().parents[1] / "checks" / "data" / "indirect_eval.jsonl"
LOOKALIKES = TESTS_DATA / "injection_benign_lookalikes.jsonl"


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / (p + r), 4) if p + r else 0.0}


def _overlaps(a: tuple[str, int, int], b: tuple[str, int, int]) -> bool:
    return a[0] == b[0] and a[1] < b[2] and b[1] < a[2]


def span_scores(gold: list[list[tuple[str, int, int]]], pred: list[list[tuple[str, int, int]]],
                types: tuple[str, ...]) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Per-type and micro precision / recall / F1 with span-overlap matching."""
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for g_doc, p_doc in zip(gold, pred, strict=True):
        g_doc = [g for g in g_doc if g[0] in types]
        p_doc = [p for p in p_doc if p[0] in types]
        for p in p_doc:
            (tp if any(_overlaps(p, g) for g in g_doc) else fp)[p[0]] += 1
        for g in g_doc:
            if not any(_overlaps(g, p) for p in p_doc):
                fn[g[0]] += 1
    per = {t: {**_prf(tp[t], fp[t], fn[t]), "support": tp[t] + fn[t]} for t in types if tp[t] + fn[t] + fp[t]}
    micro = _prf(sum(tp.values()), sum(fp.values()), sum(fn.values()))
    return per, micro


def _kb_docs(texts: list[str]) -> list[str]:
    docs, cur = [], []
    for t in texts:
        cur.append(t)
        if len("\n".join(cur).encode()) >= 1024:
            docs.append("\n".join(cur))
            cur = []
    return docs


def _ms_per_kb(fn: Any, docs: list[str]) -> float:
    fn(docs[0])  # warm caches and compiled patterns
    times = []
    for doc in docs:
        t0 = time.perf_counter()
        fn(doc)
        times.append((time.perf_counter() - t0) * 1000 / (len(doc.encode()) / 1024))
    return round(statistics.median(times), 3)


def bench_pii(root: Path, presidio: bool) -> dict[str, Any]:
    from flywheel.checks import pii_presidio
    from flywheel.checks.pii import PiiAnalyzer, analyzer

    data = json.loads((root / "presidio-synth" / "synth_dataset_v2.json").read_text(encoding="utf-8"))
    texts = [row["full_text"] for row in data]
    gold = [[(LABEL_MAP.get(s["entity_type"], s["entity_type"]), s["start_position"], s["end_position"])
             for s in row["spans"]] for row in data]
    ours = analyzer()
    pred = [[(e.type, e.start, e.end) for e in ours.analyze(t)] for t in texts]
    per, micro = span_scores(gold, pred, PATTERN_ENTITIES)
    docs = _kb_docs(texts)
    out: dict[str, Any] = {"pii": per, "pii_micro_f1": micro["f1"], "pii_micro": micro,
                           "pii_p50_ms_per_kb": _ms_per_kb(ours.analyze, docs), "pii_label_map": LABEL_MAP,
                           }
    if presidio and not pii_presidio.available():
        from flywheel.bench import missing_peer

        out["presidio"] = missing_peer("presidio", "pip install presidio-analyzer")
    if presidio and pii_presidio.available():
        stock = pii_presidio.stock_engine()
        stock_pred = [[(e.type, e.start, e.end) for e in pii_presidio.analyze(stock, t)] for t in texts]
        s_per, s_micro = span_scores(gold, stock_pred, PATTERN_ENTITIES)
        for t in per:
            per[t]["presidio_f1"] = s_per.get(t, {}).get("f1", 0.0)
        out["presidio_micro_f1"] = s_micro["f1"]
        out["presidio_p50_ms_per_kb"] = _ms_per_kb(lambda d: pii_presidio.analyze(stock, d), docs)
        ours_in_presidio = PiiAnalyzer(backend="presidio")
        b_pred = [[(e.type, e.start, e.end) for e in ours_in_presidio.analyze(t)] for t in texts]
        out["pii_presidio_backend"] = {"micro_f1": span_scores(gold, b_pred, PATTERN_ENTITIES)[1]["f1"],
                                       "p50_ms_per_kb": _ms_per_kb(ours_in_presidio.analyze, docs)}
    zh_path = TESTS_DATA / "pii_zh.jsonl"
    if zh_path.exists():
        rows = [json.loads(line) for line in zh_path.read_text(encoding="utf-8").splitlines() if line.strip()]
        z_gold = [[(s["type"], s["start"], s["end"]) for s in r["spans"]] for r in rows]
        z_pred = [[(e.type, e.start, e.end) for e in ours.analyze(r["text"])] for r in rows]
        types = tuple(sorted({g[0] for doc in z_gold for g in doc} | {p[0] for doc in z_pred for p in doc}))
        z_per, z_micro = span_scores(z_gold, z_pred, types)
        out["pii_zh"] = {**z_per, "micro": z_micro, "texts": len(rows)}
    return out


@functools.lru_cache(maxsize=2)
def _baseline(root: Path) -> Any:
    """Character TF-IDF + logistic regression on the free training file and the benign training split."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    train = injection_data.tensor_trust(root, "extraction_robustness_dataset.jsonl")
    pos = list(dict.fromkeys(r["attack"] for r in train))
    neg = [t for texts in injection_data.benign_split(root, held=False).values() for t in texts]
    neg += list(dict.fromkeys(r["access_code"] for r in train))
    model = make_pipeline(TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True),
                          LogisticRegression(C=10, class_weight="balanced", max_iter=2000))
    model.fit(pos + neg, [1] * len(pos) + [0] * len(neg))
    return model


def bench_injection(root: Path, baseline: bool) -> dict[str, Any]:
    from flywheel.checks.injection import default_model, detector

    det = detector()
    model = default_model()
    rows = injection_data.tensor_trust(root, "hijacking_robustness_dataset.jsonl")
    attacks = list(dict.fromkeys(r["attack"] for r in rows))
    codes = list(dict.fromkeys(r["access_code"] for r in rows))
    held = injection_data.benign_split(root, held=True)
    benign = [t for texts in held.values() for t in texts]
    times: list[float] = []

    def score(text: str) -> float:
        t0 = time.perf_counter()
        s = model.score(text)
        times.append((time.perf_counter() - t0) * 1000)
        return s

    flag_a = [score(t) >= det.threshold for t in attacks]
    flag_c = [score(t) >= det.threshold for t in codes]
    flag_b = {name: [score(t) >= det.threshold for t in texts] for name, texts in held.items()}
    tp = sum(flag_a)
    fp = sum(flag_c) + sum(sum(v) for v in flag_b.values())
    out: dict[str, Any] = {"injection": {
        **_prf(tp, fp, len(attacks) - tp),
        "fpr_benign": round(sum(sum(v) for v in flag_b.values()) / max(len(benign), 1), 5),
        "fpr_by_source": {k: round(sum(v) / max(len(v), 1), 5) for k, v in flag_b.items()},
        "fpr_access_codes": round(sum(flag_c) / len(codes), 4),
        "p50_ms": round(statistics.median(times), 3), "p99_ms": round(sorted(times)[int(0.99 * len(times))], 3),
        "threshold": det.threshold, "attacks": len(attacks), "access_codes": len(codes), "benign": len(benign),
        }}
    if baseline:
        try:
            base = _baseline(root)
        except ImportError:
            base = None
        if base is None:
            from flywheel.bench import missing_peer

            out["injection"]["baseline"] = missing_peer("tfidf-logreg", "pip install scikit-learn")
        else:
            neg = codes + benign
            pa = base.predict(attacks)
            pn = base.predict(neg)
            b = _prf(int(pa.sum()), int(pn.sum()), int(len(attacks) - pa.sum()))
            out["injection"]["baseline_f1"] = b["f1"]
            out["injection"]["baseline"] = {**b, "fpr_benign": round(float(base.predict(benign).mean()), 5)}
    zh_path = TESTS_DATA / "injection_zh.jsonl"
    if zh_path.exists():
        zh = [json.loads(line) for line in zh_path.read_text(encoding="utf-8").splitlines() if line.strip()]
        flags = [(r["label"], det.detect(r["text"]).flagged) for r in zh]
        z_tp = sum(1 for y, f in flags if y and f)
        z_fp = sum(1 for y, f in flags if not y and f)
        z_fn = sum(1 for y, f in flags if y and not f)
        out["injection_zh"] = {**_prf(z_tp, z_fp, z_fn), "texts": len(zh)}
    return out


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def bench_obfuscation(root: Path, baseline: bool) -> dict[str, Any]:
    """Detection and false-positive rates on the benchmark's sets with each obfuscation applied."""
    from flywheel.bench.injection_obfuscation import evaluate
    from flywheel.checks.injection import default_model, detector

    det = detector()
    model = default_model()
    attacks = list(dict.fromkeys(r["attack"] for r in injection_data.tensor_trust(
        root, "hijacking_robustness_dataset.jsonl")))
    sets: dict[str, tuple[list[str], int]] = {"en_attacks": (attacks, 1)}
    zh = _jsonl(TESTS_DATA / "injection_zh.jsonl") if (TESTS_DATA / "injection_zh.jsonl").exists() else []
    if zh:
        sets["zh_attacks"] = ([r["text"] for r in zh if r["label"]], 1)
        sets["zh_benign"] = ([r["text"] for r in zh if not r["label"]], 0)
    sets.update({f"benign_{name}": (texts, 0) for name, texts in injection_data.benign_split(root, held=True).items()})
    assistant = TESTS_DATA / "injection_benign_assistant.jsonl"
    if assistant.exists():
        sets["assistant_questions"] = ([r["text"] for r in _jsonl(assistant)], 0)
    if LOOKALIKES.exists():
        sets["benign_lookalikes"] = ([r["text"] for r in _jsonl(LOOKALIKES)], 0)
    out: dict[str, Any] = {"ours": evaluate(lambda texts: [model.score(t) >= det.threshold for t in texts], sets),
                           "sizes": {name: len(texts) for name, (texts, _) in sets.items()}}
    if baseline:
        try:
            base = _baseline(root)
        except ImportError:
            from flywheel.bench import missing_peer

            out["baseline"] = missing_peer("tfidf-logreg", "pip install scikit-learn")
        else:
            out["baseline"] = evaluate(lambda texts: [bool(p) for p in base.predict(texts)], sets)
    return {"injection_obfuscated": out, **bench_indirect_obfuscated()}


def bench_indirect_obfuscated(path: Path = INDIRECT_EVAL) -> dict[str, Any]:
    """The `sources:` stage on the indirect set with each obfuscation applied to every source (the planted
    instruction and the carrier around it alike): recall over the sources with a planted instruction, the
    rate of clean sources flagged."""
    from flywheel.bench.injection_obfuscation import OBFUSCATIONS
    from flywheel.checks.injection import detector

    det = detector()
    rows = _jsonl(path)
    out: dict[str, Any] = {}
    for name, obfuscate in OBFUSCATIONS.items():
        if name in ("dotted", "underscored", "spaced_flat", "fullwidth_spaced"):
            continue  # spelling variants of `spaced` / `hyphenated`: the same figures, twice the time
        flags = [(bool(r["label"]), det.source_score(obfuscate(r["text"])) >= det.sources_threshold) for r in rows]
        attacks = [f for y, f in flags if y]
        clean = [f for y, f in flags if not y]
        out[name] = {"recall": round(sum(attacks) / max(len(attacks), 1), 4),
                     "fpr": round(sum(clean) / max(len(clean), 1), 4)}
    return {"indirect_obfuscated": {**out, "sources": len(rows), "set": path.name}}


def bench_indirect(path: Path = INDIRECT_EVAL) -> dict[str, Any]:
    """The `sources:` guard stage on flywheel's own indirect-injection set: each row is one retrieved source,
    flagged when `scan_sources` flags it. Also the old detector's way (the direct model on the whole text,
    windows and sentences) as the peer, and per-carrier recall / flag rates."""
    from flywheel.checks.injection import detector

    det = detector()
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    flags, times = [], []
    for r in rows:
        t0 = time.perf_counter()
        score = det.source_score(r["text"])
        times.append((time.perf_counter() - t0) * 1000 / max(len(r["text"].encode()) / 1024, 1e-3))
        flags.append(score >= det.sources_threshold)
    labels = [int(r["label"]) for r in rows]
    tp = sum(1 for y, f in zip(labels, flags, strict=True) if y and f)
    fp = sum(1 for y, f in zip(labels, flags, strict=True) if not y and f)
    clean = labels.count(0)
    by: dict[str, Counter] = defaultdict(Counter)
    for r, f in zip(rows, flags, strict=True):
        by[r["carrier"]]["flagged" if f else "passed"] += 1
        by[r["carrier"]]["attacks" if r["label"] else "clean"] += 1
        by[r["carrier"]]["tp" if r["label"] and f else "fp" if f else "n"] += 1
    per = {c: {"recall": round(v["tp"] / v["attacks"], 4) if v["attacks"] else None,
               "fpr": round(v["fp"] / v["clean"], 4) if v["clean"] else None, "n": v["attacks"] + v["clean"]}
           for c, v in sorted(by.items())}
    return {"indirect": {**_prf(tp, fp, sum(labels) - tp), "fpr": round(fp / clean, 4) if clean else None,
                         "p50_ms_per_kb": round(statistics.median(times), 3), "n": len(rows), "attacks": sum(labels),
                         "clean": clean, "threshold": det.sources_threshold, "by_carrier": per,
                         "set": f"{path.name} (scripts/build_indirect_eval.py)"}}


def bench_leak(root: Path) -> dict[str, Any]:
    from flywheel.checks.injection_leak import LeakDetector

    rows = injection_data.tensor_trust(root, "prompt_extraction_detection.jsonl")
    prompts: dict[str, set[str]] = defaultdict(set)
    for name in ("hijacking_robustness_dataset.jsonl", "extraction_robustness_dataset.jsonl"):
        for r in injection_data.tensor_trust(root, name):
            prompts[r["access_code"]].add(r["pre_prompt"])
    det = LeakDetector()
    counts: dict[str, Counter[str]] = {k: Counter() for k in ("leak", "leak_secret_only", "baseline")}
    for r in rows:
        y, out, code = bool(r["is_prompt_extraction"]), r["llm_output"], r["access_code"]
        secret_only = bool(det.find(out, None, [code]))
        with_prompt = secret_only or any(det.find(out, p, []) for p in sorted(prompts.get(code, ())))
        base = code.casefold() in out.casefold()
        for key, pred in (("leak", with_prompt), ("leak_secret_only", secret_only), ("baseline", base)):
            counts[key]["tp" if pred and y else "fp" if pred else "fn" if y else "tn"] += 1
    res = {k: _prf(c["tp"], c["fp"], c["fn"]) for k, c in counts.items()}
    covered = sum(1 for r in rows if r["access_code"] in prompts)
    return {"leak": {**res["leak"], "rows": len(rows), "rows_with_system_prompt": covered},
            "leak_secret_only": res["leak_secret_only"], "leak_baseline_f1": res["baseline"]["f1"]}


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (the default output is indented JSON too).")
@click.option("--data", "data", default=None,
              help="The benchmark data folder (presidio-synth/, tensor-trust/, cmrc2018-dev/, askfsdl-scope/, mrpc/) "
                   "[$FLYWHEEL_BENCH_DATA, else ../shared/data].")
@click.option("--only", default="pii,injection,obfuscation,indirect,leak", show_default=True,
              help="Comma-separated parts to run.")
@click.option("--no-peers", is_flag=True, help="Skip stock Presidio and the TF-IDF baseline.")
def command(as_json: bool, data: str | None, only: str, no_peers: bool) -> None:
    """PII, injection (direct and indirect) and prompt-leak detectors against stock Presidio and a TF-IDF
    baseline."""
    parts = {p.strip() for p in only.split(",") if p.strip()}
    unknown = parts - {"pii", "injection", "obfuscation", "indirect", "leak"}
    if unknown:
        raise UserError(f"unknown benchmark part(s): {', '.join(sorted(unknown))}",
                        hint="use pii, injection, obfuscation, indirect, leak")
    from flywheel.bench import data_root, missing_data

    root = data_root(data)
    injection_sets = ["tensor-trust", "cmrc2018-dev", "askfsdl-scope", "mrpc"]
    needed = {"pii": ["presidio-synth"], "injection": injection_sets, "obfuscation": injection_sets,
              "leak": ["tensor-trust"]}  # the indirect set ships with flywheel
    missing = sorted({n for p in parts for n in needed.get(p, []) if root is None or not (root / n).is_dir()})
    if missing:
        raise missing_data(missing, "guards", root)
    result: dict[str, Any] = {}
    if "pii" in parts and root:
        result.update(bench_pii(root, presidio=not no_peers))
    if "injection" in parts and root:
        result.update(bench_injection(root, baseline=not no_peers))
    if "obfuscation" in parts and root:
        result.update(bench_obfuscation(root, baseline=not no_peers))
    if "indirect" in parts:
        result.update(bench_indirect())
    if "leak" in parts and root:
        result.update(bench_leak(root))
    click.echo(json.dumps(result, ensure_ascii=False) if as_json else json.dumps(result, indent=2, ensure_ascii=False))
