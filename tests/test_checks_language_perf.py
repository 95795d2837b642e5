"""Language detection and the latency / cost checks."""

from __future__ import annotations

import pytest

from flywheel.checks import CheckContext, build
from flywheel.checks.language import detect
from flywheel.errors import UserError


@pytest.mark.parametrize(
    "text, lang",
    [
        ("在 flywheel.yaml 的模型别名上设置 `version:` 字段即可固定版本。", "zh"),
        ("モデルのバージョンは flywheel.yaml で設定します。", "ja"),
        ("flywheel.yaml에서 모델 버전을 설정하세요.", "ko"),
        ("Set the version on the model alias in your configuration file.", "en"),
        ("Définissez la version dans le fichier de configuration pour que le modèle soit fixé.", "fr"),
        ("Setzen Sie die Version in der Konfiguration, damit das Modell nicht wechselt.", "de"),
        ("Укажите версию модели в файле конфигурации.", "ru"),
    ],
)
def test_language_detection(text: str, lang: str) -> None:
    candidates, confidence, _ = detect(text)
    assert candidates == [lang] and confidence > 0
    assert build("language", lang).run(text).passed
    assert not build("language", "en" if lang != "en" else "zh").run(text).passed


def test_language_accepts_lists_aliases_and_negation() -> None:
    zh = "这个答案是中文的。"
    assert build("language", ["en", "zh-CN"]).run(zh).passed
    assert build("language", "Chinese").run(zh).passed
    assert build("not-language", "en").run(zh).passed
    assert not build("language", "zh").run("12345 !!!").passed  # nothing to detect


def test_short_latin_text_is_not_held_against_a_latin_language() -> None:
    r = build("language", "en").run("Paris.")
    assert r.passed and r.details["detected"] == "latin-script"
    assert not build("language", "zh").run("Paris.").passed


def test_unsupported_language_lists_supported_ones() -> None:
    with pytest.raises(UserError) as err:
        build("language", "xx", where="s.yaml:9")
    assert "zh" in err.value.message and err.value.where == "s.yaml:9"


def test_latency_and_cost_read_the_context() -> None:
    ctx = CheckContext(latency_ms=800.0, cost_usd=0.003)
    assert build("latency", 1000).run("x", ctx).passed
    slow = build("latency", 400).run("x", ctx)
    assert not slow.passed and slow.score == pytest.approx(0.5)
    assert build("cost", 0.01).run("x", ctx).passed
    assert not build("cost", 0.001).run("x", ctx).passed
    assert build("not-cost", 0.001).run("x", ctx).passed


def test_unrecorded_latency_is_an_error_not_a_pass() -> None:
    r = build("latency", 1000).run("x", CheckContext())
    assert not r.passed and r.error
    negated = build("not-latency", 1000).run("x", CheckContext())
    assert not negated.passed and negated.error  # a check that could not run stays failed when negated
    with pytest.raises(UserError):
        build("cost", "cheap")
