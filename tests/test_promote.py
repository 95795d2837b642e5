"""Traces → eval cases: a traced answer labelled `fail` with a correction becomes a case that `flywheel eval`
fails on the old prompt and passes once the prompt is fixed; PII masked, near-duplicates collapsed, appends
keep the file and never repeat a source trace, bad input leaves nothing half-written."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

import flywheel.cli.promote  # noqa: F401 - registers `flywheel promote` (until cli/__init__ lists it)
from flywheel import feedback
from flywheel.apps.runtime import Runtime
from flywheel.cli import main
from flywheel.config import Project
from flywheel.evals.promote import build_case, collapse, derive_checks, numbers
from flywheel.evals.promote_pii import CASE_FIELDS
from flywheel.evals.promote_sources import Source
from flywheel.evals.suite import load_suite
from flywheel.feedback import queues
from flywheel.testing.fake_llm import FakeLLM
from flywheel.testing.fake_llm_wire import last_user_text

OLD_SYSTEM = "You are ACME support."
FIXED_SYSTEM = "You are ACME support. Refunds take 14 days."


def _app_reply(body: dict) -> str:
    system = next((m["content"] for m in body["messages"] if m["role"] == "system"), "")
    question = last_user_text(body).lower()
    if "refund" in question:
        return "Refunds take 14 days." if "14 days" in system else "Refunds take 30 days."
    return "Open Settings > Security to reset your password."


def _judge_reply(body: dict) -> str:
    prompt = last_user_text(body)
    output = prompt[prompt.rfind("<output>"):]
    return "It states the right window.\nVerdict: PASS" if "14 days" in output else "Wrong window.\nVerdict: FAIL"


def _config(base_url: str, system: str) -> str:
    return textwrap.dedent(f"""\
        models:
          gpt: {{provider: openai_compat, base_url: "{base_url}", model: fake-app, max_retries: 0}}
          judge: {{provider: openai_compat, base_url: "{base_url}", model: fake-judge, max_retries: 0}}
        retrieval: {{embedder: none}}
        cache: {{exact: false}}
        apps:
          support: {{kind: chat, model: gpt, options: {{system: "{system}"}}}}
        """)


@pytest.fixture(scope="module")
def fake():
    with FakeLLM() as llm:
        llm.add(".", _judge_reply, model="fake-judge")
        llm.add(".", _app_reply, model="fake-app")
        yield llm


@pytest.fixture(scope="module")
def world(tmp_path_factory, fake):
    root = tmp_path_factory.mktemp("promote")
    (root / "flywheel.yaml").write_text(_config(fake.base_url, OLD_SYSTEM), encoding="utf-8")
    project = Project.load(root)
    questions = ["How long do refunds take? Write to ann.lee@example.com",
                 "how long do refunds take? write to ann.lee@example.com",  # a near-duplicate
                 "How do I reset my password?"]
    with Runtime(project) as rt:
        traces = [rt.app("support").run(q).trace_id for q in questions]
    with Runtime(project, tracing=False) as rt:
        q = queues.create_queue(rt.store, "daily", kind="binary", overlap=2, trace_ids=traces)
        ids = {it.trace_id: it.id for it in queues.items(rt.store, q)}
        for tid in traces[:2]:
            queues.label(rt.store, ids[tid], "ana", "fail", reason="wrong refund window",
                         correction="Refunds take 14 days.")
            queues.label(rt.store, ids[tid], "bo", "fail", reason="says 30 days")
        queues.label(rt.store, ids[traces[2]], "ana", "pass")
        queues.label(rt.store, ids[traces[2]], "bo", "pass")
    with Runtime(project) as rt:
        unlabelled = rt.app("support").run("Do you ship to Norway?").trace_id
    with Runtime(project, tracing=False) as rt:
        queues.create_queue(rt.store, "unlabelled", kind="binary", overlap=1, trace_ids=[unlabelled])
    return {"project": project, "traces": traces}


def _run(project: Project, *args: str):
    return CliRunner().invoke(main, ["--project", str(project.root), *args])


def test_round_trip_fail_label_to_case_that_fails_old_prompt_and_passes_fixed(world, fake):
    project, traces = world["project"], world["traces"]
    out = _run(project, "promote", "--queue", "daily", "--verdict", "fail", "--to", "evals/regressions.yaml",
               "--judge", "judge", "--json")
    assert out.exit_code == 0, out.output
    path = project.root / "evals" / "regressions.yaml"
    text = path.read_text(encoding="utf-8")
    assert "ann.lee@example.com" not in text and "<EMAIL_ADDRESS_1>" in text  # PII masked
    data = yaml.safe_load(text)
    assert data["target"] == "app:support" and data["defaults"] == {"judge": "judge"}
    [case] = data["cases"]  # the near-duplicate collapsed into the first
    assert case["metadata"]["source_trace_id"] == traces[0]
    assert case["metadata"]["duplicates"] == [traces[1]]
    assert case["metadata"]["served_answer"] == "Refunds take 30 days."
    assert case["reference"] == "Refunds take 14 days."
    checks = case["checks"]
    assert "wrong refund window" in checks[0]["judge"]["criterion"] and checks[0]["judge"]["model"] == "judge"
    assert {"contains-all": ["14"]} in checks and {"not-equals": "Refunds take 30 days."} in checks
    assert any("not-regex" in c and "30" in c["not-regex"] for c in checks)
    assert load_suite(path, project).cases[0].id == case["id"]

    assert _run(project, "eval", "evals/regressions.yaml", "--no-progress").exit_code == 1  # old prompt
    (project.root / "flywheel.yaml").write_text(_config(fake.base_url, FIXED_SYSTEM), encoding="utf-8")
    try:
        fixed = _run(Project.load(project.root), "eval", "evals/regressions.yaml", "--no-progress", "--json")
        assert fixed.exit_code == 0, fixed.output
    finally:
        (project.root / "flywheel.yaml").write_text(_config(fake.base_url, OLD_SYSTEM), encoding="utf-8")


def test_append_keeps_content_and_never_repeats_a_source_trace(world):
    project, traces = world["project"], world["traces"]
    path = project.root / "evals" / "appended.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text("# hand-written: keep me\nname: regressions\ntarget: app:support\ncases:\n"
                    "  - id: mine\n    vars: {question: \"Hello?\"}\n    checks: [{max_words: 20}]\n", encoding="utf-8")
    assert _run(project, "promote", "--queue", "daily", "--to", str(path)).exit_code == 0
    first = path.read_text(encoding="utf-8")
    assert first.startswith("# hand-written: keep me\n") and "id: mine" in first
    again = _run(project, "promote", "--queue", "daily", "--to", str(path))
    assert again.exit_code == 0 and "nothing new" in again.output
    assert path.read_text(encoding="utf-8") == first
    out = _run(project, "promote", "--traces", f"{traces[2][:10]},{traces[0]}", "--to", str(path), "--json")
    assert out.exit_code == 0, out.output
    cases = yaml.safe_load(path.read_text(encoding="utf-8"))["cases"]
    sources = [c.get("metadata", {}).get("source_trace_id") for c in cases]
    assert sources == [None, traces[0], traces[2]]
    assert len(load_suite(path, project).cases) == 3


def test_passed_answers_become_cases_that_must_keep_passing(world):
    project, traces = world["project"], world["traces"]
    out = _run(project, "promote", "--queue", "daily", "--verdict", "pass", "--to", "evals/keep.yaml")
    assert out.exit_code == 0, out.output
    [case] = yaml.safe_load((project.root / "evals" / "keep.yaml").read_text(encoding="utf-8"))["cases"]
    assert case["metadata"]["source_trace_id"] == traces[2]
    assert case["reference"] == "Open Settings > Security to reset your password."
    assert "agrees on every fact" in case["checks"][0]["judge"]
    assert not any("not-equals" in c for c in case["checks"])  # the served answer was right


def test_negative_feedback_source(world):
    project, traces = world["project"], world["traces"]
    with Runtime(project, tracing=False) as rt:
        feedback.record(rt.store, traces[2], "thumbs", "down", comment="too vague")
        feedback.record(rt.store, traces[2], "correction", "Open Settings > Security > Reset password (2 steps).")
    out = _run(project, "promote", "--feedback", "negative", "--to", "evals/fb.yaml", "--json")
    assert out.exit_code == 0, out.output
    [case] = yaml.safe_load((project.root / "evals" / "fb.yaml").read_text(encoding="utf-8"))["cases"]
    assert case["metadata"]["source_trace_id"] == traces[2] and case["reference"].endswith("(2 steps).")
    assert "too vague" in case["checks"][0]["judge"] and {"contains-all": ["2"]} in case["checks"]


def test_a_trace_nobody_complained_about_is_not_promoted_as_a_failure(world):
    """`flywheel skew` prints `promote --traces …` to cover a gap with production traces nobody reviewed: those
    cases claimed "an earlier answer to it was rejected" and `not-equals` the served answer, so an app that gave
    the same good answer again failed its own coverage case."""
    project = world["project"]
    with Runtime(project) as rt:
        tid = rt.app("support").run("Do you ship to Sweden?").trace_id
    with Runtime(project, tracing=False) as rt:
        feedback.record(rt.store, tid, "thumbs", "up")
    out = _run(project, "promote", "--traces", tid, "--to", "evals/coverage.yaml")
    assert out.exit_code == 0, out.output
    [case] = yaml.safe_load((project.root / "evals" / "coverage.yaml").read_text(encoding="utf-8"))["cases"]
    assert case["checks"] == [{"judge": "The answer correctly and helpfully answers the question."}]
    assert "reference" not in case and "no feedback against it" in case["description"]


@pytest.mark.parametrize(("args", "message"), [
    (["--queue", "nope"], "nope"),
    (["--queue", "unlabelled"], "no labels"),
    (["--traces", "ffffffffffff"], "unknown trace"),
    (["--queue", "daily", "--traces", "abc"], "exactly one of"),
    (["--queue", "daily", "--judge", "nope"], "nope"),
])
def test_bad_input_exits_2_and_writes_nothing(world, args, message):
    project = world["project"]
    target = project.root / "evals" / "bad.yaml"
    out = _run(project, "promote", *args, "--to", str(target))
    assert out.exit_code == 2, out.output
    assert message in out.output and not target.exists()
    assert not [p for p in target.parent.glob(".bad.*")]  # no temporary file left behind


def test_a_file_that_is_not_a_suite_is_left_alone(world):
    project = world["project"]
    path = project.root / "evals" / "notes.yaml"
    path.write_text("- just a list\n", encoding="utf-8")
    out = _run(project, "promote", "--queue", "daily", "--to", str(path))
    assert out.exit_code == 2 and "not a suite" in out.output
    assert path.read_text(encoding="utf-8") == "- just a list\n"


class _Embedder:
    """Covers English only; 'refund' and 'money back' questions land on the same vector."""

    def covers(self, language: str) -> bool:
        return language == "en"

    def thresholds_hold(self, language: str) -> bool:
        return self.covers(language)

    def embed(self, texts):
        return np.array([[1.0, 0.0] if ("refund" in t or "money back" in t) else [0.0, 1.0] for t in texts])


class _Glossing(_Embedder):
    """Covers Chinese too, through glosses (as the local MiniLM with CC-CEDICT): every Chinese text one vector."""

    def covers(self, language: str) -> bool:
        return language in ("en", "zh")

    def thresholds_hold(self, language: str) -> bool:
        return language == "en"

    def embed(self, texts):
        return np.array([[0.0, 1.0] if "退" in t or "密码" in t else [1.0, 0.0] for t in texts])


def test_collapse_uses_the_embedder_and_falls_back_to_jaccard():
    def src(tid: str, text: str) -> Source:
        return Source(trace_id=tid, input=text, output="")

    kept, groups, dup = collapse([src("a", "How do I get a refund?"), src("b", "Can I have my money back?"),
                                  src("c", "退款需要多久？请告诉我"), src("d", "退款需要多久？请告诉我。")],
                                 ["Where is my invoice?"], _Embedder())
    assert [s.trace_id for s in kept] == ["a", "c"] and groups == {"a": ["b"], "c": ["d"]} and dup == []
    kept, _, dup = collapse([src("e", "where is my invoice ?")], ["Where is my invoice?"], None)
    assert kept == [] and dup == ["e"]
    # the duplicate threshold was set on the model's own vectors, not glosses: Chinese is compared by its tokens
    kept, groups, _ = collapse([src("f", "退款需要多久？"), src("g", "如何重置密码？")], [], _Glossing())
    assert [s.trace_id for s in kept] == ["f", "g"]


def test_checks_from_a_correction_without_numbers():
    checks = derive_checks("too vague", "Use the Security page to reset it.", "Open Settings.", None)
    assert checks[0] == {"judge": checks[0]["judge"]} and "too vague" in checks[0]["judge"]
    assert "icontains-any" in checks[1] and "security" in checks[1]["icontains-any"]
    assert numbers("v2.1 costs 30% or 1,200 USD.") == ["30%", "1,200"]


def test_collapse_with_the_shipped_local_embedder():
    from flywheel.retrieval.embedders import local_available, local_embedder

    if not local_available():
        pytest.skip("the local embedder needs the `local` extra (onnxruntime)")
    sources = [Source(trace_id="a", input="How long do refunds take?", output=""),
               Source(trace_id="b", input="How long does a refund take?", output=""),  # Jaccard 0.5, cosine 0.94
               Source(trace_id="c", input="How do I reset my password?", output="")]
    kept, groups, _ = collapse(sources, [], local_embedder())
    assert [s.trace_id for s in kept] == ["a", "c"] and groups == {"a": ["b"]}
    assert [s.trace_id for s in collapse(sources, [], None)[0]] == ["a", "b", "c"]  # tokens alone keep both


# ---------------------------------------------------------------- personal data per field

PII_QUESTIONS = ["My invoice mail to ann.lee@example.com bounced; where do I send it?",
                 "Who handles refunds? I am bo.ray@example.org"]
PII_FIXES = ["Send it to billing@acme-corp.com, not ann.lee@example.com.",
             "Write to refunds@acme-corp.com; bo.ray@example.org gets a copy."]


@pytest.fixture(scope="module")
def pii_world(tmp_path_factory, fake):
    """Two traced answers whose corrections name a new e-mail address (the point of the fix) and the input's."""
    root = tmp_path_factory.mktemp("promote-pii")
    (root / "flywheel.yaml").write_text(_config(fake.base_url, OLD_SYSTEM), encoding="utf-8")
    project = Project.load(root)
    with Runtime(project) as rt:
        traces = [rt.app("support").run(q).trace_id for q in PII_QUESTIONS]
    with Runtime(project, tracing=False) as rt:
        for tid, fix in zip(traces, PII_FIXES, strict=True):
            feedback.record(rt.store, tid, "thumbs", "down", comment="wrong contact")
            feedback.record(rt.store, tid, "correction", fix)
    return {"project": project, "traces": traces}


