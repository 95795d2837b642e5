"""The data flywheel walked as a new user does it: the official `openai` SDK against a real `flywheel serve`,
feedback posted the way a frontend posts it (by the response id the SDK hands it), review labels, then
`flywheel export` into fine-tuning data. Regressions of the S12 audit."""

from __future__ import annotations

import importlib.util
import json
import textwrap
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from conftest import need
from review_support import add_traces
from server_support import PROJECT_YAML, serving

import flywheel.cli.export  # noqa: F401 - registers `flywheel export`
from flywheel import feedback
from flywheel.cli import main
from flywheel.config import Project
from flywheel.feedback import queues
from flywheel.loop.export import validate_openai
from flywheel.store import Store
from flywheel.testing.fake_llm import FakeLLM
from flywheel.tracing import tracer

openai = pytest.importorskip("openai")
HAVE_FINETUNE = all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers", "peft"))


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with FakeLLM() as llm:
        llm.add("退款", "退款需要 30 天。")
        llm.add("refund pending", "Your refund for order 42 is pending.")
        root = tmp_path_factory.mktemp("loop-s12")
        with serving(root, PROJECT_YAML.format(base=llm.base_url)) as server:
            yield server, root


def _client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def _run(root: Path, *args: str):
    return CliRunner().invoke(main, ["--project", str(root), *args])


def test_feedback_by_the_response_id_the_sdk_returns(served):
    server, root = served
    client = _client(server)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt", messages=[{"role": "user", "content": "退款要多久？"}])
    trace, chat_id = raw.headers["x-flywheel-trace-id"], raw.parse().id
    assert chat_id != trace  # what a frontend holds is `chatcmpl-<trace id>`
    posted = httpx.post(server.url + "/v1/feedback", json={"trace_id": chat_id, "name": "thumbs", "value": "down",
                                                           "comment": "答案不对，应该是 14 天"}, timeout=30)
    assert posted.status_code == 201, posted.text
    assert posted.json()["trace_id"] == trace
    response = client.responses.create(model="gpt", input="退款流程是什么？")
    again = httpx.post(server.url + "/v1/feedback", json={"trace_id": response.id, "name": "score", "value": 0.2},
                       timeout=30)
    assert again.status_code == 201, again.text
    assert again.json()["trace_id"] == response.id.removeprefix("resp_")
    by_cli = _run(root, "feedback", chat_id, "--correction", "退款需要 14 天。")
    assert by_cli.exit_code == 0, by_cli.output
    tracer.flush()
    events = feedback.for_trace(server.state.store, trace)
    assert [(e.name, e.comment) for e in events] == [("thumbs", "答案不对，应该是 14 天"), ("correction", None)]
    assert events[1].value == "退款需要 14 天。"
    shown = _run(root, "traces", "show", chat_id, "--json")  # the id a frontend logged finds its trace too
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["trace_id"] == trace
    unknown = httpx.post(server.url + "/v1/feedback", json={"trace_id": "chatcmpl-" + "0" * 32, "name": "thumbs",
                                                            "value": "up"}, timeout=30)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "trace_not_found"


def test_tool_calls_survive_export_masked_and_finetune_reads_them(served, tmp_path):
    server, root = served
    tools = [{"type": "function", "function": {"name": "order_status", "parameters": {
        "type": "object", "properties": {"order": {"type": "integer"}, "email": {"type": "string"}}}}}]
    messages = [
        {"role": "system", "content": "You are ACME support."},
        {"role": "user", "content": "Where is the refund of order 42? I am ann.lee@example.com"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {
            "name": "order_status", "arguments": json.dumps({"order": 42, "email": "ann.lee@example.com"})}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"status": "refund pending"}'},
    ]
    raw = _client(server).chat.completions.with_raw_response.create(model="gpt", messages=messages, tools=tools)
    trace = raw.headers["x-flywheel-trace-id"]
    tracer.flush()
    store = server.state.store
    q = queues.create_queue(store, "tools-s12", kind="binary", overlap=1, trace_ids=[trace])
    queues.label(store, queues.items(store, q)[0].id, "ana", "pass")
    out = tmp_path / "ft.jsonl"
    done = _run(root, "export", "openai-ft", str(out), "--queue", "tools-s12", "--split", "1")
    assert done.exit_code == 0, done.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert validate_openai(rows) == []
    sent = rows[0]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool", "assistant"]
    call = sent[2]["tool_calls"][0]
    assert call["id"] == "call_1" and call["function"]["name"] == "order_status" and "content" not in sent[2]
    assert json.loads(call["function"]["arguments"]) == {"order": 42, "email": "<EMAIL_ADDRESS_1>"}
    assert "<EMAIL_ADDRESS_1>" in sent[1]["content"] and "ann.lee" not in out.read_text(encoding="utf-8")
    assert sent[3]["tool_call_id"] == "call_1"
    assert sent[4] == {"role": "assistant", "content": "Your refund for order 42 is pending."}

    from flywheel.loop.finetune_data import encode, read_rows

    (row,) = read_rows(out)
    assert [m["weight"] for m in row.messages if m["role"] == "assistant"] == [0, 1]  # the tool call is context
    need(HAVE_FINETUNE, "torch, transformers and peft (pip install 'flywheel[finetune]') are not installed")
    from transformers import AutoTokenizer

    from flywheel.testing.tiny_model import write_tiny_model

    tokenizer = AutoTokenizer.from_pretrained(str(write_tiny_model(tmp_path / "tiny")))
    example = encode(row, tokenizer, 4096)
    assert example is not None
    learnt = tokenizer.decode([t for t, lb in zip(example.input_ids, example.labels, strict=True) if lb != -100])
    assert learnt.startswith("Your refund for order 42 is pending.")


