"""The pytest plugin collects YAML suites as tests (run in a subprocess against the fake LLM), and
`assert_checks` for Python tests."""
# ruff: noqa: F811 - pytest fixtures imported from test_evals_support are redefined as parameters

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from test_evals_support import CAPITALS_SUITE, llm, project, write_suite  # noqa: F401 - fixtures

from flywheel.evals import assert_checks
from flywheel.evals.pytest_plugin import is_suite

SUITE = CAPITALS_SUITE + """\
  - id: spain
    vars: {question: "Capital of Spain?"}
    checks: [{contains: Madrid}, {max_words: 10}]
"""


def plugin_args() -> list[str]:
    """`-p flywheel.evals.pytest_plugin` unless its pytest11 entry point loads it (twice is an error)."""
    installed = any(ep.value == "flywheel.evals.pytest_plugin" for ep in entry_points(group="pytest11"))
    return [] if installed else ["-p", "flywheel.evals.pytest_plugin"]


def pytest_run(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            *plugin_args(),
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "addopts=",
            *args,
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_pytest_collects_yaml_suites_as_one_test_per_case(tmp_path: Path, llm, project) -> None:
    llm.add(r"France", "Paris.")
    llm.add(r"Italy", "Milan, I think.")
    llm.add(r"Spain", "Madrid.")
    write_suite(tmp_path / "evals" / "strict.yaml", SUITE % 1.0)
    (tmp_path / "evals" / "not_a_suite.yaml").write_text("just: data\n")
    out = pytest_run(tmp_path, "evals/", "-rA")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "1 failed, 2 passed" in out.stdout
    assert "case `italy` failed" in out.stdout and "FAIL contains" in out.stdout and "Milan" in out.stdout
    assert "states 2 check(s)" in out.stdout  # the warning for the case with two checks
    assert "PASSED evals/strict.yaml::france" in out.stdout

    one = pytest_run(tmp_path, "evals/strict.yaml", "-k", "france")
    assert one.returncode == 0 and "1 passed, 2 deselected" in one.stdout
    france_requests = [r for r in llm.requests if "France" in str(r["messages"])]
    assert len(france_requests) == 2 and len(llm.requests) == 4  # -k ran only the selected case


def test_failures_within_the_threshold_are_xfail(tmp_path: Path, llm, project) -> None:
    llm.add(r"France", "Paris.")
    llm.add(r"Italy", "Milan.")
    llm.add(r"Spain", "Madrid.")
    write_suite(tmp_path / "evals" / "lenient.yaml", SUITE % 0.6)
    out = pytest_run(tmp_path, "evals/")
    assert out.returncode == 0, out.stdout
    assert "2 passed, 1 xfailed" in out.stdout


def test_broken_suite_is_a_collection_error_with_file_line(tmp_path: Path, project) -> None:
    write_suite(tmp_path / "evals" / "bad.yaml", "target: model:small\ncases:\n  - checks: [{contians: x}]\n")
    out = pytest_run(tmp_path, "evals/")
    assert out.returncode == 2 and "bad.yaml:3" in out.stdout and "unknown check" in out.stdout


def test_is_suite_needs_target_and_cases(tmp_path: Path) -> None:
    assert is_suite(write_suite(tmp_path / "a.yaml", "target: app:docs_qa\ncases: []\n"))
    assert not is_suite(write_suite(tmp_path / "b.yaml", "cases: []\n"))
    assert not is_suite(write_suite(tmp_path / "c.txt", "target: x\ncases: []\n"))


def test_assert_checks_in_python_tests() -> None:
    results = assert_checks('{"answer": "Paris"}', ["is-json", {"contains": "Paris"}, {"max_words": 5}])
    assert [r.name for r in results] == ["is-json", "contains", "max_words"]
    with pytest.raises(AssertionError) as err:
        assert_checks("London is big.", [{"contains": "Paris"}, {"max_words": 1}, {"not-contains": "Rome"}])
    message = str(err.value)
    assert "2 of 3 checks failed" in message and "contains: did not find 'Paris'" in message
    assert "max_words" in message and "not-contains" not in message
    with pytest.raises(AssertionError, match="latency"):
        assert_checks("x", [{"latency": 100}], latency_ms=250.0)


def test_suites_bypass_the_response_cache_unless_flywheel_cache(tmp_path: Path, llm, project) -> None:
    with (tmp_path / "flywheel.yaml").open("a", encoding="utf-8") as fh:
        fh.write("cache: {exact: true}\napps:\n  support: {kind: chat, model: small}\n")
    llm.add(r"France", "Paris.")
    write_suite(
        tmp_path / "evals" / "app.yaml",
        """\
        target: app:support
        cases:
          - id: france
            vars: {question: "Capital of France?"}
            checks: [{contains: Paris}, {max_words: 10}, {cost: 0.01}]
        """,
    )
    calls = []
    for extra in ([], ["--flywheel-cache"], ["--flywheel-cache"]):
        out = pytest_run(tmp_path, "evals/", *extra)
        assert out.returncode == 0, out.stdout + out.stderr
        calls.append(len(llm.requests))
    # bypassed: nothing was cached by the first session; with --flywheel-cache the third is a cache hit
    assert calls == [1, 2, 2]


def test_plain_pytest_collects_suites_only_when_asked(tmp_path: Path, llm, project) -> None:
    """Judges may be paid: a plain `pytest` leaves eval YAML alone; naming the folder, --flywheel-evals or the
    `flywheel_evals` ini option collects it."""
    llm.add(r"France", "Paris.")
    llm.add(r"Italy", "Rome.")
    llm.add(r"Spain", "Madrid.")
    write_suite(tmp_path / "evals" / "strict.yaml", SUITE % 1.0)
    plain = pytest_run(tmp_path)
    assert plain.returncode == 5 and "no tests ran" in plain.stdout, plain.stdout  # 5: nothing collected
    assert llm.requests == []
    assert "3 passed" in pytest_run(tmp_path, "--flywheel-evals").stdout
    assert "3 passed" in pytest_run(tmp_path, "-o", "flywheel_evals=true").stdout
    assert "3 passed" in pytest_run(tmp_path, "evals").stdout