def _promoted(pii_world, name: str, *args: str):
    project = pii_world["project"]
    out = _run(project, "promote", "--traces", ",".join(pii_world["traces"]), "--to", f"evals/{name}.yaml", *args)
    assert out.exit_code == 0, out.output
    cases = yaml.safe_load((project.root / "evals" / f"{name}.yaml").read_text(encoding="utf-8"))["cases"]
    return out, {c["metadata"]["source_trace_id"]: c for c in cases}


def test_promote_pseudonymises_consistently_and_warns_once_with_the_count(pii_world):
    out, cases = _promoted(pii_world, "pii-default")
    first, second = (cases[t] for t in pii_world["traces"])
    assert first["vars"]["question"] == "My invoice mail to <EMAIL_ADDRESS_1> bounced; where do I send it?"
    # the input's address keeps its number in the reference; a different address gets a different one
    assert first["reference"] == "Send it to <EMAIL_ADDRESS_2>, not <EMAIL_ADDRESS_1>."
    assert second["reference"] == "Write to <EMAIL_ADDRESS_2>; <EMAIL_ADDRESS_1> gets a copy."
    assert "<EMAIL_ADDRESS_1>" in first["checks"][0]["judge"]  # the judge's criterion names the same entity
    assert not any("email_address" in str(c.get("icontains-any", "")) for c in first["checks"])
    text = yaml.safe_dump(cases)
    assert "@example.com" not in text and "@example.org" not in text and "acme-corp.com" not in text
    assert out.stderr.count("2 corrections contain personal data only in the reference; masked; "
                            "pass --keep-pii reference to keep them") == 1