def _project(root: Path) -> Project:
    (root / "flywheel.yaml").write_text(textwrap.dedent("""\
        models:
          default: {provider: extractive}
        retrieval: {embedder: none}
        apps:
          docs_qa: {kind: chat, model: default}
        """), encoding="utf-8")
    return Project.load(root)


# per trace: ana's verdict, bo's verdict; index 1 is a tie that a user's correction must not bring back
VERDICTS = [("pass", "pass"), ("pass", "fail"), ("fail", "fail"), ("pass", "pass"), ("fail", "pass"),
            ("pass", "pass"), ("fail", "fail"), ("pass", "pass"), ("pass", "pass"), ("fail", "fail")]


def _labelled_project(root: Path) -> tuple[list[str], dict]:
    """VERDICTS labelled by ana and bo (last item first), a user's correction on the tie, `export sft` run."""
    project = _project(root)
    with Store.open(project.store_url) as store:
        ids = add_traces(store, [{"input": f"How do I configure feature {i}?", "output": f"Use setting {i}."}
                                 for i in range(len(VERDICTS))])
        q = queues.create_queue(store, "daily", kind="binary", overlap=2, trace_ids=ids)
        item = {it.trace_id: it.id for it in queues.items(store, q)}
        for tid, (ana, bo) in reversed(list(zip(ids, VERDICTS, strict=True))):
            queues.label(store, item[tid], "ana", ana, correction="Use setting 99." if ana == "fail" else None)
            queues.label(store, item[tid], "bo", bo)
        feedback.record(store, ids[1], "correction", "A user's own answer.")
    done = _run(root, "export", "sft", str(root / "sft.jsonl"), "--split", "1")
    assert done.exit_code == 0, done.output
    return ids, json.loads((root / "sft.datasheet.json").read_text(encoding="utf-8"))


def test_export_leaves_a_tie_out_even_when_a_user_corrected_it(tmp_path):
    ids, sheet = _labelled_project(tmp_path)
    lines = (tmp_path / "sft.jsonl").read_text(encoding="utf-8").splitlines()
    ties = {ids[i] for i, (a, b) in enumerate(VERDICTS) if a != b}
    assert {json.loads(line)["source_trace_id"] for line in lines} == set(ids) - ties
    assert sheet["dropped"]["tie between annotators"] == len(ties)
    assert "correction feedback" not in sheet["sources"]["from"]


def test_datasheet_agreement_is_the_one_review_agreement_prints(tmp_path):
    _, sheet = _labelled_project(tmp_path)
    shares = [1.0 if a == b else 0.5 for a, b in VERDICTS]  # every labelled item, the ties included
    assert sheet["labels"]["mean_item_agreement"] == round(sum(shares) / len(shares), 4)
    review = _run(tmp_path, "review", "agreement", "--json")
    assert review.exit_code == 0, review.output
    report = json.loads(review.output)
    for key in ("fleiss_kappa", "fleiss_ci95", "krippendorff_alpha", "krippendorff_ci95"):
        assert sheet["labels"][key] == report[key], key


def test_an_empty_trace_list_is_a_clear_400(served):
    server, _ = served
    made = httpx.post(server.url + "/v1/review/queues", json={"kind": "binary", "trace_ids": []}, timeout=30)
    assert made.status_code == 400
    assert "`trace_ids` is empty" in made.json()["error"]["message"]


