"""A new user's audit of the CLI: `workflow show` keeps a step's whole output within reach (cut to the terminal
like `traces show`, whole in a pipe, `--step ID` and `--json`); `promote --to` finds a suite where `flywheel eval`
does and prints where it wrote; the eval tables stay readable on a 60- or 80-column terminal, Chinese names
included (two cells a character)."""

from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from click.testing import CliRunner
from review_support import add_traces
from rich.cells import cell_len
from rich.console import Console

import flywheel.cli.promote  # noqa: F401 - registers `flywheel promote`
from flywheel.cli import main
from flywheel.config import Project
from flywheel.evals.report import render_matrix, render_strategies
from flywheel.store import Store

LONG_ANSWER = ("Pin the version on the alias so that every eval result records what answered; after an upgrade "
               "compare the two runs with `flywheel eval --models old,new` and read the diff: THE-END")


def _cli(root: Path, *args: str, columns: str | None = None):
    return CliRunner().invoke(main, ["--project", str(root), *args], env={"COLUMNS": columns, "LINES": None})


# ------------------------------------------------------------------------------------------ workflow show

def _workflow_run(root: Path) -> str:
    (root / "flywheel.yaml").write_text("models: {default: {provider: extractive}}\n", encoding="utf-8")
    (root / "wfsteps_audit.py").write_text(f"def draft(topic):\n    return {LONG_ANSWER!r}\n", encoding="utf-8")
    (root / "wf.yaml").write_text(textwrap.dedent("""\
        name: essay
        inputs: [topic]
        steps:
          - id: 草稿
            python: wfsteps_audit:draft
        """), encoding="utf-8")
    run = _cli(root, "workflow", "run", str(root / "wf.yaml"), "-i", "topic=pinning", "--json")
    assert run.exit_code == 0, run.output
    return json.loads(run.stdout)["run_id"]


def test_workflow_show_keeps_a_steps_whole_output_within_reach(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    run_id = _workflow_run(tmp_path)
    piped = _cli(tmp_path, "workflow", "show", run_id)  # a file or a pipe: nothing is cut (was: 100 characters)
    assert piped.exit_code == 0, piped.output
    step = next(line for line in piped.stdout.splitlines() if "草稿" in line)
    assert LONG_ANSWER in step
    narrow = _cli(tmp_path, "workflow", "show", run_id, columns="80")  # a terminal: its width, with "…"
    step = next(line for line in narrow.stdout.splitlines() if "草稿" in line)
    assert cell_len(step) <= 80 and step.endswith("…")
    whole = _cli(tmp_path, "workflow", "show", run_id, "--step", "草稿", columns="60")
    assert whole.exit_code == 0, whole.output
    assert LONG_ANSWER in whole.stdout.replace("\n", " ")
    as_json = json.loads(_cli(tmp_path, "workflow", "show", run_id, "--step", "草稿", "--json").stdout)
    assert [s["output"] for s in as_json["steps"]] == [LONG_ANSWER]
    typo = _cli(tmp_path, "workflow", "show", run_id, "--step", "草")
    assert typo.exit_code == 2 and "--step '草': no such step; steps: 草稿" in typo.output


# ------------------------------------------------------------------------------------------ promote --to

def _promote_project(root: Path) -> str:
    (root / "flywheel.yaml").write_text(textwrap.dedent("""\
        models:
          default: {provider: extractive}
        retrieval: {embedder: none}
        apps:
          docs_qa: {kind: chat, model: default}
        """), encoding="utf-8")
    with Store.open(Project.load(root).store_url) as store:
        return add_traces(store, [{"input": "How long do refunds take?", "output": "14 days."}])[0]


SUITE = "name: mine\ntarget: app:docs_qa\ncases:\n  - id: kept\n    vars: {question: \"Hi\"}\n    checks: [{max_words: 9}]\n"


def test_promote_to_is_the_suite_flywheel_eval_runs(tmp_path, monkeypatch):
    """`--to evals/x.yaml` typed beside an existing evals/x.yaml is that file, as `flywheel eval evals/x.yaml`
    finds it, not a new one in the --project folder; the printed `run it` command runs what was written."""
    project, here = tmp_path / "project", tmp_path / "here"
    project.mkdir()
    (here / "evals").mkdir(parents=True)
    (here / "evals" / "x.yaml").write_text(SUITE, encoding="utf-8")
    trace = _promote_project(project)
    monkeypatch.chdir(here)
    out = _cli(project, "promote", "--traces", trace, "--to", "evals/x.yaml", "--target", "app:docs_qa")
    assert out.exit_code == 0, out.output
    cases = yaml.safe_load((here / "evals" / "x.yaml").read_text(encoding="utf-8"))["cases"]
    assert cases[0]["id"] == "kept" and len(cases) == 2
    assert not (project / "evals" / "x.yaml").exists()
    assert "appended to evals/x.yaml: 1 case(s)" in out.output
    assert f"run it: flywheel --project {project} eval evals/x.yaml" in out.output


def test_promote_creates_a_new_suite_in_the_project_and_says_where(tmp_path, monkeypatch):
    """Nothing at --to here: the new suite goes into the project (as `flywheel --project DIR promote --to
    evals/…` always did; the demo prints such a command), and the message names that file."""
    project, here = tmp_path / "project", tmp_path / "here"
    project.mkdir()
    here.mkdir()
    trace = _promote_project(project)
    monkeypatch.chdir(here)
    out = _cli(project, "promote", "--traces", trace, "--to", "evals/new.yaml", "--target", "app:docs_qa")
    assert out.exit_code == 0, out.output
    written = project / "evals" / "new.yaml"
    assert written.is_file() and not (here / "evals").exists()
    assert f"created {written}: 1 case(s)" in out.output
    assert f"run it: flywheel --project {project} eval {written}" in out.output


# ------------------------------------------------------------------------------------------ narrow tables

ZH_MODEL = "通义千问增强版长上下文模型"  # 13 characters, 26 cells
MODELS = ["gpt-4o-mini-2024-07-18", "gpt-4o-2024-08-06-with-a-long-alias", ZH_MODEL]


def _row(model: str, meets: bool = False) -> dict:
    return {"model": model, "pass_rate": 2 / 3, "passed": 2, "executions": 3, "cost_usd": 0.000123,
            "cost_per_case": 0.000041, "latency_ms": {"p50": 1234.0, "p95": 12345.0}, "errors": 1,
            "meets_threshold": meets}


def _render(width: int, draw) -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=False, color_system=None, highlight=False)
    draw(console)
    return out.getvalue()


