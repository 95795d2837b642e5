"""A Chinese-speaking new user's feedback loop over `flywheel serve` (audit D): feedback posted with a blank
trace id, and a later turn of a conversation promoted to an eval case and replayed with its earlier turns."""

from __future__ import annotations

import httpx
import pytest
import yaml
from click.testing import CliRunner
from openai import OpenAI
from server_support import serving

from flywheel.cli import main
from flywheel.testing.fake_llm import FakeLLM
from flywheel.tracing import tracer

YAML = """
models:
  gpt: {{provider: openai_compat, base_url: "{base}", model: fake-model, max_retries: 0}}
cache: {{exact: false}}
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("zh-loop")
    with FakeLLM(default="好的，我明白了。") as llm:
        llm.add("退款要多久", "退款需要 14 天到账。")
        with serving(root, YAML.format(base=llm.base_url)) as server:
            yield server, root, llm


def _client(server) -> OpenAI:
    return OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)


def _conversation(server, turns: list[str], session: str) -> str:
    """Send `turns` as one growing chat (the SDK way: every request carries the earlier messages); the last
    response's trace id."""
    client, messages, rid = _client(server), [], ""
    for text in turns:
        messages.append({"role": "user", "content": text})
        r = client.chat.completions.create(model="gpt", messages=messages, metadata={"session_id": session})
        messages.append({"role": "assistant", "content": r.choices[0].message.content})
        rid = r.id
    return rid.removeprefix("chatcmpl-")


def _cli(root, *args: str):
    return CliRunner().invoke(main, ["--project", str(root), *args], catch_exceptions=False)


@pytest.mark.parametrize("blank", ["", "   "])
def test_feedback_with_a_blank_trace_id_is_a_missing_parameter_not_an_unknown_trace(served, blank):
    server, _, _ = served
    r = httpx.post(f"{server.url}/v1/feedback", json={"trace_id": blank, "name": "thumbs", "value": "up"},
                   timeout=30)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert (error["code"], error["param"]) == ("missing_required_parameter", "trace_id")


def test_a_later_turn_is_promoted_with_the_earlier_turns_and_replayed_in_order(served):
    server, root, llm = served
    tid = _conversation(server, ["你好，我想咨询退款", "订单号是 12345", "多久能到账？"], "会话-1")
    assert _cli(root, "feedback", tid, "--thumbs", "down", "--comment", "没有回答到账时间",
                "--correction", "一般 3 到 5 个工作日到账。").exit_code == 0
    out = _cli(root, "promote", "--traces", tid, "--to", "evals/turns.yaml", "--target", "model:gpt")
    assert out.exit_code == 0, out.output
    [case] = yaml.safe_load((root / "evals" / "turns.yaml").read_text(encoding="utf-8"))["cases"]
    assert "vars" not in case and "checks" not in case  # case-level checks would apply to every turn
    assert [t["input"] for t in case["turns"]] == ["你好，我想咨询退款", "订单号是 12345", "多久能到账？"]
    *earlier, last = case["turns"]
    assert all(set(t) == {"input"} for t in earlier)
    assert last["reference"] == "一般 3 到 5 个工作日到账。"
    assert {"contains-all": ["3", "5"]} in last["checks"]
    llm.reset()
    llm.add("退款要多久", "退款需要 14 天到账。")
    ran = _cli(root, "eval", "evals/turns.yaml")
    assert ran.exit_code == 1, ran.output  # the served answer fails again: the regression is caught
    users = [[m["content"] for m in r["messages"] if m["role"] == "user"]
             for r in llm.requests if r["path"] == "/v1/chat/completions"]
    assert users[-1] == ["你好，我想咨询退款", "订单号是 12345", "多久能到账？"]


