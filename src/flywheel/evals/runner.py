"""Run a suite: asyncio with a concurrency limit, per-case timeout, repeats, results stored as they finish.

    summary = run_suite(load_suite("evals/smoke.yaml", project), runtime, store=runtime.store,
                        options=RunOptions(concurrency=16, repeat=3))
    summary.pass_rate, summary.meets_threshold, summary.flaky

A run is identified by a fingerprint of the suite, the versions of what it runs (prompt hashes, the pinned
models its aliases resolve to, the configuration hash) and its options. A run that stops before the end
(Ctrl-C, a crash, a killed CI job) keeps its finished results; running the same suite again with the same
versions resumes it and runs only the missing cases. Pass `resume=False` for a fresh run.

A multi-turn case runs its turns in order in one session; each check result carries its turn
(`details.turn`), the stored output is the transcript, and the case passes when every turn passes
(`by_case[i].turns`); a turn ending in an error stops the conversation, and the error names the turn. A
multiple-choice case records one `choice` check (`details`: chosen, answer, method), the summary's
`multiple_choice` the accuracy. Checks over repeats
(`diversity`) run once per case over all its outputs, after the other checks; their result is added to each of
the case's runs (and fails them when it fails). A case var `shuffle_seed` shuffles its list vars, per repeat.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from collections import defaultdict, deque
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import flywheel
from flywheel.checks.base import Check, CheckContext
from flywheel.checks.diversity import shuffle_lists
from flywheel.config import AppConfig
from flywheel.errors import GatewayError, UserError
from flywheel.evals.case_kinds import TurnProgress, choice_summary, last_answer, turn_error, turn_rows
from flywheel.evals.choices import LETTERS
from flywheel.evals.records import CaseRun, RunStore
from flywheel.evals.stats import wilson
from flywheel.evals.suite import EvalCase, Suite
from flywheel.evals.targets import Output, Runner, input_text, make_runner
from flywheel.types import CheckResult, content_hash


@dataclass
class RunOptions:
    concurrency: int = 8
    repeat: int = 1
    timeout_s: float | None = None  # per case; default: the suite's `defaults.timeout_s`
    model: str | None = None  # run against this model alias instead of the target's (model matrix)
    resume: bool = True
    progress: bool = True
    cache: bool = False  # app targets: use the response cache (off by default: repeats really run again)


@dataclass
class RunSummary:
    run_id: str
    suite: str
    target: str
    model: str | None
    threshold: float
    repeat: int
    cases: int
    executions: int
    passed: int
    pass_rate: float
    pass_rate_ci95: list[float | None]  # Wilson interval; n = cases (repeats of a case are not independent)
    meets_threshold: bool
    errors: int
    resumed: int  # results reused from the interrupted run
    cost_usd: float
    latency_ms: dict[str, float | None]
    wall_s: float
    by_check: dict[str, dict[str, Any]]
    by_case: list[dict[str, Any]]
    flaky: list[str]
    versions: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    judges: list[dict[str, Any]] = field(default_factory=list)  # each judge's last measured agreement
    multiple_choice: dict[str, Any] | None = None  # {cases, executions, correct, accuracy, methods}
    results: list[CaseRun] = field(default_factory=list, repr=False)

    def to_dict(self, results: bool = False) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "results"}
        if results:
            d["results"] = [r.to_dict() for r in self.results]
        return d


class RuntimeServices:
    """What checks reach through ctx.services, built lazily (no gateway unless a check asks for it)."""

    def __init__(self, runtime: Any, judge_model: str | None):
        self._runtime = runtime
        self.judge_model = judge_model

    @property
    def gateway(self) -> Any:
        return self._runtime.gateway

    @cached_property
    def embedder(self) -> Any:
        """The project's retrieval embedder (`retrieval.embedder` in flywheel.yaml), or None."""
        from flywheel.retrieval.embedders import build_embedder

        config = self._runtime.config
        return build_embedder(
            config.retrieval, config.models, self._runtime.project.where("retrieval", "embedder")
        )