def test_a_trace_deleted_after_review_is_left_out_of_promote_and_export(tmp_path):
    project = _project(tmp_path)
    with Store.open(project.store_url) as store:
        ids = add_traces(store, [{"input": "退款要多久？", "output": "退款需要 30 天。"},
                                 {"input": "How do I rotate a key?", "output": "You cannot."}])
        q = queues.create_queue(store, "daily", kind="binary", overlap=1, trace_ids=ids)
        for it in queues.items(store, q):
            queues.label(store, it.id, "ana", "fail", reason="错了", correction="退款需要 14 天。"
                         if it.trace_id == ids[0] else "Run `flywheel keys rotate`.")
        with store.begin() as conn:  # a retention job (or a person) deletes the first trace
            for table in ("spans", "traces"):
                t = store.table(table)
                conn.execute(t.delete().where(t.c.trace_id == ids[0]))
    suite = tmp_path / "evals" / "regressions.yaml"
    promoted = _run(tmp_path, "promote", "--queue", "daily", "--to", str(suite), "--target", "app:docs_qa",
                    "--json")
    assert promoted.exit_code == 0, promoted.output
    result = json.loads(promoted.output[promoted.output.index("{"):])
    assert result["written"] == [f"trace-{ids[1][:12]}"] and result["skipped_missing"] == [ids[0]]
    out = tmp_path / "sft.jsonl"
    exported = _run(tmp_path, "export", "sft", str(out), "--split", "1")
    assert exported.exit_code == 0, exported.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["source_trace_id"] for r in rows] == [ids[1]]
    sheet = json.loads((tmp_path / "sft.datasheet.json").read_text(encoding="utf-8"))
    assert sheet["dropped"]["trace no longer in the store"] == 1
    with Store.open(project.store_url) as store, store.begin() as conn:
        for table in ("spans", "traces"):
            t = store.table(table)
            conn.execute(t.delete().where(t.c.trace_id == ids[1]))
    none_left = _run(tmp_path, "promote", "--queue", "daily", "--to", str(tmp_path / "evals" / "other.yaml"),
                     "--target", "app:docs_qa")
    assert none_left.exit_code == 2 and "no longer in the store" in none_left.output
    assert not (tmp_path / "evals" / "other.yaml").exists()


SUITE_WITH_NOTES = """\
# Support regressions: owned by the support team
name: support
target: app:docs_qa
cases:   # hand-written first
  - id: refund-basic
    vars: {question: "How do refunds work?"}   # asked weekly
    checks:
      - contains: "14"     # days

# the bar for CI
threshold: 0.8   # raised in November
"""


EMPTY_SUITE = "# filled by promote\nname: s\ntarget: app:docs_qa\ncases: []   # none yet\nthreshold: 0.8\n"


@pytest.mark.parametrize("suite", [SUITE_WITH_NOTES, EMPTY_SUITE], ids=["keys-after-cases", "empty-flow-list"])
def test_promote_keeps_hand_written_comments_when_keys_follow_the_cases(tmp_path, suite):
    import yaml

    project = _project(tmp_path)
    with Store.open(project.store_url) as store:
        ids = add_traces(store, [{"input": "退款要多久？", "output": "退款需要 30 天。"}])
        q = queues.create_queue(store, "daily", kind="binary", overlap=1, trace_ids=ids)
        queues.label(store, queues.items(store, q)[0].id, "ana", "fail", reason="天数错了",
                     correction="退款需要 14 天。")
    path = tmp_path / "evals" / "support.yaml"
    path.parent.mkdir()
    path.write_text(suite, encoding="utf-8")
    for _ in range(2):  # the second run adds nothing
        done = _run(tmp_path, "promote", "--queue", "daily", "--to", str(path))
        assert done.exit_code == 0, done.output
    text = path.read_text(encoding="utf-8")
    notes = [line.split("#", 1)[1] for line in suite.splitlines() if "#" in line]
    assert notes and all(note in text for note in notes)
    data = yaml.safe_load(text)
    assert data["threshold"] == 0.8 and [c["id"] for c in data["cases"]][-1] == f"trace-{ids[0][:12]}"
    assert len(data["cases"]) == len(yaml.safe_load(suite)["cases"]) + 1


def _as_seen(store, item_id: str, annotator: str, verdict: str) -> str:
    """The letter `annotator` types for the canonical pairwise `verdict`: each annotator sees A and B in an order
    of their own (a hash of the random item id), and a typed "a" is the item's B where theirs is swapped."""
    return {"a": "b", "b": "a"}.get(verdict, verdict) if queues.get_item(store, item_id, annotator).swapped else verdict


