"""An unknown app or model alias given on the command line is the option's mistake: the error names the option
(`--app 'nope': no such app; apps: … — did you mean …?`), exit 2, and never blames a flywheel.yaml line."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from flywheel.cli import main
from flywheel.registry import unknown_name


@pytest.fixture
def project(server, tmp_path):
    (tmp_path / "flywheel.yaml").write_text(
        "retrieval: {embedder: none}\n"
        "models:\n"
        "  fake:\n"
        "    model: fake-model\n"
        f"    base_url: {server.base_url}\n"
        "  strong:\n"
        "    model: strong-model\n"
        f"    base_url: {server.base_url}\n"
        "apps:\n"
        "  support:\n"
        "    kind: chat\n"
        "    model: fake\n", encoding="utf-8")
    return tmp_path


def run(project, *args: str):
    return CliRunner().invoke(main, ["--project", str(project), *args])


@pytest.mark.parametrize("args,expected", [
    (("chat", "--app", "nope", "hi"), "--app 'nope': no such app; apps: docs_qa, support"),
    (("chat", "--app", "suport", "hi"), "--app 'suport': no such app; apps: docs_qa, support — did you mean 'support'?"),
    (("chat", "--app", "support", "--model", "nope", "hi"), "--model 'nope': no such model alias; model aliases: default, fake, strong"),
    (("chat", "--model", "strnog", "hi"), "--model 'strnog': no such model alias; model aliases: default, fake, strong — did you mean 'strong'?"),
    (("ask", "--app", "nope", "hi"), "--app 'nope': no such app; apps: docs_qa, support"),
    (("ask", "--model", "fak", "hi"), "--model 'fak': no such model alias; model aliases: default, fake, strong — did you mean 'fake'?"),
    (("eval", "--models", "fake,strnog", "evals"), "--models 'strnog': no such model alias"),
    (("compare", "aaaa", "bbbb", "--judge", "nope"), "--judge 'nope': no such model alias; model aliases: default, fake, strong"),
    (("compare", "--against-traces", "3", "--judge", "fake", "--app", "nope"), "--app 'nope': no such app"),
])
def test_an_unknown_name_on_the_command_line_blames_the_option(project, args, expected):
    (project / "evals").mkdir()
    (project / "evals" / "smoke.yaml").write_text("target: model:fake\ncases:\n  - vars: {question: hi}\n", encoding="utf-8")
    result = run(project, *args)
    assert result.exit_code == 2, result.output
    assert f"error: {expected}" in result.stderr
    assert "flywheel.yaml:" not in result.output and "Traceback" not in result.output


def test_names_from_the_config_file_still_point_at_their_line():
    err = unknown_name("app", "nope", ["docs_qa"], where="flywheel.yaml:9")
    assert err.where == "flywheel.yaml:9" and err.message == "unknown app 'nope' (known apps: docs_qa)"
    opt = unknown_name("app", "nope", [], option="--app")
    assert opt.where is None and opt.message == "--app 'nope': no such app; no apps are defined"
