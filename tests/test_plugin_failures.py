"""Plugins that go wrong (docs/plugins.md): a module that fails to import, an entry point naming the wrong kind of
object or a factory with the wrong parameters, a name taken by a built-in or by another plugin. Each is one error
naming the plugin and its entry point (exit 2 from the CLI), and every other name keeps working. A provider
plugin is usable as `provider:` in flywheel.yaml."""

from __future__ import annotations

import logging
import sys
import textwrap

import pytest
from click.testing import CliRunner

from flywheel.errors import ConfigError
from flywheel.registry import RegistryError

MODULES = {
    "fwx_good": '''
        from flywheel.checks.base import Check
        from flywheel.gateway.providers import BaseProvider, ProviderResponse
        from flywheel.types import CheckResult, Usage


        class Shouting(Check):
            name = "shouting"

            def evaluate(self, output, ctx):
                ok = output.isupper()
                return CheckResult(passed=ok, score=float(ok), reason="upper" if ok else "not upper")


        class Echo(BaseProvider):
            name = "fwx_echo"

            def __init__(self, alias):
                self.alias = alias

            def chat(self, alias, request, timeout):
                return ProviderResponse("ECHO " + request.last_user(), Usage(input_tokens=1, output_tokens=1),
                                        alias.model, "stop")
    ''',
    "fwx_broken": 'raise RuntimeError("plugin blew up at import")\n',
    "fwx_wrong": '''
        def not_a_check(x):
            return x


        def provider_without_alias():
            return None


        def app_without_cfg(runtime):
            return None
    ''',
    "fwx_other": '''
        from flywheel.checks.base import Check


        class Other(Check):
            name = "other"
    ''',
}

ENTRY_POINTS = {
    "fwx-good": "[flywheel.checks]\nfwx_shouting = fwx_good:Shouting\nfwx_boom = fwx_broken:Thing\n"
                "fwx_notcheck = fwx_wrong:not_a_check\n\n"
                "[flywheel.providers]\nfwx_echo = fwx_good:Echo\nfwx_noalias = fwx_wrong:provider_without_alias\n\n"
                "[flywheel.apps]\nfwx_nocfg = fwx_wrong:app_without_cfg\nfwx_boomapp = fwx_broken:app\n",
}
DUPLICATES = {"fwx-dup": "[flywheel.checks]\ncontains = fwx_other:Other\nfwx_shouting = fwx_other:Other\n"}


def _install(folder, dists: dict[str, str]) -> None:
    for dist, eps in dists.items():
        info = folder / f"{dist.replace('-', '_')}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n", encoding="utf-8")
        (info / "entry_points.txt").write_text(eps, encoding="utf-8")


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    for name, code in MODULES.items():
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(code), encoding="utf-8")
    _install(tmp_path, ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(tmp_path))
    from flywheel.apps.registry import APP_KINDS
    from flywheel.checks.base import CHECKS
    from flywheel.gateway.providers import PROVIDERS

    added = {CHECKS: ("fwx_shouting", "fwx_boom", "fwx_notcheck"), PROVIDERS: ("fwx_echo", "fwx_noalias"),
             APP_KINDS: ("fwx_nocfg", "fwx_boomapp")}
    for reg in added:
        reg._plugins_loaded = False  # as in a fresh process
    yield tmp_path
    for name in MODULES:
        sys.modules.pop(name, None)
    for reg, names in added.items():
        for name in names:
            reg.unregister(name)
        reg._plugins.pop("contains", None)
        reg._plugins_loaded = False


def _cli(project, *args: str):
    from flywheel.cli import main

    return CliRunner().invoke(main, ["--project", str(project), *args])


def test_a_plugin_that_fails_to_import_names_itself_and_the_rest_works(plugins) -> None:
    from flywheel.checks import build

    with pytest.raises(RegistryError) as err:
        build("fwx_boom")
    message = err.value.message
    assert "check 'fwx_boom' of plugin fwx-good" in message and "fwx_boom = fwx_broken:Thing" in message
    assert "RuntimeError: plugin blew up at import" in message and "pip uninstall fwx-good" in err.value.hint
    assert build("fwx_shouting").run("HELLO").passed  # the same plugin's other entry, and the built-ins, work
    assert build("contains", "x").run("x").passed
    with pytest.raises(RegistryError, match="could not be imported"):  # every use says so, not a stale None
        build("fwx_boom")