@pytest.mark.parametrize("width", [60, 80, 120])
def test_the_model_matrix_keeps_every_number_whole_on_a_narrow_terminal(width):
    text = _render(width, lambda c: render_matrix(c, "客服回归测试 support regressions", [_row(m) for m in MODELS],
                                                  0.8, None))
    assert max(cell_len(line) for line in text.splitlines()) <= width
    for number in ("66.7%", "2/3", "$0.000123", "$0.000041", "1,234 ms", "12,345 ms"):
        assert text.count(number) == 3, (number, text)  # was: "66.…", "$0.…", "1,2…" at 60 and 80 columns
    names = [line for line in text.splitlines() if any(m[:6] in line for m in MODELS)]
    assert len(names) == 3
    for line in names:  # a name is whole, or cut with "…" by display width: never a half Chinese character
        assert any(m in line for m in MODELS) or "…" in line


def test_names_cut_alike_become_a_list_not_a_table_of_twins():
    twins = [_row("claude-3-5-sonnet-20241022"), _row("claude-3-5-haiku-20241022")]
    text = _render(80, lambda c: render_matrix(c, "s", twins, 0.5, None))
    assert "claude-3-5-sonnet-20241022" in text and "claude-3-5-haiku-20241022" in text


def test_the_strategy_table_keeps_every_number_whole_on_a_narrow_terminal():
    rows = [{**_row(""), "strategy": s, "pass_rate_ci95": [0.2, 0.9]} for s in ("none", "self_consistency:5",
                                                                               "best_of:3:judge")]
    comparison = SimpleNamespace(suite="s", threshold=0.5, best="none", rows=lambda: rows)
    text = _render(60, lambda c: render_strategies(c, comparison))
    assert max(cell_len(line) for line in text.splitlines()) <= 60
    for number in ("66.7%", "20.0%–90.0%", "$0.000123", "12,345 ms"):
        assert text.count(number) == 3, (number, text)


@pytest.mark.parametrize("width", ["60", "80"])
def test_eval_list_keeps_ids_states_and_dates_on_a_narrow_terminal(width, monkeypatch, capsys):
    import datetime as dt

    from flywheel.cli.evals import _list

    monkeypatch.setenv("COLUMNS", width)
    rows = [{"id": f"{n}a1b2c3d4e5f6789", "suite": "客服回归测试 support regressions with a long name",
             "target": "app:support", "model": m, "status": "finished", "pass_rate": 2 / 3,
             "started_at": 1.8e9, "error": None} for n, m in enumerate(MODELS)]
    _list(rows, False)
    text = capsys.readouterr().out
    assert max(cell_len(line) for line in text.splitlines()) <= int(width)
    started = dt.datetime.fromtimestamp(1.8e9).strftime("%Y-%m-%d %H:%M")
    for n in range(3):  # was: at 80 columns the run, status, pass rate and started columns were 0 cells wide
        line = next(line for line in text.splitlines() if f"{n}a1b2c3d4e5f" in line)
        assert "finished" in line and "66.7%" in line and started in line