def test_promote_keep_pii_reference_and_secrets_always_masked(pii_world):
    out, cases = _promoted(pii_world, "pii-kept", "--keep-pii", "reference", "--json")
    first = cases[pii_world["traces"][0]]
    assert first["reference"] == "Send it to billing@acme-corp.com, not <EMAIL_ADDRESS_1>."
    assert "ann.lee@example.com" not in yaml.safe_dump(first) and "<EMAIL_ADDRESS_1>" in first["vars"]["question"]
    report = json.loads(out.stdout)
    assert report["warnings"] == [] and report["pii"]["kept_fields"] == ["reference"]
    assert report["pii"]["kept"] == {"reference": {"EMAIL_ADDRESS": 2}}
    assert report["pii"]["corrections_with_reference_only_pii"] == {"masked": 0, "kept": 2}

    src = Source(trace_id="f" * 32, input="Reach me at ann.lee@example.com, password: hunter2hunter2",
                 output="Use sk-proj-AbCdEfGhIjKlMnOpQrStUv12 as the key.", correction="No: ann.lee@example.com.")
    case = build_case(src, None, set(), keep=frozenset(CASE_FIELDS))  # --keep-pii all
    text = yaml.safe_dump(case)
    assert "hunter2hunter2" not in text and "sk-proj-" not in text and "<SECRET>" in text
    assert case["reference"] == "No: ann.lee@example.com." and "ann.lee@example.com" in case["vars"]["question"]


