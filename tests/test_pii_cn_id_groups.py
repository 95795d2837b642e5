"""A Chinese resident ID written in 6-8-4 groups is still found (found by the S6 PII audit: `110105 19491231
002X` passed a `pii` guard and `redact_pii` untouched)."""

from __future__ import annotations

import pytest

from flywheel.checks.pii import Vault, find_pii, redact


@pytest.mark.parametrize("written", ["110105 19491231 002X", "110105-19491231-002X", "11010519491231002X"])
def test_grouped_resident_id_is_found_and_redacted(written):
    text = f"我的身份证号码是 {written}，请核对。"
    assert [(e.type, e.text) for e in find_pii(text)] == [("CN_RESIDENT_ID", written)]
    assert redact(text, vault=Vault(nonce=""))[0] == "我的身份证号码是 <CN_RESIDENT_ID_1>，请核对。"


@pytest.mark.parametrize("written", ["110105 19491231-002X", "110105 19491231 0021", "110105 19491331 002X"])
def test_mixed_separators_bad_checksums_and_bad_dates_are_not_ids(written):
    assert not [e for e in find_pii(written) if e.type == "CN_RESIDENT_ID"]
