"""`flywheel route compare-shadow` with a mistyped route: named as an unknown route with the closest name, like
`route report`, not reported as a route without shadow outputs."""
# ruff: noqa: F811 - the shared fixture imported from conftest is redefined as a parameter

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from conftest import server  # noqa: F401 - module-scoped fake LLM
from routes_support import write_project

import flywheel.cli.route  # noqa: F401 - registers `flywheel route`
from flywheel.cli import main


def test_compare_shadow_names_a_mistyped_route(tmp_path: Path, server) -> None:
    write_project(tmp_path, server, routes="support: {alias: small, shadow: large}\n")
    result = CliRunner().invoke(
        main, ["--project", str(tmp_path), "route", "compare-shadow", "suport", "--judge", "judge"]
    )
    assert result.exit_code == 2, result.output
    assert "unknown route 'suport'" in result.output and "support" in result.output
    assert "no shadow outputs" not in result.output and "Traceback" not in result.output
    known = CliRunner().invoke(
        main, ["--project", str(tmp_path), "route", "compare-shadow", "support", "--judge", "judge"]
    )
    assert known.exit_code == 2 and "no shadow outputs stored for route 'support'" in known.output


def test_selecting_the_shadow_alias_drops_the_shadow_copy(tmp_path: Path, server) -> None:
    """A route shadowed by `large` whose selection picks `large`: writing `{alias: large, shadow: large}` would copy
    every served request to the model that served it."""
    from flywheel.loop.routing import set_route_alias

    write_project(
        tmp_path,
        server,
        routes="faq: {alias: small, shadow: large, shadow_sample: 0.5}\n"
        "support: {alias: small, shadow: large}\n",
    )
    path = tmp_path / "flywheel.yaml"
    set_route_alias(path, "faq", "large", "picked")
    set_route_alias(path, "support", "small")
    text = path.read_text(encoding="utf-8")
    assert "  faq: {alias: large}  # picked\n" in text
    assert "  support: {alias: small, shadow: large}\n" in text  # another shadow keeps running


def test_strict_selection_says_when_the_bar_is_out_of_reach_of_the_lower_bound(
    tmp_path: Path, server
) -> None:
    """`--strict --min-pass 0.9` on a 2-case suite: no model can ever meet it; the user is told why, not only
    that no alias meets the bar."""
    server.reset()
    server.add(r"France", "Paris.")
    server.add(r"Italy", "Rome.")
    write_project(tmp_path, server)
    (tmp_path / "evals").mkdir()
    (tmp_path / "evals" / "capitals.yaml").write_text(
        "name: capitals\ntarget: model:small\nprompt: 'Q: {{question}}'\ncases:\n"
        "  - {id: fr, vars: {question: 'Capital of France?'}, checks: [{contains: Paris}]}\n"
        "  - {id: it, vars: {question: 'Capital of Italy?'}, checks: [{contains: Rome}]}\n",
        encoding="utf-8",
    )
    args = ["--project", str(tmp_path), "route", "select", "--suite", "evals/capitals.yaml", "--models"]
    result = CliRunner().invoke(main, [*args, "small,large", "--strict", "--min-pass", "0.9", "--json"])
    assert result.exit_code == 1, result.output
    warnings = json.loads(result.stdout)["warnings"]
    assert "'small' meets the bar on the observed rate, but with 2 cases even a perfect score" in " ".join(
        warnings
    )
    assert sum("lower bound of 0.34" in w for w in warnings) == 2  # both aliases passed both cases