def test_promote_keep_pii_from_config_and_bad_field_names(pii_world):
    project = pii_world["project"]
    config = project.root / "flywheel.yaml"
    original = config.read_text(encoding="utf-8")
    bad = _run(project, "promote", "--traces", pii_world["traces"][0], "--to", "evals/bad-pii.yaml",
               "--keep-pii", "referense")
    assert bad.exit_code == 2 and "Traceback" not in bad.output
    assert "'referense'" in bad.output and "valid fields: input, context, served_answer, reference, reason, all, none" \
        in bad.output
    assert not (project.root / "evals" / "bad-pii.yaml").exists()
    try:
        config.write_text(original + "review: {keep_pii: [reference]}\n", encoding="utf-8")
        out, cases = _promoted(pii_world, "pii-config")
        assert cases[pii_world["traces"][0]]["reference"] == "Send it to billing@acme-corp.com, not <EMAIL_ADDRESS_1>."
        assert "warning" not in out.stderr
        config.write_text(original + "review: {keep_pii: [everything]}\n", encoding="utf-8")
        bad = _run(project, "promote", "--traces", pii_world["traces"][0], "--to", "evals/bad-pii.yaml")
        assert bad.exit_code == 2 and "review.keep_pii" in bad.output and "everything" in bad.output
    finally:
        config.write_text(original, encoding="utf-8")