# ---------------------------------------------------------------- versions


def collect_versions(
    suite: Suite, runtime: Any, model: str | None = None, prompts: dict[str, str] | None = None
) -> dict[str, Any]:
    """Prompt versions (as the built target declares them: `Runner.versions()`), pinned models of every
    alias involved (with fallbacks), config hash. What each answer actually used is read from the answers
    (`observed_models`, `observed_prompt_versions` in the summary)."""
    config = runtime.config
    aliases: set[str] = set()
    target = suite.target
    if target.kind == "app":
        app = config.apps.get(target.name) or AppConfig()
        aliases.add(model or app.model)
    elif target.kind == "model":
        aliases.add(model or target.name)
    for case in suite.cases:
        for check in case.checks:
            if check.needs_llm:
                inner = getattr(check, "inner", check)
                aliases.add(getattr(inner, "model", None) or suite.judge or "default")
    pinned: dict[str, str] = {}
    pending = sorted(aliases)
    while pending:
        alias = pending.pop()
        spec = config.models.get(alias)
        if spec is None or alias in pinned:
            continue
        pinned[alias] = spec.pinned
        pending.extend(spec.fallbacks)
    return {
        "config_hash": content_hash(config.model_dump_json()),
        "models": dict(sorted(pinned.items())),
        "prompts": dict(prompts or {}),
        "flywheel": flywheel.__version__,
    }


def fingerprint(
    suite: Suite, versions: dict[str, Any], options: RunOptions, suite_hash: str | None = None
) -> str:
    return content_hash(
        suite_hash or suite.hash,
        json.dumps(versions, sort_keys=True),
        str(options.repeat),
        str(options.model),
        "cache" if options.cache else "",
    )


# ---------------------------------------------------------------- one case


def per_output(checks: list[Check]) -> list[Check]:
    """The checks that look at one output (not the ones over a case's repeats, such as `diversity`)."""
    return [c for c in checks if not getattr(c, "over_repeats", False)]


async def _checked(checks: list[Check], out: Output, ctx: CheckContext) -> list[CheckResult]:
    if any(c.needs_llm or c.blocking for c in checks):  # judges and models: off the event loop
        return list(await asyncio.gather(*(c.arun(out.text, ctx) for c in checks)))
    return [c.run(out.text, ctx) for c in checks]


def _context(question: str, vars: dict[str, Any], reference: str | None, out: Output, services: Any) -> CheckContext:
    return CheckContext(input=question, vars=vars, reference=reference, sources=out.sources,
                        system_prompt=out.system_prompt, latency_ms=out.latency_ms, cost_usd=out.cost_usd,
                        trace_id=out.trace_id, services=services)


def _record(result: CaseRun, out: Output) -> None:
    result.output, result.latency_ms, result.cost_usd = out.text, out.latency_ms, out.cost_usd
    result.trace_id, result.models, result.prompt_versions = out.trace_id, out.models, out.prompt_versions
    result.usage, result.cache, result.refusal = out.usage, out.cache, out.refusal


async def _single(case: EvalCase, vars: dict[str, Any], result: CaseRun, runner: Runner, services: Any) -> None:
    out = await runner.call(vars)
    _record(result, out)
    result.checks = await _checked(per_output(case.checks), out, _context(result.input, vars, case.reference,
                                                                           out, services))


