"""pytest plugin: `pytest evals/` collects YAML eval suites, one test per case.

Enabled by the `pytest11` entry point `flywheel = "flywheel.evals.pytest_plugin"`, or explicitly with
`pytest -p flywheel.evals.pytest_plugin evals/`. A YAML file is a suite when it has top-level `target:` and
`cases:` keys; other YAML files are left alone. The project is the nearest folder above the suite holding
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

_SUITE_KEYS = (re.compile(r"^target\s*:", re.MULTILINE), re.compile(r"^cases\s*:", re.MULTILINE))


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
    if path.suffix not in (".yaml", ".yml"):
        return False
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:65536]
    except OSError:
        return False
    return all(rx.search(head) for rx in _SUITE_KEYS)


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


class SuiteFile(pytest.File):
    def collect(self) -> Any:
        from flywheel.errors import UserError
        from flywheel.evals.suite import load_suite

        try:
            self.project = _project_for(self.path, self.config.getoption("flywheel_project"))
            self.suite = load_suite(self.path, self.project)
        except UserError as exc:
            raise self.CollectError(exc.render()) from None
        self.results: dict[str, Any] | None = None
        for w in self.suite.warnings:
            self.warn(pytest.PytestWarning(w))
        for case in self.suite.cases:
            yield CaseItem.from_parent(self, name=case.id, case=case)

    def run_selected(self) -> dict[str, Any]:
        """Run every selected case of this suite once, concurrently; results by case id."""
        if self.results is None:
            from dataclasses import replace

            from flywheel.evals.runner import RunOptions, arun_suite

            wanted = {
                item.name for item in self.session.items if isinstance(item, CaseItem) and item.parent is self
            }
            from flywheel.evals.calibration_judges import calibrate_for_run

            runtime = _runtimes.get(self.project)
            judges = calibrate_for_run(self.suite, runtime)  # judges use their calibrated prompts
            for line in judges:
                if line.get("warning"):
                    self.warn(pytest.PytestWarning(line["warning"]))
            suite = self.suite
            selected = replace(suite, cases=[c for c in suite.cases if c.id in wanted])
            options = RunOptions(
                concurrency=self.config.getoption("flywheel_concurrency"),
                progress=False,
                cache=bool(self.config.getoption("flywheel_cache")),
            )
            summary = asyncio.run(
                arun_suite(selected, runtime, store=None, options=options)
            )
            summary.judges = judges
            self.summary = summary
            self.results = {r.case_id: r for r in summary.results}
        return self.results


class CaseItem(pytest.Item):
    def __init__(self, *, case: Any, **kwargs: Any):
        super().__init__(**kwargs)
        self.case = case

    def runtest(self) -> None:
        parent: SuiteFile = self.parent  # type: ignore[assignment]
        result = parent.run_selected()[self.case.id]
        if result.passed:
            return
        if parent.suite.threshold < 1 and parent.summary.meets_threshold:
            pytest.xfail(
                f"tolerated by the suite threshold {parent.suite.threshold:g} "
                f"(pass rate {parent.summary.pass_rate:.2f})"
            )
        raise CaseFailed(result)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if not isinstance(excinfo.value, CaseFailed):
            return str(super().repr_failure(excinfo))
        r = excinfo.value.result
        lines = [f"case `{r.case_id}` failed ({self.case.where})"]
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
