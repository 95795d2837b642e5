"""The runner against the fake LLM: stored runs with versions, resume, repeats, timeouts, judge errors."""
# ruff: noqa: F811 - pytest fixtures imported from test_evals_support are redefined as parameters

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from sqlalchemy import select
from test_evals_support import llm, project, runtime, write_project, write_suite  # noqa: F401 - fixtures

from flywheel.apps.runtime import Runtime
from flywheel.errors import UserError
from flywheel.evals.records import RunStore
from flywheel.evals.runner import RunOptions, arun_suite, run_suite
from flywheel.evals.suite import load_suite
from flywheel.tracing import tracer
from flywheel.types import Answer, Citation, Source, Usage

QUIET = RunOptions(concurrency=4, progress=False)


def suite_of(
    tmp_path: Path,
    project,
    n: int = 3,
    checks: str = "[{contains: Paris}, {max_words: 20}, {not-contains: London}]",
    extra: str = "",
    target: str = "model:small",
) -> object:
    cases = "\n".join(
        f"  - id: c{i}\n    vars: {{question: 'capital {i}?'}}\n    checks: {checks}" for i in range(n)
    )
    text = (f"name: capitals\ntarget: {target}\nprompt: 'Q: {{{{question}}}}'\nthreshold: 0.5\n"
            f"{extra}cases:\n{cases}\n")
    if not target.startswith("model:"):
        text = text.replace("prompt: 'Q: {{question}}'\n", "")
    return load_suite(write_suite(tmp_path / "evals" / "s.yaml", text), project)


def test_run_is_stored_with_versions(tmp_path: Path, llm, store_url: str) -> None:
    llm.add(r"capital 1", "It is London.")
    llm.add(r"capital", "It is Paris.")
    project = write_project(tmp_path, llm, store=store_url)
    with Runtime(project, tracing=False) as rt:
        summary = run_suite(suite_of(tmp_path, project), rt, store=rt.store, options=QUIET)
        assert (summary.passed, summary.executions, summary.pass_rate) == (2, 3, 0.6667)
        assert summary.meets_threshold and summary.by_check["contains"] == {
            "passed": 2,
            "total": 3,
            "errors": 0,
            "pass_rate": 0.6667,
        }
        assert summary.cost_usd > 0 and summary.latency_ms["p50"] is not None
        runs = RunStore(rt.store)
        row = runs.get(summary.run_id[:8])
        assert row["status"] == "finished" and row["pass_rate"] == pytest.approx(0.6667)
        versions = row["versions"]
        assert versions["models"] == {"small": "fake-small"}
        assert list(versions["prompts"].values()) == [summary.versions["prompts"]["suite"]]
        assert len(versions["config_hash"]) == 16
        results = runs.load_results(summary.run_id)
        assert sorted(r.case_id for r in results) == ["c0", "c1", "c2"]
        failed = next(r for r in results if not r.passed)
        assert failed.output == "It is London." and [c.passed for c in failed.checks] == [False, True, False]
        assert failed.checks[0].spec and failed.input == "capital 1?"


def test_interrupted_run_resumes_without_rerunning_finished_cases(
    tmp_path: Path, llm, project, runtime
) -> None:
    llm.latency = 0.05
    llm.add(r"capital", "Paris.")
    suite = suite_of(tmp_path, project, n=10)
    opts = RunOptions(concurrency=2, progress=False)

    async def interrupted() -> None:
        task = asyncio.create_task(arun_suite(suite, runtime, store=runtime.store, options=opts))
        while len(llm.requests) < 5:
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(interrupted())
    runs = RunStore(runtime.store)
    with runtime.store.connect() as conn:
        ((run_id, status),) = conn.execute(select(runs.runs.c.id, runs.runs.c.status)).all()
    assert status == "interrupted"  # not stuck in `running`; it resumes below
    done = runs.load_results(run_id)
    assert 3 <= len(done) < 10
    sent_before = len(llm.requests)

    summary = run_suite(suite, runtime, store=runtime.store, options=opts)
    replayed = [json.dumps(r["messages"]) for r in llm.requests[sent_before:]]
    assert len(replayed) == 10 - len(done)
    assert not any(r.input in text for r in done for text in replayed)  # no finished case ran again
    assert summary.run_id == run_id and summary.resumed == len(done)
    assert summary.executions == 10 and summary.passed == 10
    assert runs.get(run_id)["status"] == "finished"
    fresh = run_suite(suite, runtime, store=runtime.store, options=RunOptions(progress=False, resume=False))
    assert fresh.run_id != run_id and fresh.resumed == 0