async def _turns(
    case: EvalCase, vars: dict[str, Any], result: CaseRun, runner: Runner, services: Any, progress: TurnProgress
) -> None:
    """The turns in order, each checked as soon as it is answered; when a turn fails with an error (or the case
    times out) the turns before it keep their outputs and checks, and the later ones are not sent."""
    outs: list[Output] = []
    transcript: list[str] = []
    checks: list[CheckResult] = []
    progress.turn = 1
    try:
        async for out in runner.converse(vars, [t.input for t in case.turns]):
            n = len(outs) + 1
            turn = case.turns[n - 1]
            ctx = _context(turn.input, vars, turn.reference or case.reference, out, services)
            for check in await _checked(per_output(turn.checks), out, ctx):
                check.details, check.reason = {**check.details, "turn": n}, f"turn {n}: {check.reason}"
                checks.append(check)
            outs.append(out)
            transcript.append(f"[turn {n}] {turn.input}\n{out.text}")
            progress.turn = n + 1
    finally:
        if outs:
            _record(result, outs[-1])
            result.output = "\n\n".join(transcript)
            result.latency_ms = sum(o.latency_ms for o in outs)
            result.cost_usd = sum(o.cost_usd or 0.0 for o in outs)
            result.models = sorted({m for o in outs for m in o.models})
            result.usage = {k: sum(o.usage.get(k, 0) for o in outs) for k in ("input_tokens", "output_tokens")}
            result.checks = checks


async def _choice(case: EvalCase, vars: dict[str, Any], result: CaseRun, runner: Runner) -> None:
    chosen, out, method = await runner.choose(vars, case.choices)
    _record(result, out)
    answer = case.answer if case.answer is not None else -1
    right = f"{LETTERS[answer]}. {case.choices[answer]}"
    said = f"{LETTERS[chosen]}. {case.choices[chosen]}" if chosen is not None else "no choice it could read"
    check = CheckResult(passed=chosen == answer, score=1.0 if chosen == answer else 0.0, name="choice",
                        reason=f"chose {said} (by {method}); right: {right}",
                        spec=content_hash(json.dumps([case.choices, answer], ensure_ascii=False)),
                        details={"chosen": chosen, "answer": answer, "method": method})
    result.checks = [check]


async def run_case(
    case: EvalCase, repeat_index: int, runner: Runner, services: Any, timeout_s: float
) -> CaseRun:
    vars = case.vars
    if "shuffle_seed" in vars:  # each repeat its own order of the list vars, reproducibly
        vars = shuffle_lists({k: v for k, v in vars.items() if k != "shuffle_seed"},
                             f"{vars['shuffle_seed']}:{repeat_index}")
    question = case.turns[0].input if case.turns else input_text(vars)
    # a conversation's reference is its last turn's (what a reader compares the final answer with)
    reference = case.reference or (case.turns[-1].reference if case.turns else None)
    result = CaseRun(case.id, repeat_index, passed=False, score=0.0, output=None, input=question, vars=case.vars,
                     reference=reference)
    progress = TurnProgress()
    try:
        async with asyncio.timeout(timeout_s):
            if case.turns:
                await _turns(case, vars, result, runner, services, progress)
            elif case.choices:
                await _choice(case, vars, result, runner)
            else:
                await _single(case, vars, result, runner, services)
    except TimeoutError:
        result.error = f"timed out after {timeout_s:g} s"
    except GatewayError as exc:  # the endpoint failed for this case; the next may work
        result.error = exc.message
    except UserError:
        raise  # a mistake in the suite or configuration: stop the run and say so
    except Exception as exc:  # noqa: BLE001 - a crashing target is this case's failure, not the run's
        result.error = f"{type(exc).__name__}: {exc}"
    if result.error is not None and case.turns:  # the turns before keep their outputs, checks and cost
        result.error = turn_error(progress.turn, len(case.turns), result.error)
        result.latency_ms = None  # a broken-off conversation's time is no conversation's latency
    if result.error is None:
        result.passed = all(c.passed for c in result.checks)
        result.score = statistics.fmean(c.score for c in result.checks) if result.checks else 1.0
    return result.scrubbed()  # checks saw the real output; what is stored and shown has no secrets


