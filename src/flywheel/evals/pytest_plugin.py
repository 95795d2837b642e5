"""pytest plugin: `pytest evals/` collects YAML eval suites and promptfoo configs, one test per case.

Enabled by the `pytest11` entry point `flywheel = "flywheel.evals.pytest_plugin"`, or explicitly with
`pytest -p flywheel.evals.pytest_plugin evals/`. A YAML file is a suite when it has top-level `target:` and
`cases:` keys; it is a promptfoo config when `flywheel eval` reads it as one (named promptfooconfig.yaml, or
top-level `prompts:`, `tests:` and `providers:`/`targets:` without `target:`); other YAML files are left
alone. A promptfoo config gives one test per test × prompt × provider, `france[small]` (the prompt's label
leads the brackets when there are several prompts). The project is the nearest folder above the suite holding
flywheel.yaml (or `--flywheel-project DIR`). The selected cases of a suite run together, concurrently, on
the first of them; nothing is written to the store. App targets bypass the response cache unless
`--flywheel-cache` is given. A plain `pytest` in a project does not run suites (their judges may be paid):
name them (`pytest evals/`), or pass `--flywheel-evals` / set the ini option `flywheel_evals = true`.

A failing case fails its test, unless the suite has `threshold:` below 1 and the selected cases still meet
it: then the failure is reported as xfail ("tolerated by the threshold").
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest


def _top_key(name: str) -> re.Pattern[str]:
    return re.compile(rf"^['\"]?{name}['\"]?\s*:", re.MULTILINE)


_SUITE_KEYS = (_top_key("target"), _top_key("cases"))
_PROMPTFOO_KEYS = (_top_key("prompts"), _top_key("tests"), _top_key("(?:providers|targets)"))


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("flywheel", "flywheel eval suites")
    group.addoption(
        "--flywheel-project", default=None, help="Project folder (default: nearest with flywheel.yaml)."
    )
    group.addoption("--flywheel-concurrency", type=int, default=8, help="Cases of a suite in flight at once.")
    group.addoption(
        "--flywheel-evals",
        action="store_true",
        default=False,
        help="Collect eval suites (YAML) anywhere under the test paths; without it, only suites inside paths "
        "named on the command line (`pytest evals/`) are collected: judges may be paid.",
    )
    parser.addini("flywheel_evals", "Always collect eval suites (YAML), as --flywheel-evals.", type="bool",
                  default=False)
    group.addoption(
        "--flywheel-cache",
        action="store_true",
        default=False,
        help="Let app targets use the response cache (off by default: every case really runs).",
    )


def is_suite(path: Path) -> bool:
    """A file the plugin collects: a flywheel suite or a promptfoo config (decided as `flywheel eval` does,
    from the top-level keys, without parsing the YAML)."""
    if path.suffix not in (".yaml", ".yml"):
        return False
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:65536]
    except OSError:
        return False
    if all(rx.search(head) for rx in _SUITE_KEYS):
        return True
    return path.stem == "promptfooconfig" or (
        not _SUITE_KEYS[0].search(head) and all(rx.search(head) for rx in _PROMPTFOO_KEYS)
    )


def _asked_for(config: pytest.Config, file_path: Path) -> bool:
    """Suites are collected when asked: --flywheel-evals, the `flywheel_evals` ini option, or a path named on the
    command line that holds the file (`pytest evals/`). A plain `pytest` (or `pytest .`) leaves them alone."""
    if config.getoption("flywheel_evals") or config.getini("flywheel_evals"):
        return True
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        return False
    here = Path(config.invocation_params.dir).resolve()
    for arg in config.args:
        named = (here / arg.split("::")[0]).resolve()
        if named != here and (named == file_path.resolve() or named in file_path.resolve().parents):
            return True
    return False


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Collector | None:
    if is_suite(file_path) and _asked_for(parent.config, file_path):
        return SuiteFile.from_parent(parent, path=file_path)
    return None


class _Runtimes:
    """One Runtime per project folder for the whole session, closed at its end."""

    def __init__(self) -> None:
        self.by_root: dict[Path, Any] = {}

    def get(self, project: Any) -> Any:
        from flywheel.apps.runtime import Runtime

        rt = self.by_root.get(project.root)
        if rt is None:
            rt = self.by_root[project.root] = Runtime(project, tracing=False)
        return rt

    def close(self) -> None:
        for rt in self.by_root.values():
            rt.close()
        self.by_root.clear()


_runtimes = _Runtimes()


def pytest_sessionfinish(session: pytest.Session) -> None:
    _runtimes.close()


def _project_for(path: Path, option: str | None) -> Any:
    from flywheel.config import CONFIG_NAME, Project

    if option:
        return Project.load(option)
    for folder in path.resolve().parents:
        if (folder / CONFIG_NAME).is_file():
            return Project.load(folder)
    return Project.load(path.resolve().parent)


class CaseFailed(Exception):
    def __init__(self, result: Any):
        super().__init__(result.case_id)
        self.result = result


class SuiteRun:
    """One suite run against one model (None: the suite's own target): its selected cases run together once."""

    def __init__(self, suite: Any, model: str | None):
        self.suite = suite
        self.model = model
        self.results: dict[str, Any] | None = None
        self.summary: Any = None


class SuiteFile(pytest.File):
    """A flywheel suite (one run), or a promptfoo config (a run per prompt × provider)."""

    def collect(self) -> Any:
        from flywheel.errors import UserError
        from flywheel.evals.suite import load_suites

        try:
            self.project = _project_for(self.path, self.config.getoption("flywheel_project"))
            suites = load_suites(self.path, self.project)
        except UserError as exc:
            raise self.CollectError(exc.render()) from None
        for w in dict.fromkeys(w for suite in suites for w in suite.warnings):
            self.warn(pytest.PytestWarning(w))
        runs = [
            SuiteRun(suite, model)
            for suite in suites
            for model in (suite.models if len(suite.models) > 1 else [None])
        ]
        for run in runs:
            tag = [run.suite.target.prompt.name] if len(suites) > 1 else []
            tag += [run.model] if run.model else []
            for case in run.suite.cases:
                name = f"{case.id}[{'-'.join(tag)}]" if tag else case.id
                yield CaseItem.from_parent(self, name=name, case=case, run=run)

    def run_selected(self, run: SuiteRun) -> dict[str, Any]:
        """Run every selected case of `run` once, concurrently; results by case id."""
        if run.results is None:
            from dataclasses import replace

            from flywheel.evals.calibration_judges import calibrate_for_run
            from flywheel.evals.runner import RunOptions, arun_suite

            wanted = {
                item.case.id for item in self.session.items if isinstance(item, CaseItem) and item.run is run
            }
            runtime = _runtimes.get(self.project)
            judges = calibrate_for_run(run.suite, runtime)  # judges use their calibrated prompts
            for line in judges:
                if line.get("warning"):
                    self.warn(pytest.PytestWarning(line["warning"]))
            selected = replace(run.suite, cases=[c for c in run.suite.cases if c.id in wanted])
            options = RunOptions(
                concurrency=self.config.getoption("flywheel_concurrency"),
                progress=False,
                cache=bool(self.config.getoption("flywheel_cache")),
                model=run.model,
            )
            summary = asyncio.run(arun_suite(selected, runtime, store=None, options=options))
            summary.judges = judges
            run.summary = summary
            run.results = {r.case_id: r for r in summary.results}
        return run.results


class CaseItem(pytest.Item):
    def __init__(self, *, case: Any, run: SuiteRun, **kwargs: Any):
        super().__init__(**kwargs)
        self.case = case
        self.run = run

    def runtest(self) -> None:
        parent: SuiteFile = self.parent  # type: ignore[assignment]
        result = parent.run_selected(self.run)[self.case.id]
        if result.passed:
            return
        suite, summary = self.run.suite, self.run.summary
        if suite.threshold < 1 and summary.meets_threshold:
            pytest.xfail(
                f"tolerated by the suite threshold {suite.threshold:g} (pass rate {summary.pass_rate:.2f})"
            )
        raise CaseFailed(result)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if not isinstance(excinfo.value, CaseFailed):
            return str(super().repr_failure(excinfo))
        r = excinfo.value.result
        model = f" on {self.run.model}" if self.run.model else ""
        lines = [f"case `{r.case_id}` failed{model} ({self.case.where})"]
        if r.error:
            lines.append(f"  error: {r.error}")
        for c in r.checks:
            mark = "ok  " if c.passed else "FAIL"
            lines.append(f"  {mark} {c.name}: {c.error or c.reason}")
        lines.append(f"  output: {(r.output or '')[:500]!r}")
        return "\n".join(lines)

    def reportinfo(self) -> tuple[Path, int, str]:
        line = int(self.case.where.rsplit(":", 1)[-1]) if ":" in self.case.where else 1
        return self.path, line - 1, f"eval case {self.case.id}"
