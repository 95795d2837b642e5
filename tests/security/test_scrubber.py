"""The one secret scrubber (`flywheel.text.scrub_secrets`), `safe_display` and the tenant rule, as units."""

from __future__ import annotations

import pytest

from flywheel.checks.pii import find_pii
from flywheel.config import validate_tenant
from flywheel.errors import UserError
from flywheel.text import safe_display, scrub_secrets
from flywheel.text.secrets import secret_env_values
from flywheel.tracing.redact import Redactor
from security.plants import found, secrets


@pytest.mark.parametrize("seed", range(5))
def test_every_planted_shape_is_scrubbed(seed):
    plants = secrets(seed)
    assert len(plants) >= 14
    for p in plants:
        out = scrub_secrets(p.sentence)
        assert found(out, [p]) == [], (p.name, out)
        assert "[REDACTED]" in out


def test_all_plants_in_one_text_and_in_spans():
    plants = secrets(7)
    text = "\n".join(p.sentence for p in plants)
    assert found(scrub_secrets(text), plants) == []
    assert found(str(Redactor().clean({"messages": [{"content": text}]})), plants) == []


@pytest.mark.parametrize("text", [
    "commit 3f786850e387550fdab836ed7e6dc881de23001b fixed it",  # a git SHA-1 is no AWS secret
    "aws docs at commit 3f786850e387550fdab836ed7e6dc881de23001b",
    "set max_tokens=512 and top_k: 40",
    "monkey: 3, passwords: 2",
    "the task-abcdefghijklmnopqrstuvwxyz0123 finished",
    "the password is stored in the vault",
    "the key is important for the lock",
    "uuid 123e4567-e89b-12d3-a456-426614174000",
    "在北京的密钥管理服务里轮换",  # the word for key, no value
    "https://example.com/path?q=1",
    "api_key=${OPENAI_API_KEY}",  # placeholders in docs and config templates are no credentials
    "use postgresql://user:password@host:5432/db",
    "send `Authorization: Bearer <key>`",
    "render_as_string(hide_password=True)",
])
def test_ordinary_text_is_left_alone(text):
    assert scrub_secrets(text) == text


def test_cjk_glued_key_is_scrubbed_and_the_words_around_it_stay():
    key = secrets(3)[0].value
    assert scrub_secrets(f"密钥是{key}，请保密") == "密钥是[REDACTED]，请保密"


def test_exact_values_and_secret_environment_variables():
    env = {"ACME_API_KEY": "plain-looking-value-4f9a2c", "HOME": "/home/x", "MY_LLM": "odd-name-secret-1"}
    values = secret_env_values(env, names=["MY_LLM"])
    assert sorted(values) == ["odd-name-secret-1", "plain-looking-value-4f9a2c"]
    assert scrub_secrets("401: bad key odd-name-secret-1", values=values) == "401: bad key [REDACTED]"


def test_the_pii_check_covers_the_same_shapes():
    """A `pii` guard with on_fail: redact masks every planted secret (as SECRET, or inside a wider span such as
    the URL that holds a password)."""
    for p in secrets(11):
        start = p.sentence.index(p.value)
        spans = find_pii(p.sentence)
        assert any(e.start <= start and start + len(p.value) <= e.end for e in spans), (p.name, p.sentence, spans)


def test_safe_display_neutralises_escape_codes_and_line_breaks():
    hostile = "report\x1b[2J\x1b]0;owned\x07\x1b]8;;http://evil\x1b\\click\x1b]8;;\x1b\\\nfake: ok\u202etxt.exe"
    shown = safe_display(hostile)
    assert "\x1b" not in shown and "\n" not in shown and "\u202e" not in shown and "\x07" not in shown
    assert shown.startswith("report") and "\\n" in shown
    kept = safe_display("line one\nline two\x1b[31m red", multiline=True)
    assert kept == "line one\nline two red"
    assert safe_display("普通的中文 text") == "普通的中文 text"


@pytest.mark.parametrize("tenant", ["", "   ", "a\nb", "acme\x1b[31m", "x" * 101, " acme", "a\u202eb", None])
def test_bad_tenants_are_rejected(tenant):
    with pytest.raises(UserError):
        validate_tenant(tenant)


@pytest.mark.parametrize("tenant", ["default", "acme-corp", "客户A", "team.eu_1"])
def test_good_tenants_pass(tenant):
    assert validate_tenant(tenant) == tenant
