"""Full-width digits and letters (typed with a Chinese input method in full-width mode) are PII too (found by the
S7 guards audit: `ａｂｃ＠ｅｘａｍｐｌｅ．ｃｏｍ` and a full-width bank card passed a `pii` guard untouched, and a
full-width mobile number was only a generic PHONE_NUMBER)."""

from __future__ import annotations

import pytest

from flywheel.checks.pii import Vault, redact, redact_for_storage, sensitive_pii
from flywheel.guards import GuardPolicy


@pytest.mark.parametrize(("text", "kind", "value"), [
    ("邮箱 ａｂｃ＠ｅｘａｍｐｌｅ．ｃｏｍ，谢谢", "EMAIL_ADDRESS", "ａｂｃ＠ｅｘａｍｐｌｅ．ｃｏｍ"),
    ("我的卡号是６２２２０２１２３４５６７８９０１２８", "CN_BANK_CARD", "６２２２０２１２３４５６７８９０１２８"),
    ("手机号１３８１２３４５６７８", "CN_MOBILE", "１３８１２３４５６７８"),
    ("身份证：１１０１０５１９４９１２３１００２Ｘ", "CN_RESIDENT_ID", "１１０１０５１９４９１２３１００２Ｘ"),
    ("mail ann＠example.com　now", "EMAIL_ADDRESS", "ann＠example.com"),
])
def test_full_width_pii_is_found_with_the_text_as_written(text, kind, value):
    assert [(e.type, e.text) for e in sensitive_pii(text)] == [(kind, value)]
    masked, vault = redact(text, vault=Vault(nonce=""))
    assert value not in masked and vault == {f"<{kind}_1>": value}
    assert value not in redact_for_storage(text)


def test_a_full_width_email_no_longer_passes_an_input_guard():
    out = GuardPolicy.from_config({"input": [{"check": "pii", "on_fail": "block"}]}).input.run(
        "请发到 ｚｈａｎｇｓａｎ＠ｑｑ．ｃｏｍ")
    assert out.refused and out.text == "抱歉，我无法协助处理这个请求。"
