"""Review queues: schema on both engines, sampling strategies (seeded, stratified, in SQL), what an item shows
(the exact final prompt, sources, answer), labels with the overlap K enforced under concurrent threads and
processes on SQLite and PostgreSQL, pairwise order per annotator, undo, and bad input leaving nothing behind."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections import Counter

import pytest
from review_support import DAY, add_traces
from sqlalchemy import func, select

from flywheel import feedback
from flywheel.errors import UserError
from flywheel.feedback import queues
from flywheel.feedback.sampling import STRATEGIES, sample_strata, sample_traces
from flywheel.store import Store
from flywheel.store.db import schema_diff

REVIEW_TABLES = ["review_queues", "review_items", "review_labels", "review_claims"]


@pytest.fixture
def any_store(store_url):
    s = Store.open(store_url)
    yield s
    s.close()


def _count(store, table: str) -> int:
    t = store.table(table)
    with store.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(t)))


def _signals(store) -> dict[str, list[str]]:
    """40 recent traces (some with guard actions), 10 older reference traces, and feedback on a few."""
    now = time.time()
    old = add_traces(store, [{"input": f"how do I pin model version {i}", "started_at": now - 10 * DAY + i}
                             for i in range(10)])
    recent = add_traces(store, [{"input": f"how do I pin model version {i % 10}", "started_at": now - 3600 + i,
                                 "guard_action": "block" if i in (5, 6) else None} for i in range(40)])
    novel = add_traces(store, [{"input": "发票 什么时候 寄出", "started_at": now - 100}])
    feedback.record(store, recent[1], "thumbs", "down")
    feedback.record(store, recent[2], "correction", "Set version: on the alias.")
    feedback.record(store, recent[3], "score", 0.1, source="judge")
    feedback.record(store, recent[4], "label", "fail", source="check")
    feedback.record(store, recent[7], "score", 0.55, source="judge")  # near the threshold
    feedback.record(store, recent[8], "thumbs", "up")
    feedback.record(store, recent[8], "score", 0.2, source="judge")  # user and judge disagree
    return {"old": old, "recent": recent, "novel": novel}


def test_schema_matches_migration_on_both_engines(any_store):
    assert schema_diff(any_store, REVIEW_TABLES) == []


def test_each_strategy_finds_its_traces(any_store):
    store = any_store
    ids = _signals(store)
    r = ids["recent"]
    since = time.time() - DAY
    got = {s: set(sample_traces(store, n=10, strategy=s, since=since, seed=1)) for s in STRATEGIES}
    assert got["negative-feedback"] == {r[1], r[2]}  # r[8]: thumbs up (the judge disagreeing is "uncertain")
    assert got["guard-triggered"] == {r[5], r[6]}
    assert got["low-score"] == {r[3], r[4], r[8]}
    assert got["uncertain"] == {r[7], r[8]}
    assert got["new-topic"] == set(ids["novel"])  # only its words are absent from the older traces
    assert len(got["random"]) == 10 and got["random"] <= set(r) | set(ids["novel"])  # the window only


def test_mixed_is_stratified_and_reproducible(any_store):
    store = any_store
    _signals(store)
    since = time.time() - DAY
    first = sample_strata(store, n=12, since=since, seed=7)
    assert first == sample_strata(store, n=12, since=since, seed=7)
    assert sample_traces(store, n=12, since=since, seed=8) != [t for t, _ in first]
    strata = Counter(s for _, s in first)
    assert set(strata) == set(STRATEGIES)  # every strategy with data contributes
    assert len({t for t, _ in first}) == 12


def test_random_sampling_is_uniform_and_stays_in_the_filters(store):
    """Above the small-window threshold random sampling reads ids from seeded points, not the whole table."""
    import random

    traces = store.table("traces")
    now, rng = time.time(), random.Random(5)
    rows = [{"trace_id": f"{rng.getrandbits(128):032x}", "name": "x", "kind": "app", "started_at": now - i,
             "status": "ok", "app": "a" if i % 2 else "b", "tenant": "default", "input_preview": "q"}
            for i in range(24_000)]
    with store.begin() as conn:
        conn.execute(traces.insert(), rows)
    app = {r["trace_id"]: r["app"] for r in rows}
    age = {r["trace_id"]: now - r["started_at"] for r in rows}
    picked = sample_traces(store, n=1000, strategy="random", seed=3)
    assert len(set(picked)) == 1000
    share = Counter(app[t] for t in picked)
    assert 380 < share["a"] < 620  # 50 % ± 7 standard deviations
    only_b = sample_traces(store, n=300, strategy="random", app="b", seed=3, since=now - 12_000)
    assert len(set(only_b)) == 300 and all(app[t] == "b" and age[t] <= 12_000 for t in only_b)
    assert only_b == sample_traces(store, n=300, strategy="random", app="b", seed=3, since=now - 12_000)


def test_random_sampling_copes_with_ids_that_are_not_random(store):
    traces = store.table("traces")
    rows = [{"trace_id": f"{i:032x}", "name": "x", "kind": "app", "started_at": float(i), "status": "ok"}
            for i in range(6000)]
    with store.begin() as conn:
        conn.execute(traces.insert(), rows)
    picked = sample_traces(store, n=200, strategy="random", seed=1)
    assert len(set(picked)) == 200


def test_queue_records_its_seed_and_never_queues_a_trace_twice(store):
    _signals(store)
    first = queues.create_queue(store, n=20, seed=11)
    assert first.seed == 11 and first.n_items == 20 and first.strategy == "mixed"
    again = queues.get_queue(store, first.name)
    assert again == first and queues.get_queue(store, first.id) == first
    second = queues.create_queue(store, n=1000, seed=11)
    a = {i.trace_id for i in queues.items(store, first)}
    b = {i.trace_id for i in queues.items(store, second)}
    assert not a & b and len(a | b) == 51
    with pytest.raises(UserError, match="nothing to review"):
        queues.create_queue(store, n=5)  # every trace is queued now
    with pytest.raises(UserError, match="already in a review queue"):
        queues.create_queue(store, trace_ids=[next(iter(a))])
    assert _count(store, "review_queues") == 2


def test_an_empty_sample_hints_only_remedies_that_can_help(store):
    """`--strategy random` given to a random sample, or a wider window to one without --since, would be a
    printed next step that fails the same way when copied."""
    with pytest.raises(UserError) as random_empty:
        queues.create_queue(store, n=5, strategy="random")
    hint = random_empty.value.hint or ""
    assert "--strategy random" not in hint and "--since" not in hint and "--app" not in hint
    assert "record more traffic (flywheel ask" in hint
    with pytest.raises(UserError) as filtered:
        queues.create_queue(store, n=5, app="support", since=time.time() - DAY)
    hint = filtered.value.hint or ""
    assert "widen the window" in hint and "drop --app" in hint and "try --strategy random" in hint


def test_bad_input_writes_nothing(store):
    ids = _signals(store)
    before = {t: _count(store, t) for t in (*REVIEW_TABLES, "feedback")}
    with pytest.raises(UserError, match="did you mean 'low-score'"):
        queues.create_queue(store, strategy="low-scor")
    with pytest.raises(UserError, match="unknown trace"):
        queues.create_queue(store, trace_ids=[ids["recent"][0], "ab" * 16])
    with pytest.raises(UserError, match="nothing to review"):
        queues.create_queue(store, since=time.time() + DAY)
    with pytest.raises(UserError, match="no review queue 'dialy'"):
        queues.get_queue(store, "dialy")
    with pytest.raises(UserError, match="no review item"):
        queues.label(store, "nope", "ana", "pass")
    q = queues.create_queue(store, "daily", trace_ids=ids["recent"][:2], overlap=1)
    with pytest.raises(UserError, match="did you mean 'daily'"):
        queues.get_queue(store, "dialy")
    item = queues.items(store, q)[0]
    with pytest.raises(UserError, match="not one of this binary item's choices: pass, fail"):
        queues.label(store, item.id, "ana", "tie")
    assert {t: _count(store, t) for t in ("review_labels", "feedback")} == \
        {"review_labels": 0, "feedback": before["feedback"]}


def test_item_shows_the_exact_final_prompt_sources_and_answer(tmp_path):
    """A real docs_qa run (extractive model) with a guard: the item's prompt is the model call's messages."""
    from flywheel.apps.runtime import Runtime
    from flywheel.config import Project
    from flywheel.retrieval.ingest import ingest

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "models.md").write_text("# Models\n\nTo pin a model version, set `version:` on the alias.\n",
                                                 encoding="utf-8")
    (tmp_path / "flywheel.yaml").write_text("retrieval: {embedder: none}\n", encoding="utf-8")
    project = Project.load(tmp_path)
    with Runtime(project) as rt:
        ingest([tmp_path / "docs"], rt.store, project.config)
        answer = rt.app("docs_qa").run("How do I pin a model version?")
        rt.store.flush()
        q = queues.create_queue(rt.store, trace_ids=[answer.trace_id])
        item = queues.next_item(rt.store, q, "ana")
        spans = rt.store.table("spans")
        with rt.store.connect() as conn:
            sent = conn.scalar(select(spans.c.inputs).where(spans.c.trace_id == answer.trace_id,
                                                           spans.c.kind == "llm").order_by(spans.c.start_ns.desc()))
    assert item is not None and item.input == "How do I pin a model version?"
    assert item.output == answer.text
    assert item.prompt == sent["messages"] and item.prompt[0]["role"] == "system"
    assert item.sources[0]["chunk_id"] == answer.sources[0].chunk_id
    assert "set `version:` on the alias" in item.sources[0]["text"] and item.sources[0]["score"] > 0


def test_a_judge_call_inside_a_guard_is_not_the_final_prompt(store):
    [tid] = add_traces(store, [{"input": "q", "guard_action": "log-only", "system": "REAL SYSTEM"}])
    [item] = queues.items(store, queues.create_queue(store, trace_ids=[tid]))
    assert item.prompt[0]["content"] == "REAL SYSTEM" and "JUDGE" not in str(item.prompt)


def test_content_of_a_trace_that_is_one_model_call():
    from flywheel.feedback.content import _content

    root = {"span_id": "r", "parent_id": None, "kind": "llm", "name": "chat", "start_ns": 1,
            "inputs": {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}]},
            "outputs": "Hello."}
    assert _content([root], None, None) == {"input": "Hi?", "output": "Hello.", "sources": [],
                                           "prompt": root["inputs"]["messages"]}


def test_next_item_and_label_rules(store):
    ids = add_traces(store, [{"input": f"q{i}"} for i in range(3)])
    q = queues.create_queue(store, "k2", trace_ids=ids, overlap=2)
    first = queues.next_item(store, q, "ana")
    assert queues.next_item(store, q, "ana").id == first.id  # what you hold comes back
    assert queues.next_item(store, q, "bob").id == first.id  # K=2: a second annotator may hold it too
    assert queues.next_item(store, q, "cy").id != first.id  # but not a third
    queues.label(store, first.id, "ana", "fail", reason="wrong", correction="Use 2.1")
    with pytest.raises(queues.ConflictError, match="already labelled"):
        queues.label(store, first.id, "ana", "pass")
    queues.label(store, first.id, "bob", "pass")
    with pytest.raises(queues.ConflictError, match="already has its 2 label"):
        queues.label(store, first.id, "dee", "pass")
    assert queues.next_item(store, q, "ana").id != first.id  # never an item you labelled
    rows = feedback.for_trace(store, first.trace_id)
    assert [(e.source, e.name, e.value, e.actor) for e in rows] == \
        [("annotator", "label", "fail", "ana"), ("annotator", "label", "pass", "bob")]
    assert rows[0].comment == "wrong"
    got = queues.labels(store, q)
    assert [(lb.annotator, lb.verdict, lb.correction) for lb in got] == [("ana", "fail", "Use 2.1"), ("bob", "pass", None)]
    removed = queues.undo(store, first.id, "bob")
    assert removed.verdict == "pass" and len(feedback.for_trace(store, first.trace_id)) == 1
    with pytest.raises(UserError, match="no label"):
        queues.undo(store, first.id, "bob")
    assert queues.progress(store, q) == {"queue": "k2", "items": 3, "overlap": 2, "labels": 1, "complete": 0,
                                         "annotators": {"ana": 1}}


def test_an_expired_claim_frees_the_item(store):
    ids = add_traces(store, [{"input": "q0"}, {"input": "q1"}])
    q = queues.create_queue(store, trace_ids=ids, overlap=1)
    held = queues.next_item(store, q, "ana", lock_ttl_s=600)
    assert queues.next_item(store, q, "bob").id != held.id
    queues.release(store, held.id, "ana")
    assert queues.next_item(store, q, "cy").id == held.id
    gone = queues.next_item(store, q, "cy", lock_ttl_s=-1)  # a claim that has already expired
    assert gone.id == held.id and queues.next_item(store, q, "dee", skip=[ids[1]]) is not None


def test_pairwise_order_is_per_annotator_and_labels_map_back(store):
    a = add_traces(store, [{"input": f"same question {i}", "output": f"answer A{i}", "model": "m1"} for i in range(4)])
    b = add_traces(store, [{"input": f"same question {i}", "output": f"answer B{i}", "model": "m2"} for i in range(4)])
    q = queues.create_queue(store, kind="pairwise", n=10, seed=1)
    assert q.n_items == 4
    [item] = [i for i in queues.items(store, q) if {i.trace_id, i.trace_id_b} == {a[0], b[0]}]
    views = {name: queues.get_item(store, item.id, name) for name in (f"ann{i}" for i in range(16))}
    assert {v.swapped for v in views.values()} == {True, False}
    flipped = next(n for n, v in views.items() if v.swapped)
    straight = next(n for n, v in views.items() if not v.swapped)
    assert views[flipped].output == item.output_b and views[flipped].output_b == item.output
    assert "m1" not in views[flipped].model_dump_json() and "m2" not in views[flipped].model_dump_json()
    assert queues.label(store, item.id, flipped, "a").verdict == "b"  # their A is the canonical B
    assert queues.label(store, item.id, straight, "a").verdict == "a"
    with pytest.raises(UserError, match="a, b, tie"):
        queues.label(store, item.id, "third", "pass")
    value = feedback.for_trace(store, item.trace_id)[0].value
    assert value == {"verdict": "b", "a": item.trace_id, "b": item.trace_id_b, "winner": item.trace_id_b}
    with pytest.raises(UserError, match="already in a review queue"):
        queues.create_queue(store, kind="pairwise", pairs=[(item.trace_id_b, item.trace_id)])


def _drain(url: str, queue_id: str, annotator: str) -> int:
    s = Store.open(url)
    try:
        n = 0
        while (item := queues.next_item(s, queue_id, annotator)) is not None:
            try:
                queues.label(s, item.id, annotator, "pass" if n % 2 else "fail")
                n += 1
            except queues.ConflictError:
                pass
        return n
    finally:
        s.close()


def _race(url: str, item_id: str, annotator: str) -> str:
    s = Store.open(url)
    try:
        queues.label(s, item_id, annotator, "pass")
        return "ok"
    except queues.ConflictError:
        return "conflict"
    finally:
        s.close()


def _check_overlap(store, q, k: int, annotators: int) -> None:
    got = queues.labels(store, q)
    per_item = Counter(lb.item_id for lb in got)
    assert set(per_item.values()) == {k}  # every item exactly K labels, none more
    assert len(per_item) == q.n_items
    assert len({(lb.item_id, lb.annotator) for lb in got}) == len(got)  # nobody twice on an item
    assert len({lb.annotator for lb in got}) <= annotators


def test_overlap_holds_with_concurrent_threads(any_store):
    ids = add_traces(any_store, [{"input": f"t{i}"} for i in range(8)])
    q = queues.create_queue(any_store, trace_ids=ids, overlap=2)
    results: dict[str, int] = {}
    threads = [threading.Thread(target=lambda n=f"ann{i}": results.__setitem__(n, _drain(any_store.url, q.id, n)))
               for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sum(results.values()) == 16
    _check_overlap(any_store, q, 2, 5)
    race_ids = add_traces(any_store, [{"input": "race"}])
    race = queues.create_queue(any_store, trace_ids=race_ids, overlap=3)
    [item] = queues.items(any_store, race)
    outcomes: list[str] = []
    racers = [threading.Thread(target=lambda n=f"r{i}": outcomes.append(_race(any_store.url, item.id, n)))
              for i in range(8)]
    for t in racers:
        t.start()
    for t in racers:
        t.join(120)
    assert Counter(outcomes) == {"ok": 3, "conflict": 5}


def test_overlap_holds_with_concurrent_processes(any_store):
    ids = add_traces(any_store, [{"input": f"p{i}"} for i in range(6)])
    q = queues.create_queue(any_store, trace_ids=ids, overlap=2)
    race_ids = add_traces(any_store, [{"input": "race"}])
    race = queues.create_queue(any_store, trace_ids=race_ids, overlap=2)
    [item] = queues.items(any_store, race)
    # spawn, not fork: a child forked while one of this process's threads (the tracer's writer, a library's
    # pool) holds a lock can hang forever on it
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        drained = pool.starmap(_drain, [(any_store.url, q.id, f"ann{i}") for i in range(4)])
        raced = pool.starmap(_race, [(any_store.url, item.id, f"r{i}") for i in range(6)])
    assert sum(drained) == 12
    _check_overlap(any_store, q, 2, 4)
    assert Counter(raced) == {"ok": 2, "conflict": 4}


def test_concurrent_queue_builders_never_queue_a_trace_twice(any_store):
    add_traces(any_store, [{"input": f"c{i}"} for i in range(30)])
    made: list = []

    def build(seed: int) -> None:
        try:
            made.append(queues.create_queue(any_store, n=10, strategy="random", seed=seed))
        except UserError:  # everything it sampled was taken meanwhile
            pass

    threads = [threading.Thread(target=build, args=(seed,)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    traced = [i.trace_id for q in made for i in queues.items(any_store, q)]
    assert made and len(traced) == len(set(traced))


def test_queue_names_are_per_tenant_on_both_engines(any_store):
    acme = add_traces(any_store, [{"input": f"acme q{i}", "tenant": "acme"} for i in range(3)])
    beta = add_traces(any_store, [{"input": f"beta q{i}", "tenant": "beta"} for i in range(3)])
    a = queues.create_queue(any_store, "weekly", trace_ids=acme[:1], tenant="acme")
    b = queues.create_queue(any_store, "weekly", trace_ids=beta[:1], tenant="beta")  # no "already exists" leak
    assert a.id != b.id
    assert queues.get_queue(any_store, "weekly", tenant="acme").id == a.id
    assert queues.get_queue(any_store, "weekly", tenant="beta").id == b.id
    with pytest.raises(UserError, match="2 tenants have a review queue named 'weekly'"):
        queues.get_queue(any_store, "weekly")
    assert queues.get_queue(any_store, b.id).tenant == "beta"
    with pytest.raises(queues.NotFoundError):
        queues.get_queue(any_store, a.id, tenant="beta")
    with pytest.raises(UserError, match="already exists"):
        queues.create_queue(any_store, "weekly", trace_ids=acme[1:2], tenant="acme")
    untenanted = add_traces(any_store, [{"input": "no tenant"}, {"input": "no tenant 2"}])
    queues.create_queue(any_store, "shared", trace_ids=untenanted[:1])
    with pytest.raises(UserError, match="already exists"):  # NULL tenants: checked in code, not by the constraint
        queues.create_queue(any_store, "shared", trace_ids=untenanted[1:])
    assert _count(any_store, "review_queues") == 3


def test_add_items_skips_queued_traces_and_checks_the_tenant(any_store):
    acme = add_traces(any_store, [{"input": f"acme q{i}", "tenant": "acme"} for i in range(4)])
    beta = add_traces(any_store, [{"input": "beta q", "tenant": "beta"}])
    q = queues.create_queue(any_store, "inbox", trace_ids=acme[:1], tenant="acme")
    got = queues.add_items(any_store, "inbox", [acme[1], acme[0], acme[2]], tenant="acme")
    assert got == {"added": [acme[1], acme[2]], "skipped": [acme[0]]}
    assert [i.trace_id for i in queues.items(any_store, q)] == [acme[0], acme[1], acme[2]]
    assert [i.position for i in queues.items(any_store, q)] == [0, 1, 2]
    assert queues.get_queue(any_store, q.id).n_items == 3
    with pytest.raises(UserError, match="unknown trace id"):  # another tenant's trace: nothing added
        queues.add_items(any_store, q, [acme[3], beta[0]])
    with pytest.raises(queues.NotFoundError):
        queues.add_items(any_store, "inbox", [beta[0]], tenant="beta")
    assert _count(any_store, "review_items") == 3
    item = queues.next_item(any_store, q, "ana")
    assert item is not None and item.trace_id == acme[0]


def test_a_tool_call_trace_is_reviewed_with_the_users_question():
    from flywheel.feedback.content import _content

    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function"}]},
                {"role": "tool", "content": '{"temp": 21}', "tool_call_id": "c1"}]
    root = {"span_id": "a1", "parent_id": None, "kind": "llm", "inputs": {"model": "m", "messages": messages},
            "outputs": {"text": "It is 21 °C."}}
    got = _content([root], None, None)
    assert got["input"] == "Weather in Paris?" and got["output"] == "It is 21 °C."
