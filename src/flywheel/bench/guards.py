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
Indirect injection: held-out cmrc2018 passages and stdlib docstrings, clean (false-positive rate) and
with a hijacking attack or a `tests/data/injection_zh.jsonl` attack planted at a random place (recall).

Leak (`tensor-trust/prompt_extraction_detection.jsonl`): the check gets the row's access code as a
secret and, when the other Tensor Trust files hold defences with the same access code, each of their
pre-prompts as the system prompt (a leak of any counts). `leak_secret_only` uses the access code
alone. The baseline is "the access code occurs in the output" (case-insensitive).
"""

from __future__ import annotations

import json
import random
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


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / (p + r), 4) if p + r else 0.0}


def _overlaps(a: tuple[str, int, int], b: tuple[str, int, int]) -> bool:
    return a[0] == b[0] and a[1] < b[2] and b[1] < a[2]


def span_scores(gold: list[list[tuple[str, int, int]]], pred: list[list[tuple[str, int, int]]],
                types: tuple[str, ...]) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Per-type and micro precision / recall / F1 with span-overlap matching."""
    tp, fp, fn = Counter(), Counter(), Counter()
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
                           "presidio_micro_f1": None, "presidio_p50_ms_per_kb": None}
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


def _baseline(root: Path, attacks: list[str], benign: list[str]) -> Any:
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


def _plant(rng: random.Random, doc: str, attack: str) -> str:
    cut = rng.randint(0, len(doc))
    return doc[:cut] + ("\n" if doc.isascii() else "") + attack + doc[cut:]


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
        "baseline_f1": None}}
    if baseline:
        try:
            base = _baseline(root, attacks, benign)
        except ImportError:
            base = None
        if base is not None:
            neg = codes + benign
            pa = base.predict(attacks)
            pn = base.predict(neg)
            b = _prf(int(pa.sum()), int(pn.sum()), int(len(attacks) - pa.sum()))
            out["injection"]["baseline_f1"] = b["f1"]
            out["injection"]["baseline"] = {**b, "fpr_benign": round(float(base.predict(benign).mean()), 5)}
    zh_path = TESTS_DATA / "injection_zh.jsonl"
    zh_attacks: list[str] = []
    if zh_path.exists():
        zh = [json.loads(line) for line in zh_path.read_text(encoding="utf-8").splitlines() if line.strip()]
        flags = [(r["label"], det.detect(r["text"]).flagged) for r in zh]
        z_tp = sum(1 for y, f in flags if y and f)
        z_fp = sum(1 for y, f in flags if not y and f)
        z_fn = sum(1 for y, f in flags if y and not f)
        out["injection_zh"] = {**_prf(z_tp, z_fp, z_fn), "texts": len(zh)}
        zh_attacks = [r["text"] for r in zh if r["label"]]
    rng = random.Random(0)
    passages = [p for p in injection_data.cmrc_passages(root) if injection_data.held_out(p)]
    docs = [d for d in injection_data.stdlib_docs() if injection_data.held_out(d)]
    clean = passages + docs
    fp_docs = sum(det.source_score(d) >= det.threshold for d in clean)
    en_planted = [_plant(rng, rng.choice(clean), a) for a in attacks]
    zh_planted = [_plant(rng, rng.choice(passages), a) for a in zh_attacks]
    out["injection_indirect"] = {
        "fpr_docs": round(fp_docs / len(clean), 4), "docs": len(clean),
        "recall_planted_en": round(sum(det.source_score(d) >= det.threshold for d in en_planted) / len(en_planted), 4),
        "recall_planted_zh": round(sum(det.source_score(d) >= det.threshold for d in zh_planted) / len(zh_planted), 4)
        if zh_planted else None}
    return out


def bench_leak(root: Path) -> dict[str, Any]:
    from flywheel.checks.injection_leak import LeakDetector

    rows = injection_data.tensor_trust(root, "prompt_extraction_detection.jsonl")
    prompts: dict[str, set[str]] = defaultdict(set)
    for name in ("hijacking_robustness_dataset.jsonl", "extraction_robustness_dataset.jsonl"):
        for r in injection_data.tensor_trust(root, name):
            prompts[r["access_code"]].add(r["pre_prompt"])
    det = LeakDetector()
    counts = {k: Counter() for k in ("leak", "leak_secret_only", "baseline")}
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
@click.option("--data", "data", default=None, help="The shared data folder (default: ../shared/data).")
@click.option("--only", default="pii,injection,leak", show_default=True, help="Comma-separated parts to run.")
@click.option("--no-peers", is_flag=True, help="Skip stock Presidio and the TF-IDF baseline.")
def command(as_json: bool, data: str | None, only: str, no_peers: bool) -> None:
    """PII, injection and prompt-leak detectors against stock Presidio and a TF-IDF baseline."""
    root = injection_data.data_dir(data)
    if root is None:
        raise UserError("benchmark data not found", hint="pass --data PATH to the shared data folder "
                        "(presidio-synth/, tensor-trust/, cmrc2018-dev/, askfsdl-scope/, mrpc/) or set FLYWHEEL_DATA_DIR")
    parts = {p.strip() for p in only.split(",") if p.strip()}
    unknown = parts - {"pii", "injection", "leak"}
    if unknown:
        raise UserError(f"unknown benchmark part(s): {', '.join(sorted(unknown))}", hint="use pii, injection, leak")
    result: dict[str, Any] = {}
    if "pii" in parts:
        result.update(bench_pii(root, presidio=not no_peers))
    if "injection" in parts:
        result.update(bench_injection(root, baseline=not no_peers))
    if "leak" in parts:
        result.update(bench_leak(root))
    click.echo(json.dumps(result, ensure_ascii=False) if as_json else json.dumps(result, indent=2, ensure_ascii=False))