def test_two_conversations_that_end_alike_are_two_cases_and_a_single_question_keeps_vars(served):
    server, root, _ = served
    a = _conversation(server, ["我想退 A 订单", "那多久？"], "会话-a")
    b = _conversation(server, ["我想开发票", "那多久？"], "会话-b")
    single = _conversation(server, ["退款要多久？"], "会话-c")
    for tid in (a, b, single):
        assert _cli(root, "feedback", tid, "--thumbs", "down").exit_code == 0
    out = _cli(root, "promote", "--traces", f"{a},{b},{single}", "--to", "evals/alike.yaml", "--target", "model:gpt")
    assert out.exit_code == 0, out.output
    cases = yaml.safe_load((root / "evals" / "alike.yaml").read_text(encoding="utf-8"))["cases"]
    assert [c["metadata"]["source_trace_id"] for c in cases] == [a, b, single]
    assert [c["turns"][0]["input"] for c in cases[:2]] == ["我想退 A 订单", "我想开发票"]
    assert cases[2]["vars"] == {"question": "退款要多久？"} and "turns" not in cases[2]
    again = _cli(root, "promote", "--traces", f"{a},{b}", "--to", "evals/alike.yaml")
    assert again.exit_code == 0 and len(yaml.safe_load(
        (root / "evals" / "alike.yaml").read_text(encoding="utf-8"))["cases"]) == 3


def test_a_reviewers_correction_is_listed_under_their_label(served):
    """Before: `flywheel review label … --correction` (and the dashboard's 更正 field) stored the correction with the
    label only; `traces show` and the trace page listed the label and its reason, never the correction."""
    import json

    from flywheel.feedback import queues

    server, root, _ = served
    tid = _conversation(server, ["客服电话是多少？"], "会话-d")
    store = server.state.store
    queue = queues.create_queue(store, "audit-d-corrections", overlap=1, trace_ids=[tid])
    [item] = queues.items(store, queue)
    labelled = _cli(root, "review", "label", item.id, "--annotator", "小王", "--verdict", "fail",
                    "--reason", "没有给出电话", "--correction", "客服电话是 400 800 1234。")
    assert labelled.exit_code == 0, labelled.output
    text = _cli(root, "traces", "show", tid).output
    label_line = next(i for i, line in enumerate(text.splitlines()) if "label fail" in line)
    assert text.splitlines()[label_line + 1].strip() == "correction: 客服电话是 400 800 1234。"
    data = json.loads(_cli(root, "traces", "show", tid, "--json").output)
    assert [(f["name"], f["correction"]) for f in data["feedback"]] == [("label", "客服电话是 400 800 1234。")]
    page = httpx.get(f"{server.url}/ui/traces/{tid}?lang=zh", timeout=30).text
    assert "审核标签" in page and "不通过" in page and "更正：客服电话是 400 800 1234。" in page


def test_export_eval_keeps_a_later_turns_conversation_too(served):
    from flywheel.feedback import queues

    server, root, _ = served
    tid = _conversation(server, ["我要改收货地址", "改成公司地址"], "会话-e")
    store = server.state.store
    queue = queues.create_queue(store, "audit-d-export", overlap=1, trace_ids=[tid])
    [item] = queues.items(store, queue)
    queues.label(store, item.id, "小李", "pass")
    out = _cli(root, "export", "eval", str(root / "evals" / "exported.yaml"), "--queue", "audit-d-export", "--split", "1",
               "--target", "model:gpt")
    assert out.exit_code == 0, out.output
    [case] = yaml.safe_load((root / "evals" / "exported.yaml").read_text(encoding="utf-8"))["cases"]
    assert [t["input"] for t in case["turns"]] == ["我要改收货地址", "改成公司地址"]
    assert case["turns"][-1]["reference"] == "好的，我明白了。"  # a passed answer is the reference


def test_trace_search_takes_space_separated_words(served):
    """Before: `flywheel traces --search "退款 政策"` (and the dashboard's search box) looked for the two words with
    the space between them, so it found nothing for "退款 refund 政策是什么"."""
    import json

    server, root, _ = served
    both = _conversation(server, ["退款 refund 政策是什么"], "会话-f")
    one = _conversation(server, ["退款要多久？"], "会话-g")
    tracer.flush()  # the server's trace writer runs in the background: both traces stored before searching

    def found(text: str) -> set[str]:
        out = _cli(root, "traces", "--search", text, "--json", "--last", "500")
        assert out.exit_code == 0, out.output
        return {r["trace_id"] for r in json.loads(out.output)}

    assert both in found("退款 政策") and one not in found("退款 政策")
    assert both in found("政策\u3000REFUND")  # an ideographic space separates words too; case-insensitive
    assert {both, one} <= found("退款")
    page = httpx.get(f"{server.url}/ui/traces.json", params={"search": "退款 政策"}, timeout=30).json()
    assert both in {r["trace_id"] for r in page["rows"]} and one not in {r["trace_id"] for r in page["rows"]}