def test_repeat_reports_per_case_pass_rate_and_flaky_cases(tmp_path: Path, llm, project, runtime) -> None:
    counter = {"n": 0}

    def alternating(body: dict) -> str:
        counter["n"] += 1
        return "Paris." if counter["n"] % 2 else "Lyon."

    llm.add(r"capital 0", alternating)
    llm.add(r"capital", "Paris.")
    summary = run_suite(
        suite_of(tmp_path, project, n=2), runtime, options=RunOptions(repeat=4, progress=False)
    )
    c0, c1 = summary.by_case
    assert (c0["runs"], c0["passes"], c0["pass_rate"], c0["flaky"]) == (4, 2, 0.5, True)
    assert (c1["pass_rate"], c1["flaky"]) == (1.0, False)
    assert summary.flaky == ["c0"] and summary.executions == 8 and summary.pass_rate == 0.75


def test_per_case_timeout_is_a_failed_case_not_a_crash(tmp_path: Path, llm, project, runtime) -> None:
    llm.add(r"capital 1", "Paris.", latency=3.0)
    llm.add(r"capital", "Paris.")
    summary = run_suite(
        suite_of(tmp_path, project), runtime, options=RunOptions(timeout_s=0.5, progress=False)
    )
    slow = next(r for r in summary.results if r.case_id == "c1")
    assert not slow.passed and "timed out" in slow.error and summary.errors == 1 and summary.passed == 2


def test_malformed_judge_output_never_crashes_the_run(tmp_path: Path, llm, project, runtime) -> None:
    llm.add(r"Verdict: PASS", "¯\\_(ツ)_/¯", model="fake-judge")  # the judge prompt asks for a verdict
    llm.add(r"capital", "Paris.")
    suite = suite_of(
        tmp_path,
        project,
        checks="[{contains: Paris}, {judge: 'Names a city.'}, {max_words: 9}]",
        extra="defaults: {judge: judge}\n",
    )
    summary = run_suite(suite, runtime, options=QUIET)
    assert summary.executions == 3 and summary.passed == 0 and summary.errors == 0
    assert summary.by_check["judge"]["errors"] == 3
    judged = summary.results[0].checks[1]
    assert "no verdict" in judged.error and judged.details["raw"] == "¯\\_(ツ)_/¯"
    assert summary.versions["models"] == {"judge": "fake-judge", "small": "fake-small"}


def test_python_target_and_config_mistakes(tmp_path: Path, llm, project, runtime) -> None:
    (tmp_path / "targets_mod.py").write_text(
        "def answer(question):\n    return 'Paris' if '0' in question else 'Rome'\n"
        "async def broken(question):\n    raise RuntimeError('boom')\n"
    )
    summary = run_suite(suite_of(tmp_path, project, target="targets_mod:answer"), runtime, options=QUIET)
    assert [r.passed for r in summary.results] == [True, False, False]
    crashed = run_suite(suite_of(tmp_path, project, target="targets_mod:broken"), runtime, options=QUIET)
    assert crashed.errors == 3 and "RuntimeError: boom" in crashed.results[0].error
    with pytest.raises(UserError):
        run_suite(
            suite_of(tmp_path, project, target="targets_mod:answer"),
            runtime,
            options=RunOptions(model="small", progress=False),
        )


class StubApp:
    """An app returning a fully populated Answer. It also emits a decoy llm span with another cost and model:
    the runner must read the Answer, not listen on the tracer."""

    def __init__(self) -> None:
        self.cache_flags: list[bool] = []

    def run(self, question: str, tenant: str | None = None, **options: object) -> Answer:
        decoy = {"flywheel.cost_usd": 0.5, "gen_ai.response.model": "decoy"}
        with tracer.span("docs_qa", kind="app", inputs={"question": question}) as span, tracer.span(
            "chat", kind="llm", **decoy
        ):
            pass
        model = str(options.get("model", "default"))
        return Answer(
            text='It is "the capital city of France" [1].',
            trace_id=span.trace_id,
            citations=[Citation(id=1, chunk_id="c", source="doc.md", text="Paris is the capital city of France.")],
            sources=[
                Source(n=1, chunk_id="c", source="doc.md", text="Paris is the capital city of France.", cited=True),
                Source(n=2, chunk_id="d", source="doc.md", text="Rome is the capital of Italy."),
            ],
            usage=Usage(input_tokens=100, output_tokens=20),
            cost_usd=0.002,
            models={model: f"m-{model}"},
            prompt_version="pv-123",
            cache="miss",
            app="docs_qa",
        )