# Which annotator sees A and B swapped comes from a hash of the item's random id. The test once typed "a" for
# both annotators meaning the same answer, which it was only where their orders matched: 1 run in 64 no pair had a
# majority and `export dpo` had nothing to export. The orders are set here instead, that unlucky one included.
SWAPS = {
    "none": lambda n, annotator: False,
    "ana": lambda n, annotator: annotator == "ana",
    "unlucky": lambda n, annotator: annotator == "ana" and VERDICTS[n] == ("pass", "pass"),
    "mixed": lambda n, annotator: (n % 2 == 0) if annotator == "ana" else (n % 3 == 0),
}


@pytest.mark.parametrize("swaps", SWAPS)
def test_binary_and_pairwise_labels_are_never_pooled(tmp_path, monkeypatch, swaps):
    from flywheel.feedback.agreement import agreement_report

    position: dict[str, int] = {}  # pairwise item id → its index in VERDICTS
    monkeypatch.setattr(queues, "_swapped", lambda item_id, annotator: SWAPS[swaps](position[item_id], annotator))
    project = _project(tmp_path)
    with Store.open(project.store_url) as store:
        ids = add_traces(store, [{"input": f"How do I configure feature {i}?", "output": f"Use setting {i}."}
                                 for i in range(len(VERDICTS))])
        binary = queues.create_queue(store, "daily", kind="binary", overlap=2, trace_ids=ids)
        for it, (ana, bo) in zip(queues.items(store, binary), VERDICTS, strict=True):
            queues.label(store, it.id, "ana", ana)
            queues.label(store, it.id, "bo", bo)
        a, b = (add_traces(store, [{"input": f"Can feature {i} be turned off?", "output": f"{said} {i}."}
                                   for i in range(len(VERDICTS))]) for said in ("Yes, setting", "Maybe"))
        ab = queues.create_queue(store, "ab", kind="pairwise", overlap=2, pairs=list(zip(a, b, strict=True)))
        position.update((it.id, n) for n, it in enumerate(queues.items(store, ab)))
        for it, (ana, bo) in zip(queues.items(store, ab), VERDICTS, strict=True):
            queues.label(store, it.id, "ana", _as_seen(store, it.id, "ana", "a" if ana == "pass" else "b"))
            queues.label(store, it.id, "bo", _as_seen(store, it.id, "bo", "tie" if bo == "fail" else "a"))
        alone = {kind: agreement_report([(lb.item_id, lb.annotator, lb.verdict) for lb in queues.labels(store, q)])
                 for kind, q in (("binary", binary), ("pairwise", ab))}
    for kind, args in (("binary", []), ("pairwise", ["--kind", "pairwise"])):
        shown = _run(tmp_path, "review", "agreement", "--json", *args)
        assert shown.exit_code == 0, shown.output
        report = json.loads(shown.output[shown.output.index("{"):])
        assert report["fleiss_kappa"] == alone[kind]["fleiss_kappa"]
        assert report["krippendorff_ci95"] == alone[kind]["krippendorff_ci95"]
        assert report["kind"] == kind and report["n_labels"] == 2 * len(VERDICTS)
    done = _run(tmp_path, "export", "dpo", str(tmp_path / "dpo.jsonl"), "--split", "1")
    assert done.exit_code == 0, done.output
    labels = json.loads((tmp_path / "dpo.datasheet.json").read_text(encoding="utf-8"))["labels"]
    assert labels["kind"] == "binary" and labels["fleiss_kappa"] == alone["binary"]["fleiss_kappa"]
    assert labels["other_kind"]["kind"] == "pairwise"
    assert labels["other_kind"]["fleiss_kappa"] == alone["pairwise"]["fleiss_kappa"]


def test_openai_ft_names_other_sdks_roles_as_openai_does(tmp_path):
    """A trace received over OTLP keeps the roles its SDK recorded: `developer` (OpenAI reasoning models) and
    `model` (Gemini) are the system and assistant turns of the fine-tuning line."""
    project = _project(tmp_path)
    prompt = [{"role": "developer", "content": "Answer in one line."},
              {"role": "user", "content": "Hi, I am Ann."}, {"role": "model", "content": "Hello Ann."},
              {"role": "user", "content": "How long do refunds take?"}]
    with Store.open(project.store_url) as store:
        ids = add_traces(store, [{"input": "How long do refunds take?", "output": "14 days."}])
        spans = store.table("spans")
        with store.begin() as conn:
            conn.execute(spans.update().where(spans.c.trace_id == ids[0], spans.c.kind == "llm")
                         .values(inputs={"messages": prompt}))
        q = queues.create_queue(store, "daily", kind="binary", overlap=1, trace_ids=ids)
        queues.label(store, queues.items(store, q)[0].id, "ana", "pass")
    out = tmp_path / "ft.jsonl"
    done = _run(tmp_path, "export", "openai-ft", str(out), "--split", "1")
    assert done.exit_code == 0, done.output
    (row,) = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant", "user", "assistant"]
    assert row["messages"][2]["content"] == "Hello Ann." and validate_openai([row]) == []


