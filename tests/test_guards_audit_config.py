"""Config typos that used to be accepted silently (found by the S6 guards/tracing audit): each now stops start-up
with a clear message (file:line where the YAML gives one) instead of a guard that never fires, PII stored in
clear, or an OTLP exporter failing at run time."""

from __future__ import annotations

import pytest

from flywheel.apps.runtime import pii_masker
from flywheel.config import Project
from flywheel.errors import ConfigError
from flywheel.guards import GuardPolicy


def load(tmp_path, tracing: str) -> Project:
    (tmp_path / "flywheel.yaml").write_text(f"models:\n  m: {{provider: extractive}}\ntracing:\n{tracing}\n",
                                            encoding="utf-8")
    return Project.load(tmp_path)


@pytest.mark.parametrize(("line", "words"), [
    ("  otlp_endpoint: localhost:4318", "not an OTLP/HTTP collector URL"),
    ("  otlp_endpoint: ftp://collector:4318", "not an OTLP/HTTP collector URL"),
    ("  redact: ['([a-z']", "not a valid regular expression"),
])
def test_tracing_typos_stop_with_file_and_line(tmp_path, line, words):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, line)
    assert words in str(err.value) and "flywheel.yaml:4" in str(err.value)


def test_a_good_otlp_endpoint_still_loads(tmp_path):
    assert load(tmp_path, "  otlp_endpoint: http://127.0.0.1:4318").config.tracing.otlp_endpoint


def test_unknown_pii_entity_in_a_guard_is_a_config_error_not_a_guard_that_never_fires():
    with pytest.raises(ConfigError, match="unknown PII entity type.*EMAILS"):
        GuardPolicy.from_config({"input": [{"check": "pii", "entities": ["EMAILS"], "on_fail": "block"}]})
    ok = GuardPolicy.from_config({"input": [{"check": "pii", "entities": ["EMAIL", "CN_ID"], "on_fail": "block"}]})
    assert ok.input.run("我的身份证号 11010519491231002X").refused


def test_unknown_pii_entity_in_tracing_redact_pii_stops_start_up():
    with pytest.raises(ConfigError, match="tracing.redact_pii.*PHONES"):
        pii_masker(["PHONES"])
    masker = pii_masker(["EMAIL"])
    assert masker is not None and masker("mail ann@example.com") == "mail <EMAIL_ADDRESS>"


def test_unknown_pii_entity_in_tracing_redact_pii_names_its_line(tmp_path):
    from flywheel.apps.runtime import Runtime
    from flywheel.config import Project

    (tmp_path / "flywheel.yaml").write_text("tracing:\n  redact_pii: [EMAIL, PHONES]\n", encoding="utf-8")
    with Runtime(Project.load(tmp_path)) as rt, pytest.raises(ConfigError) as info:
        rt.store  # noqa: B018 - opening the store attaches tracing with the masker
    assert info.value.where is not None and info.value.where.endswith("flywheel.yaml:2")
