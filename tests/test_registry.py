"""The one registry: collisions, did-you-mean, lazy "module:object" entries and entry-point plugins."""

from __future__ import annotations

import sys
import textwrap

import pytest

from flywheel.errors import UserError
from flywheel.registry import Registry, RegistryError, did_you_mean, unknown_alias


class Thing:
    pass


class Other:
    pass


def test_collision_names_both_sides_and_replace_is_explicit() -> None:
    reg: Registry[type] = Registry("widget")
    reg.register("x", Thing)
    reg.register("x", Thing)  # the same object again (a module imported twice) is fine
    with pytest.raises(RegistryError) as err:
        reg.register("x", Other)
    assert "'x' already registered" in err.value.message
    assert "existing=test_registry:Thing" in err.value.message and "new=test_registry:Other" in err.value.message
    reg.register("x", Other, replace=True)
    assert reg.get("x") is Other


def test_unknown_names_suggest_the_closest_and_list_all() -> None:
    reg: Registry[type] = Registry("check", hint="any check may be prefixed with not-")
    for name in ("contains", "icontains", "regex"):
        reg.register(name, Thing)
    with pytest.raises(UserError) as err:
        reg.get("contians", where="suite.yaml:4")
    assert err.value.where == "suite.yaml:4"
    assert "unknown check 'contians' — did you mean 'contains'" in err.value.message
    assert "known checks: contains, icontains, regex" in err.value.message
    assert err.value.hint == "any check may be prefixed with not-"
    assert did_you_mean("zzz", ["contains"]) == []


def test_lazy_entries_are_imported_on_first_use_and_missing_ones_say_so() -> None:
    reg: Registry[object] = Registry("thing")
    reg.register("od", "collections:OrderedDict")
    assert reg.raw("od") == "collections:OrderedDict"
    from collections import OrderedDict

    assert reg.get("od") is OrderedDict and reg.raw("od") is OrderedDict
    reg.register("od", OrderedDict)  # the object a lazy entry named: no collision
    reg.register("gone", "no_such_module_xyz:Thing")
    with pytest.raises(RegistryError, match="'gone' is not available"):
        reg.get("gone")
    reg.register("typo", "collections:NoSuchThing")
    with pytest.raises(RegistryError, match="does not exist"):
        reg.get("typo")


def test_the_unknown_alias_error_is_one_message_everywhere() -> None:
    from flywheel.config import ModelAlias
    from flywheel.gateway import Gateway

    expected = unknown_alias("smal", ["small", "strong"]).message
    gw = Gateway({"small": ModelAlias(provider="extractive"), "strong": ModelAlias(provider="extractive")})
    with pytest.raises(UserError) as err:
        gw.resolve("smal")
    assert err.value.message == expected
    assert expected == "unknown model alias 'smal' — did you mean 'small'? (known model aliases: small, strong)"


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """An installed plugin distribution: a module plus entry points in all three groups."""
    (tmp_path / "fw_plugin_demo.py").write_text(textwrap.dedent('''
        from flywheel.checks.base import Check, register
        from flywheel.types import CheckResult


        @register
        class Shouting(Check):
            """shouting: the output is all upper case."""

            name = "shouting"

            def evaluate(self, output, ctx):
                ok = output.isupper()
                return CheckResult(passed=ok, score=float(ok), reason="upper" if ok else "not upper")


        class EchoProvider:
            def __init__(self, alias):
                self.alias = alias


        def echo_app(runtime, name, cfg, cache=True):
            return ("echo-app", name, cfg.options)
    '''), encoding="utf-8")
    dist = tmp_path / "fw_plugin_demo-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fw-plugin-demo\nVersion: 1.0\n", encoding="utf-8")
    (dist / "entry_points.txt").write_text(
        "[flywheel.checks]\nshouting = fw_plugin_demo:Shouting\n\n"
        "[flywheel.providers]\necho = fw_plugin_demo:EchoProvider\n\n"
        "[flywheel.apps]\necho = fw_plugin_demo:echo_app\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    from flywheel.apps.registry import APP_KINDS
    from flywheel.checks.base import CHECKS
    from flywheel.gateway.providers import PROVIDERS

    registries = ((CHECKS, "shouting"), (PROVIDERS, "echo"), (APP_KINDS, "echo"))
    for reg, _ in registries:
        reg._plugins_loaded = False  # as in a fresh process: plugins are read on the first miss
    yield
    sys.modules.pop("fw_plugin_demo", None)
    for reg, name in registries:
        reg.unregister(name)
        reg._plugins_loaded = False


def test_entry_point_plugins_add_checks_providers_and_app_kinds(plugin, tmp_path) -> None:
    from flywheel.apps.runtime import Runtime
    from flywheel.checks import build
    from flywheel.config import Project
    from flywheel.gateway.providers import resolve_factory

    assert build("shouting").run("HELLO").passed and not build("shouting").run("hello").passed
    assert resolve_factory("echo").__name__ == "EchoProvider"
    (tmp_path / "flywheel.yaml").write_text("apps:\n  bot:\n    kind: echo\n    options: {anything: 1}\n",
                                            encoding="utf-8")
    with Runtime(Project.load(tmp_path), tracing=False) as rt:
        assert rt.app("bot") == ("echo-app", "bot", {"anything": 1})


def test_a_plugin_cannot_silently_take_a_builtin_name(tmp_path, monkeypatch, caplog) -> None:
    dist = tmp_path / "fw_evil-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fw-evil\nVersion: 1.0\n", encoding="utf-8")
    (dist / "entry_points.txt").write_text("[flywheel.widgets]\nx = evil_mod:X\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg: Registry[type] = Registry("widget", group="flywheel.widgets")
    reg.register("x", Thing)
    assert reg.names() == ["x"] and reg.get("x") is Thing  # the built-in keeps its name, loudly
    assert "existing=test_registry:Thing" in caplog.text and "plugin fw-evil" in caplog.text