def test_app_target_collects_cost_models_and_sources(tmp_path: Path, llm, project, runtime) -> None:
    built: list[dict] = []

    def app(name: str, **kw: object) -> StubApp:
        built.append(kw)
        return StubApp()

    runtime.app = app  # the real docs_qa: test_docs_qa_app_target_end_to_end
    suite = suite_of(
        tmp_path, project, target="app:docs_qa", checks="[{grounding: {}}, {contains: capital}, {cost: 0.01}]"
    )
    summary = run_suite(suite, runtime, options=QUIET)
    assert built == [{"cache": False}]  # evals bypass the response cache by default
    assert summary.passed == 3 and summary.cost_usd == pytest.approx(0.006)  # from the Answer, not the span
    assert summary.versions["observed_models"] == ["m-default"]
    assert summary.versions["observed_prompt_versions"] == ["pv-123"]
    assert summary.versions["models"] == {"default": "extractive"}
    r = summary.results[0]
    assert r.usage == {"input_tokens": 100, "output_tokens": 20} and r.cache == "miss" and r.refusal is None
    matrix_run = run_suite(suite, runtime, options=RunOptions(model="strong", progress=False, cache=True))
    assert matrix_run.versions["observed_models"] == ["m-strong"] and matrix_run.model == "strong"
    assert built[-1] == {"cache": True}


def test_similarity_uses_the_projects_retrieval_embedder(tmp_path: Path, llm, project, runtime) -> None:
    from conftest import need

    from flywheel.retrieval.embedders import local_available

    need(local_available(), "the local MiniLM embedder (extra `local`) is not installed")
    (tmp_path / "para.py").write_text(
        "def answer(question):\n    return 'To pin a model, set its version in the config.'\n"
    )
    suite = load_suite(
        write_suite(
            tmp_path / "evals" / "sim.yaml",
            """\
        target: para:answer
        cases:
          - id: close
            vars: {question: "How do I pin a model?"}
            reference: "Pin the model by setting the version field in the configuration."
            checks: [{similar: 0.6}, {not-similar: {threshold: 0.6, reference: "Bananas are yellow fruit."}},
                     {max_words: 20}]
        """,
        ),
        project,
    )
    summary = run_suite(suite, runtime, options=QUIET)
    checks = summary.results[0].checks
    assert summary.passed == 1, [c.reason for c in checks]
    assert checks[0].details["embedder"] == "all-MiniLM-L6-v2-int8" and checks[0].score > 0.6


def test_docs_qa_app_target_end_to_end(tmp_path: Path) -> None:
    from flywheel.config import Project
    from flywheel.retrieval.ingest import ingest

    (tmp_path / "flywheel.yaml").write_text("retrieval: {embedder: none}\ntracing: {enabled: false}\n")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "guide.md").write_text(
        "# Pinning\n\nTo pin a model version, set `version:` on the model alias in flywheel.yaml.\n\n"
        "# Caching\n\nThe exact cache stores answers keyed by the request.\n"
    )
    project = Project.load(tmp_path)
    suite = load_suite(
        write_suite(
            tmp_path / "evals" / "qa.yaml",
            """\
        target: app:docs_qa
        cases:
          - id: pin
            vars: {question: "How do I pin a model version?"}
            checks: [{contains: "version:"}, {grounding: {require_citations: true}}, {max_words: 80}]
          - id: cache
            vars: {question: "What does the exact cache store?"}
            checks: [{icontains: cache}, {grounding: {}}, {not-contains: "version:"}]
        """,
        ),
        project,
    )
    with Runtime(project, tracing=False) as rt:
        ingest([tmp_path / "docs"], rt.store, project.config)
        summary = run_suite(suite, rt, store=rt.store, options=QUIET)
    assert summary.passed == 2, [(r.output, [c.reason for c in r.checks]) for r in summary.results]
    assert (
        summary.versions["models"] == {"default": "extractive"} and "docs_qa" in summary.versions["prompts"]
    )
    assert summary.versions["observed_prompt_versions"] == [summary.versions["prompts"]["docs_qa"]]
    # everything comes from the Answer the real app returns (no tracer listening: tracing is off here)
    assert summary.versions["observed_models"] == ["extractive"]
    assert all(r.cache == "off" and r.cost_usd == 0.0 and r.refusal is None for r in summary.results)
    assert all(r.usage["output_tokens"] > 0 for r in summary.results)