def test_an_entry_point_naming_the_wrong_kind_of_object_is_an_error(plugins, tmp_path) -> None:
    from flywheel.checks import build
    from flywheel.gateway.providers import resolve_factory

    with pytest.raises(RegistryError) as err:
        build("fwx_notcheck")
    assert "plugin fwx-good (entry point flywheel.checks: fwx_notcheck = fwx_wrong:not_a_check)" in err.value.message
    assert "is not a subclass of flywheel.checks.base.Check" in err.value.message
    with pytest.raises(RegistryError, match=r"cannot be called as `factory\(alias\)`"):
        resolve_factory("fwx_noalias")
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"text": "HELLO"}\n', encoding="utf-8")
    (tmp_path / "flywheel.yaml").write_text("apps: {}\n", encoding="utf-8")
    result = _cli(tmp_path, "check", "fwx_notcheck", str(rows))
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "fwx_notcheck = fwx_wrong:not_a_check" in result.output


def test_an_app_factory_with_the_wrong_parameters_points_at_the_kind(plugins, tmp_path) -> None:
    (tmp_path / "flywheel.yaml").write_text("apps:\n  bad:\n    kind: fwx_nocfg\n  boom:\n    kind: fwx_boomapp\n",
                                            encoding="utf-8")
    result = _cli(tmp_path, "ask", "--app", "bad", "hello")
    assert result.exit_code == 2, result.output
    assert "flywheel.yaml:3" in result.output and "fwx_nocfg = fwx_wrong:app_without_cfg" in result.output
    assert "cannot be called as `factory(runtime, name, cfg, cache=True)`" in result.output
    result = _cli(tmp_path, "ask", "--app", "boom", "hello")
    assert result.exit_code == 2 and "flywheel.yaml:5" in result.output
    assert "RuntimeError: plugin blew up at import" in result.output and "Traceback" not in result.output


def test_a_plugin_taking_a_builtin_name_is_ignored_with_a_warning_and_the_rest_loads(plugins, caplog) -> None:
    from flywheel.checks.base import CHECKS
    from flywheel.checks.text import Contains

    _install(plugins, DUPLICATES)

    with caplog.at_level(logging.WARNING, logger="flywheel.registry"):
        names = CHECKS.names()
    assert "fwx_notcheck" in names  # entries after the collision are registered too
    assert CHECKS.get("contains") is Contains
    assert "ignoring plugin fwx-dup (entry point flywheel.checks: contains = fwx_other:Other)" in caplog.text
    assert "existing=flywheel.checks.text:Contains" in caplog.text


def test_two_plugins_claiming_one_name_make_that_name_an_error(plugins) -> None:
    from flywheel.checks import build

    _install(plugins, DUPLICATES)

    with pytest.raises(RegistryError) as err:
        build("fwx_shouting")
    assert "claimed by two plugins" in err.value.message
    assert "(plugin fwx-good)" in err.value.message and "(plugin fwx-dup)" in err.value.message
    assert build("contains", "x").run("x").passed


def test_a_provider_plugin_is_usable_in_flywheel_yaml(plugins, tmp_path) -> None:
    from flywheel.config import Project
    from flywheel.gateway import Gateway
    from flywheel.types import ChatRequest, Message

    (tmp_path / "flywheel.yaml").write_text(
        "models:\n  default: {provider: extractive}\n  e: {provider: fwx_echo, model: echo-1}\n", encoding="utf-8")
    project = Project.load(tmp_path)
    answer = Gateway(project.config.models).chat(ChatRequest(messages=[Message(role="user", content="hi")], model="e"))
    assert answer.text == "ECHO hi"
    (tmp_path / "flywheel.yaml").write_text("models:\n  e: {provider: fwx_ecoh, model: m}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        Project.load(tmp_path)
    assert err.value.where.endswith("flywheel.yaml:2")
    assert "unknown model provider 'fwx_ecoh' — did you mean 'fwx_echo'?" in err.value.message

