"""UnionPay cards with IIN 62 that fail the Luhn check: UnionPay does not require the check digit on every range,
so such a number after a card word (卡号, 银行卡, 银联, card) is a CN_BANK_CARD and is masked; without a card word,
or after a word for another kind of number (订单号, 流水号, tracking, order), it is not. Numbers are drawn at
random (Luhn-failing ones kept), not listed."""

from __future__ import annotations

import random

import pytest

from flywheel.checks.pii import redact, restore, sensitive_pii
from flywheel.checks.pii_validators import luhn_valid

RNG = random.Random(6262)
CARD_TYPES = {"CN_BANK_CARD", "CREDIT_CARD"}


def unionpay_without_luhn(length: int) -> str:
    while True:
        number = "62" + "".join(RNG.choice("0123456789") for _ in range(length - 2))
        if not luhn_valid(number):
            return number


def grouped(number: str) -> str:
    return " ".join(number[i:i + 4] for i in range(0, len(number), 4))


def cards(text: str) -> list[str]:
    return [e.text for e in sensitive_pii(text) if e.type in CARD_TYPES]


@pytest.mark.parametrize("template", [
    "我的银行卡号是 {n}，请退款。", "卡号：{n}", "银联卡 {n}", "储蓄卡{n}被冻结了", "请把钱转到这张卡 {n}",
    "借记卡号 {n}，户名张三", "My UnionPay card {n} was charged twice.", "card number: {n}",
])
@pytest.mark.parametrize("length", [16, 17, 18, 19])
def test_a_unionpay_number_after_a_card_word_is_masked_without_luhn(template, length):
    for number in (unionpay_without_luhn(length), grouped(unionpay_without_luhn(length))):
        text = template.format(n=number)
        assert cards(text) == [number], text
        masked, vault = redact(text)
        assert number not in masked and "<CN_BANK_CARD_1_" in masked
        assert restore(masked, vault) == text


@pytest.mark.parametrize("template", [
    "{n}", "订单号 {n} 已发货", "订单编号：{n}", "快递单号{n}", "交易流水号：{n}", "工单号 {n}", "合同编号 {n}",
    "会议ID {n}", "用户ID: {n}", "Order {n} has shipped.", "tracking number {n}", "invoice {n}",
    "Transaction ID {n}", "the reference is {n}", "请拨打 {n}", "商品条码 {n}",
])
@pytest.mark.parametrize("length", [16, 17, 18, 19])
def test_a_62_number_that_is_not_called_a_card_stays(template, length):
    for number in (unionpay_without_luhn(length), grouped(unionpay_without_luhn(length))):
        text = template.format(n=number)
        assert cards(text) == [], text


def test_only_unionpay_lengths_and_prefix_skip_luhn():
    for number in ["62" + "1234567890123", "62" + "12345678901234567890"]:  # 15 and 22 digits
        assert cards(f"银行卡号 {number}") == []
    other = "4" + "".join(RNG.choice("0123456789") for _ in range(15))
    other = other if not luhn_valid(other) else other[:-1] + str((int(other[-1]) + 1) % 10)
    assert cards(f"银行卡号 {other}") == []  # another network's number still needs Luhn


def test_a_mistyped_card_number_in_a_chat_is_still_masked():
    """One digit off a real card still shows fifteen of its digits: the user's card, masked."""
    real = next(n for n in ("6222021234567890128", "6222021234567890127") if luhn_valid(n))
    typo = real[:5] + str((int(real[5]) + 1) % 10) + real[6:]
    assert not luhn_valid(typo)
    masked, _ = redact(f"刚才卡号输错了，是 {typo}")
    assert typo not in masked
