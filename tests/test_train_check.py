"""`flywheel train-check`: a logistic-regression check fitted on human review labels learns a separable rule
(held-out F1 high), reports agreement with the LLM judge it replaces and its cost, and works as `trained: NAME` in
an eval suite (`flywheel eval`) and as an output guard."""

from __future__ import annotations

import json
import random
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner
from review_support import add_traces

import flywheel.cli.train_check  # noqa: F401 - registers `flywheel train-check` (until cli/__init__ lists it)
from flywheel import feedback
from flywheel.apps.runtime import Runtime
from flywheel.checks import CheckContext, build
from flywheel.checks.trained import term_counts
from flywheel.cli import main
from flywheel.config import Project
from flywheel.errors import UserError
from flywheel.feedback import queues
from flywheel.loop.classifier import fit_logistic, metrics, train_check
from flywheel.store import Store
from flywheel.testing.fake_llm import FakeLLM
from flywheel.testing.fake_llm_wire import last_user_text

TOPICS = ["refunds", "passwords", "shipping", "invoices", "accounts", "pricing", "exports", "webhooks", "tokens",
          "backups", "regions", "teams", "quotas", "billing", "audits", "logins", "keys", "plans", "domains", "alerts"]
GOOD = "According to the {t} policy in the documentation, the answer is in section [1]."
BAD = "I am not sure about {t}, maybe try again later?"


def _reply(body: dict) -> str:
    question = last_user_text(body)
    topic = question.split()[-1].strip("?")
    return (GOOD if question.startswith("good") else BAD).format(t=topic)


def _config(base_url: str, guarded: bool = False) -> str:
    guard = ("\n  guarded: {kind: chat, model: gpt, guards: {output: [{check: trained, model: quality, "
             "on_fail: block}]}}") if guarded else ""
    return textwrap.dedent(f"""\
        models:
          gpt: {{provider: openai_compat, base_url: "{base_url}", model: fake-app, max_retries: 0}}
        retrieval: {{embedder: none}}
        cache: {{exact: false}}
        apps:
          support: {{kind: chat, model: gpt}}""") + guard + "\n"


@pytest.fixture(scope="module")
def fake():
    with FakeLLM() as llm:
        llm.add(".", _reply, model="fake-app")
        yield llm


@pytest.fixture(scope="module")
def world(tmp_path_factory, fake):
    root = tmp_path_factory.mktemp("train")
    (root / "flywheel.yaml").write_text(_config(fake.base_url), encoding="utf-8")
    project = Project.load(root)
    rng = random.Random(0)
    specs, truth = [], []
    for i in range(60):
        topic = TOPICS[i % len(TOPICS)]
        ok = i % 2 == 0
        question = f"{rng.choice(['How do', 'What about', 'Tell me about'])} {topic} #{i}?"
        specs.append({"input": question, "output": (GOOD if ok else BAD).format(t=topic)})
        truth.append(ok)
    store = Store.open(project.store_url)
    ids = add_traces(store, specs)
    q = queues.create_queue(store, "quality-labels", kind="binary", overlap=1, trace_ids=ids)
    for it in queues.items(store, q):
        ok = truth[ids.index(it.trace_id)]
        queues.label(store, it.id, "ana", "pass" if ok else "fail")
    for n, (tid, ok) in enumerate(zip(ids, truth, strict=True)):  # the judge it replaces: right 9 times in 10
        feedback.record(store, tid, "quality", {"passed": ok if n % 10 else not ok, "cost_usd": 0.0004},
                        source="judge")
    store.close()
    return {"project": project, "root": root}


def _run(root, *args: str):
    return CliRunner().invoke(main, ["--project", str(root), *args])


@pytest.fixture(scope="module")
def trained(world):
    res = _run(world["root"], "train-check", "quality", "--from-queue", "quality-labels", "--json")
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def test_learns_a_separable_rule_and_reports_judge_agreement_and_cost(trained, world):
    held = trained["heldout"]
    assert trained["examples"]["heldout"] >= 12 and held["fail"]["f1"] >= 0.9 and held["pass"]["f1"] >= 0.9
    assert held["kappa"] >= 0.8
    judge = trained["judge"]
    assert judge["n"] == trained["examples"]["heldout"] and judge["judge_cost_per_call_usd"] == pytest.approx(0.0004)
    assert 0.6 <= judge["agreement"] < 1.0 and trained["cost_per_call_usd"] == 0.0
    folder = world["root"] / ".flywheel" / "checks" / "quality"
    meta = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    assert meta["features"] == "tfidf" and meta["data_hash"] and (folder / "weights.npz").exists()