def over_repeats(suite: Suite, results: list[CaseRun], services: Any) -> None:
    """Run each case's checks over repeats (diversity) on all its outputs; add the result to each of its runs."""
    by_case: dict[str, list[CaseRun]] = defaultdict(list)
    for r in results:
        by_case[r.case_id].append(r)
    for case in suite.cases:
        group = [c for c in (case.turns[-1].checks if case.turns else case.checks) if getattr(c, "over_repeats", False)]
        runs = [r for r in by_case.get(case.id, []) if r.error is None]
        if not group or not runs:
            continue
        outputs = [last_answer(case, r) for r in sorted(runs, key=lambda r: r.repeat_index)]
        question = case.turns[-1].input if case.turns else runs[0].input
        reference = (case.turns[-1].reference if case.turns else None) or case.reference
        ctx = CheckContext(input=question, vars=case.vars, reference=reference, services=services)
        for check in group:
            verdict = check.run_many(outputs, ctx)  # type: ignore[attr-defined]
            if case.turns:
                verdict.details = {**verdict.details, "turn": len(case.turns)}
            for r in runs:
                r.checks = [c for c in r.checks if c.spec != verdict.spec or c.name != verdict.name] + [verdict]
                r.passed = all(c.passed for c in r.checks)
                r.score = statistics.fmean(c.score for c in r.checks)


# ---------------------------------------------------------------- the run


def run_suite(
    suite: Suite, runtime: Any, *, store: Any = None, options: RunOptions | None = None
) -> RunSummary:
    """Synchronous entry point; see `arun_suite`."""
    return asyncio.run(arun_suite(suite, runtime, store=store, options=options))


async def arun_suite(
    suite: Suite, runtime: Any, *, store: Any = None, options: RunOptions | None = None
) -> RunSummary:
    """Run every case `repeat` times; with a `store` (a Store, or a RunStore such as `RunStore.open(runtime)`),
    results are saved as they finish and runs resume."""
    opts = options or RunOptions()
    if opts.repeat < 1 or opts.concurrency < 1:
        raise UserError("--repeat and --concurrency must be at least 1")
    started = time.perf_counter()
    timeout = opts.timeout_s or suite.timeout_s
    # a broken target fails here, before a run is recorded
    runner = make_runner(
        suite, runtime, opts.model, workers=opts.concurrency, timeout_s=timeout, cache=opts.cache
    )
    runs = store if isinstance(store, RunStore) or store is None else RunStore(store)
    run_id: str | None = None
    try:
        versions = collect_versions(suite, runtime, opts.model, runner.versions())
        run_id, done = _open_run(runs, suite, versions, opts)
        finished = {(r.case_id, r.repeat_index) for r in done}
        jobs = deque((c, i) for c in suite.cases for i in range(opts.repeat) if (c.id, i) not in finished)
        results = list(done)
        services = RuntimeServices(runtime, suite.judge)

        async def worker(advance: Any) -> None:
            while jobs:
                case, index = jobs.popleft()
                result = await run_case(case, index, runner, services, timeout)
                results.append(result)
                if runs is not None:
                    runs.save(run_id, result)
                advance()

        with _progress(suite, len(jobs)) if opts.progress and jobs else nullcontext() as progress:
            advance = (lambda: progress.advance(0)) if progress is not None else (lambda: None)
            try:
                async with asyncio.TaskGroup() as group:
                    for _ in range(min(opts.concurrency, len(jobs))):
                        group.create_task(worker(advance))
            except* UserError as eg:
                raise eg.exceptions[0] from None
        over_repeats(suite, results, services)
    except BaseException as exc:
        if runs is not None and run_id is not None:
            # never left `running`: a failed run says why; both kinds resume with the same fingerprint
            runs.fail(run_id, exc)
        raise
    finally:
        await runner.aclose()
        if runs is not None:
            runs.flush()  # whatever finished is saved, so the next run resumes from here
    summary = summarize(suite, run_id, results, opts, versions, len(done), time.perf_counter() - started)
    if runs is not None:
        runs.finish(run_id, summary.pass_rate, summary.to_dict())
    return summary