def test_promote_one_trace_named_twice_is_one_case_without_itself_as_duplicate(tmp_path):
    import yaml

    project = _project(tmp_path)
    with Store.open(project.store_url) as store:
        (tid,) = add_traces(store, [{"input": "退款要多久？", "output": "退款需要 30 天。"}])
        feedback.record(store, tid, "correction", "退款需要 14 天。")
    path = tmp_path / "evals" / "r.yaml"
    done = _run(tmp_path, "promote", "--traces", f"{tid[:8]},{tid}", "--to", str(path), "--target", "app:docs_qa")
    assert done.exit_code == 0, done.output
    (case,) = yaml.safe_load(path.read_text(encoding="utf-8"))["cases"]
    assert case["metadata"]["source_trace_id"] == tid and "duplicates" not in case["metadata"]


def test_a_turn_without_text_does_not_block_the_openai_file(tmp_path):
    project = _project(tmp_path)
    prompt = [{"role": "system", "content": ""},
              {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}]},
              {"role": "user", "content": [{"type": "text", "text": "What is on this invoice?"}]}]
    with Store.open(project.store_url) as store:
        ids = add_traces(store, [{"input": "What is on this invoice?", "output": "A refund of 30 EUR."},
                                 {"input": "Where do I send invoices?", "output": "To billing."}])
        spans = store.table("spans")
        with store.begin() as conn:
            conn.execute(spans.update().where(spans.c.trace_id == ids[0], spans.c.kind == "llm")
                         .values(inputs={"messages": prompt}))
        q = queues.create_queue(store, "daily", kind="binary", overlap=1, trace_ids=ids)
        for it in queues.items(store, q):
            queues.label(store, it.id, "ana", "pass")
    out = tmp_path / "ft.jsonl"
    done = _run(tmp_path, "export", "openai-ft", str(out), "--split", "1")
    assert done.exit_code == 0, done.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert validate_openai(rows) == [] and len(rows) == 2
    assert rows[0]["messages"] == [{"role": "user", "content": "What is on this invoice?"},
                                   {"role": "assistant", "content": "A refund of 30 EUR."}]


def test_the_review_screen_shows_the_tool_an_agent_called(tmp_path):
    project = _project(tmp_path)
    prompt = [{"role": "user", "content": "Where is order 42?"},
              {"role": "assistant", "content": "", "tool_calls": [{"id": "call_1", "type": "function", "function": {
                  "name": "order_status", "arguments": '{"order": 24}'}}]},
              {"role": "tool", "tool_call_id": "call_1", "content": '{"status": "shipped"}'}]
    with Store.open(project.store_url) as store:
        ids = add_traces(store, [{"input": "Where is order 42?", "output": "It has shipped."}])
        spans = store.table("spans")
        with store.begin() as conn:
            conn.execute(spans.update().where(spans.c.trace_id == ids[0], spans.c.kind == "llm")
                         .values(inputs={"messages": prompt}))
        queues.create_queue(store, "agents", kind="binary", overlap=1, trace_ids=ids)
    shown = CliRunner().invoke(main, ["--project", str(tmp_path), "review", "--queue", "agents", "--annotator", "ana"],
                               input="q\n", env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert '→ order_status({"order": 24})' in shown.output  # the wrong order number is what a reviewer must see


def test_a_response_id_names_its_trace_for_queues_and_promote_too(served, tmp_path):
    server, root = served
    answer = _client(server).chat.completions.create(model="gpt", messages=[{"role": "user", "content": "退款多久到账？"}])
    made = httpx.post(server.url + "/v1/review/queues", json={"kind": "binary", "trace_ids": [answer.id],
                                                              "name": "by-response-id", "overlap": 1}, timeout=30)
    assert made.status_code == 201, made.text
    assert made.json()["items"][0]["trace_id"] == answer.id.removeprefix("chatcmpl-")
    suite = tmp_path / "r.yaml"
    done = _run(root, "promote", "--traces", answer.id, "--to", str(suite), "--target", "app:support")
    assert done.exit_code == 0, done.output
    assert answer.id.removeprefix("chatcmpl-") in suite.read_text(encoding="utf-8")