def test_check_is_found_by_the_registry_and_scores_pairs(trained, world, monkeypatch):
    monkeypatch.chdir(world["root"])
    check = build("trained", "quality")
    good = check.run(GOOD.format(t="refunds"), CheckContext(input="How do refunds work?"))
    bad = check.run(BAD.format(t="refunds"), CheckContext(input="How do refunds work?"))
    assert good.passed and not bad.passed and good.details["cost_usd"] == 0.0
    assert build("not-trained", {"model": "quality"}).run(BAD.format(t="x"), CheckContext()).passed
    with pytest.raises(UserError, match="train-check nope"):
        build("trained", "nope")
    with pytest.raises(UserError, match="threshold"):
        build("trained", {"model": "quality", "threshold": 2})


def test_works_as_an_eval_assertion(trained, world, monkeypatch):
    root = world["root"]
    monkeypatch.chdir(root)
    (root / "evals").mkdir(exist_ok=True)
    suite = textwrap.dedent("""\
        name: trained check
        target: app:support
        cases:
          - id: good
            vars: {question: "good: how do refunds work?"}
            checks: [{trained: quality}]
          - id: bad
            vars: {question: "bad: how do refunds work?"}
            checks: [{not-trained: quality}]
        """)
    (root / "evals" / "ok.yaml").write_text(suite, encoding="utf-8")
    (root / "evals" / "fails.yaml").write_text(suite.replace("not-trained", "trained"), encoding="utf-8")
    assert _run(root, "eval", "evals/ok.yaml", "--no-progress").exit_code == 0
    assert _run(root, "eval", "evals/fails.yaml", "--no-progress").exit_code == 1


def test_works_as_an_output_guard(trained, world, fake, monkeypatch):
    root = world["root"]
    monkeypatch.chdir(root)
    (root / "flywheel.yaml").write_text(_config(fake.base_url, guarded=True), encoding="utf-8")
    try:
        with Runtime(Project.load(root), tracing=False) as rt:
            app = rt.app("guarded")
            assert not app.run("good: how do refunds work?").refused
            blocked = app.run("bad: how do refunds work?")
            assert blocked.refused and "not sure" not in blocked.text
    finally:
        (root / "flywheel.yaml").write_text(_config(fake.base_url), encoding="utf-8")


def test_tfidf_features_are_cjk_aware_and_fit_is_numpy_only():
    counts = term_counts(["退款需要多久？"], ["退款需要十四天。"])
    assert counts[0, : counts.shape[1] // 2].sum() > 0 and counts[0, counts.shape[1] // 2:].sum() > 0
    x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]], dtype=np.float32)
    y = np.array([1, 1, 0, 0], dtype=np.float32)
    w, b = fit_logistic(x, y)
    assert list((x @ w + b > 0).astype(int)) == [1, 1, 0, 0]
    assert metrics([1, 0, 1, 0], [1, 0, 0, 0])["pass"] == {"precision": 1.0, "recall": 0.5, "f1": 0.6667, "support": 2}


def test_embedding_features_with_an_embedder(world, tmp_path):
    class Hashing:  # a deterministic stand-in for the local embedder: bag of words in 64 dimensions
        name = "hashing-64"

        def embed(self, texts):
            out = np.zeros((len(texts), 64), dtype=np.float32)
            for i, t in enumerate(texts):
                for w in t.lower().split():
                    out[i, hash(w) % 64] += 1.0
            return out

    with Store.open(world["project"].store_url) as store:
        report = train_check(store, tmp_path, "quality-emb", "quality-labels", features="embedding",
                             embedder=Hashing())
    assert report["heldout"]["fail"]["f1"] >= 0.9
    assert json.loads((tmp_path / ".flywheel/checks/quality-emb/model.json").read_text())["embedder"] == "hashing-64"


def test_bad_input_exits_2(world, tmp_path):
    res = _run(tmp_path, "train-check", "x", "--from-queue", "nope")
    assert res.exit_code == 2 and "review queue" in res.output
    with Store.open(world["project"].store_url) as store, pytest.raises(UserError, match="invalid check name"):
            train_check(store, tmp_path, "../evil", "quality-labels")


def test_local_embedder_features_end_to_end(trained, world, monkeypatch):
    from flywheel.retrieval.embedders import local_available

    if not local_available():
        pytest.skip("the local embedder is not installed (the `local` extra)")
    root = world["root"]
    res = _run(root, "train-check", "quality-minilm", "--from-queue", "quality-labels", "--features", "embedding",
               "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["heldout"]["fail"]["f1"] >= 0.9
    monkeypatch.chdir(root)
    check = build("trained", "quality-minilm")
    assert not check.run(BAD.format(t="refunds"), CheckContext(input="How do refunds work?")).passed
    assert check.run(GOOD.format(t="refunds"), CheckContext(input="How do refunds work?")).passed


def test_usable_as_an_online_evaluator(trained, world, monkeypatch):
    from flywheel.config import OnlineEvaluatorSpec
    from flywheel.monitor.online import build_evaluators

    monkeypatch.chdir(world["root"])
    [ev] = build_evaluators([OnlineEvaluatorSpec(check="trained", model="quality", sample=1.0, name="quality")])
    assert ev.source == "check" and ev.check.run(BAD.format(t="x"), CheckContext(input="x?")).score < 0.5
