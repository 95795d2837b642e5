"""Personal data that Chinese-speaking users write and the PII check used to miss: QQ numbers, WeChat ids,
passports, Hong Kong / Taiwan / Macao identity cards, bank accounts, car plates, home addresses, bracketed
landlines and UnionPay cards that fail Luhn. Positive values are built from each format's published rules."""

from __future__ import annotations

import pytest

from flywheel.checks import pii_validators as v
from flywheel.checks.pii import ENTITY_TYPES, PiiCheck, find_pii, redact, restore, sensitive_pii


def _types(text: str) -> list[tuple[str, str]]:
    return [(e.type, e.text) for e in sensitive_pii(text)]


# ---------------------------------------------------------------- check characters


@pytest.mark.parametrize("value", ["A123456(3)", "A1234563", "G707352(5)", "XA123456(8)", "Z683365(A)"])
def test_hk_id_check_character_accepts_valid(value):
    assert v.hk_id_valid(value)


@pytest.mark.parametrize("value", ["A123456(4)", "G707352(6)", "XA123456(A)", "A12345(3)", "1234567(3)"])
def test_hk_id_check_character_rejects_invalid(value):
    assert not v.hk_id_valid(value)


@pytest.mark.parametrize("value", ["A123456789", "B204819376", "T188392104"])
def test_tw_id_checksum_accepts_valid(value):
    assert v.tw_id_valid(value)


@pytest.mark.parametrize("value", ["A123456788", "B204819375", "A323456789", "AA23456789"])
def test_tw_id_checksum_rejects_invalid(value):
    assert not v.tw_id_valid(value)


# ---------------------------------------------------------------- each entity in context

@pytest.mark.parametrize("text, entity, value", [
    ("我的QQ是 123456789", "CN_QQ", "123456789"),
    ("QQ号：10001", "CN_QQ", "10001"),
    ("有事加我qq2850123456", "CN_QQ", "2850123456"),
    ("护照号E12345678", "PASSPORT", "E12345678"),
    ("护照号码：EA1234567，有效期十年", "PASSPORT", "EA1234567"),
    ("my passport number is C01X00T47", "PASSPORT", "C01X00T47"),
    ("HKID A123456(3)", "HK_ID", "A123456(3)"),
    ("香港身份证号码 G707352（5）", "HK_ID", "G707352（5）"),
    ("身分證字號 B204819376", "TW_ID", "B204819376"),
    ("澳门身份证 1234567(8)", "MO_ID", "1234567(8)"),
    ("微信号: wxid_abc123xyz", "CN_WECHAT", "wxid_abc123xyz"),
    ("加我微信 zhang_san88 备注来意", "CN_WECHAT", "zhang_san88"),
    ("WeChat ID: lily-2023", "CN_WECHAT", "lily-2023"),
    ("银行账号：6228 4800 1234 5678 9", "BANK_ACCOUNT", "6228 4800 1234 5678 9"),
    ("请转账到收款账户 3202 0812 0910 0233 51", "BANK_ACCOUNT", "3202 0812 0910 0233 51"),
    ("车牌号 京A·12345", "CN_LICENSE_PLATE", "京A·12345"),
    ("新能源车牌 沪AD12345", "CN_LICENSE_PLATE", "沪AD12345"),
    ("收货地址：北京市海淀区中关村大街27号3号楼501室", "CN_ADDRESS", "北京市海淀区中关村大街27号3号楼501室"),
    ("他家住在上海市浦东新区世纪大道100号", "CN_ADDRESS", "上海市浦东新区世纪大道100号"),
    ("电话 (010) 6552 9988", "PHONE_NUMBER", "(010) 6552 9988"),
    ("银联卡 8105 2345 6789 0123 453", "CN_BANK_CARD", "8105 2345 6789 0123 453"),
])
def test_found_in_context(text, entity, value):
    assert (entity, value) in _types(text)


@pytest.mark.parametrize("text, value", [
    ("86-10-65529988", "86-10-65529988"),  # the country code written "86-" before the area code
    ("(010)6552-9988转8001", "(010)6552-9988转8001"),  # the extension is part of the number
])
def test_mainland_landline_whole(text, value):
    assert ("PHONE_NUMBER", value) in _types(text)


def test_bare_19_digit_unionpay_81_card_is_found():
    # UnionPay's second IIN range 8100-8171 (cards issued since 2016), 19 digits, Luhn-valid, no context word
    assert _types("8105234567890123453") == [("CN_BANK_CARD", "8105234567890123453")]
    assert v.card_plausibility("8105234567890123453") == 1.0


def test_qq_number_wins_over_a_bare_mobile_shape():
    assert _types("QQ 13800138000") == [("CN_QQ", "13800138000")]


# ---------------------------------------------------------------- what stays alone

@pytest.mark.parametrize("text", [
    "QQ群 123456789 欢迎加入",  # a group, not a person
    "QQ 2013 版本已经停止维护",
    "微信 WeChatPay 正式上线",  # a product name
    "passport photos cost 12 dollars",
    "the passport office opened in 1998",
    "E12345678",  # a passport shape with no passport word: a part number as often
    "账号 12345678 已冻结",  # an account word but no bank word: a login
    "地铁1号线在长安街1号设站",
    "车站机关地址：湖南省株洲市石峰区北站路236号，邮编412001。",  # an office's public address
    "A123456(4) 不是有效的编号",  # HKID shape, wrong check character
    "型号 A123456788",  # Taiwan ID shape, wrong checksum
    "8172999900000000029",  # Luhn-valid, but 8172… is outside UnionPay's 81 range
])
def test_benign_text_stays(text):
    assert _types(text) == []


# ---------------------------------------------------------------- wiring: types, aliases, redaction


def test_new_types_are_known_and_aliases_work():
    for name in ("CN_QQ", "CN_WECHAT", "PASSPORT", "HK_ID", "TW_ID", "MO_ID", "BANK_ACCOUNT",
                 "CN_LICENSE_PLATE", "CN_ADDRESS"):
        assert name in ENTITY_TYPES
    assert [e.type for e in find_pii("QQ号：10001", ["QQ"])] == ["CN_QQ"]
    assert [e.type for e in find_pii("微信号: wxid_abc123xyz", ["WECHAT"])] == ["CN_WECHAT"]


def test_guard_redacts_and_restores_qq_and_passport():
    text = "我的QQ是 123456789，护照号E12345678"
    masked, vault = redact(text)
    assert "123456789" not in masked and "E12345678" not in masked
    assert restore(masked, vault) == text


def test_pii_check_fails_on_hk_id():
    result = PiiCheck(None).evaluate("HKID A123456(3)", None)  # type: ignore[arg-type]
    assert not result.passed and "HK_ID" in result.reason