def _open_run(
    runs: RunStore | None, suite: Suite, versions: dict[str, Any], opts: RunOptions
) -> tuple[str, list[CaseRun]]:
    """(run id, results already saved): the interrupted run with the same fingerprint, else a new run."""
    suite_hash = suite.hash  # hashes every case: once
    key = fingerprint(suite, versions, opts, suite_hash)
    if runs is not None and opts.resume:
        run_id = runs.resumable(key)
        if run_id is not None:
            runs.reopen(run_id)
            return run_id, runs.load_results(run_id)
    run_id = uuid.uuid4().hex
    if runs is not None:
        runs.create(run_id, suite=suite.name, suite_path=str(suite.path), suite_hash=suite_hash, fingerprint=key,
                    target=str(suite.target), model=opts.model, repeat=opts.repeat, threshold=suite.threshold,
                    cases_total=len(suite.cases), versions=versions)
    return run_id, []


def _progress(suite: Suite, total: int) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    progress.add_task(suite.name, total=total)
    return progress


# ---------------------------------------------------------------- summary


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return round(ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo), 3)


def summarize(
    suite: Suite,
    run_id: str,
    results: list[CaseRun],
    opts: RunOptions,
    versions: dict[str, Any],
    resumed: int,
    wall_s: float,
) -> RunSummary:
    order = {c.id: i for i, c in enumerate(suite.cases)}
    results.sort(key=lambda r: (order.get(r.case_id, len(order)), r.repeat_index))
    by_case: dict[str, list[CaseRun]] = defaultdict(list)
    for r in results:
        by_case[r.case_id].append(r)
    cases: list[dict[str, Any]] = []
    for case in suite.cases:
        runs = by_case.get(case.id, [])
        passes = sum(r.passed for r in runs)
        rate = passes / len(runs) if runs else 0.0
        entry: dict[str, Any] = {
            "id": case.id,
            "kind": case.kind,
            "runs": len(runs),
            "passes": passes,
            "pass_rate": round(rate, 4),
            "flaky": 0 < passes < len(runs),
            "errors": sum(r.error is not None for r in runs),
        }
        if case.turns:
            entry["turns"] = turn_rows(case, runs)
        cases.append(entry)
    checks: dict[str, dict[str, Any]] = {}
    for r in results:
        for c in r.checks:
            entry = checks.setdefault(c.name, {"passed": 0, "total": 0, "errors": 0})
            entry["total"] += 1
            entry["passed"] += c.passed
            entry["errors"] += c.error is not None
    for entry in checks.values():
        entry["pass_rate"] = round(entry["passed"] / entry["total"], 4) if entry["total"] else None
    passed = sum(r.passed for r in results)
    pass_rate = passed / len(results) if results else 0.0
    judged_cases = sum(1 for c in cases if c["runs"])
    latencies = [r.latency_ms for r in results if r.latency_ms is not None]
    observed_models = sorted({m for r in results for m in r.models})
    observed_prompts = sorted({p for r in results for p in r.prompt_versions})
    versions = {**versions, "observed_models": observed_models, "observed_prompt_versions": observed_prompts}
    return RunSummary(
        run_id=run_id,
        suite=suite.name,
        target=str(suite.target),
        model=opts.model,
        threshold=suite.threshold,
        repeat=opts.repeat,
        cases=len(suite.cases),
        executions=len(results),
        passed=passed,
        pass_rate=round(pass_rate, 4),
        pass_rate_ci95=list(wilson(pass_rate, judged_cases)) if judged_cases else [None, None],
        meets_threshold=pass_rate >= suite.threshold and bool(results),
        errors=sum(r.error is not None for r in results),
        resumed=resumed,
        cost_usd=round(sum(r.cost_usd or 0.0 for r in results), 8),
        latency_ms={
            "p50": _percentile(latencies, 0.5),
            "p95": _percentile(latencies, 0.95),
            "mean": round(statistics.fmean(latencies), 3) if latencies else None,
        },
        wall_s=round(wall_s, 3),
        by_check=dict(sorted(checks.items())),
        by_case=cases,
        flaky=[c["id"] for c in cases if c["flaky"]],
        versions=versions,
        warnings=list(suite.warnings),
        multiple_choice=choice_summary(suite, results),
        results=results,
    )
