"""PII recognizers, checksums, reversible redaction and the `pii` check."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from conftest import DATA, need

from flywheel.checks import build
from flywheel.checks.base import CheckContext
from flywheel.checks.pii import Vault, find_pii, redact, redact_for_storage, restore, restore_stream
from flywheel.checks.pii_validators import cn_id_check_char, cn_id_valid, iban_valid, luhn_valid
from flywheel.errors import UserError

HERE = Path(__file__).parent


def types(text: str, **kw) -> list[tuple[str, str]]:
    return [(e.type, e.text) for e in find_pii(text, **kw)]


# ---------------------------------------------------------------- checksums


def test_cn_resident_id_checksum_and_birth_date():
    assert cn_id_check_char("11010519491231002") == "X"  # the GB 11643 worked example
    assert cn_id_valid("11010519491231002X") and cn_id_valid("11010519491231002x")
    assert not cn_id_valid("110105194912310021")  # wrong check character
    first = "11010519491331002"  # month 13
    assert not cn_id_valid(first + cn_id_check_char(first))
    first = "91010519491231002"  # no region starts with 9
    assert not cn_id_valid(first + cn_id_check_char(first))


def test_luhn_and_iban():
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert iban_valid("GB82WEST12345698765432") and not iban_valid("GB82WEST12345698765433")
    assert not iban_valid("GB82WEST1234569876543")  # one character short for GB


# ---------------------------------------------------------------- Chinese recognizers


def test_cn_resident_id_found_only_when_valid():
    assert types("我的身份证号是11010519491231002X，请核实。") == [("CN_RESIDENT_ID", "11010519491231002X")]
    assert types("身份证号110105194912310021") == []  # bad check character: not reported
    assert types("订单号 202403051234567890 已发货") == []


@pytest.mark.parametrize("text,value", [
    ("手机13812345678联系我", "13812345678"),
    ("电话：+86 138-1234-5678", "+86 138-1234-5678"),
    ("请拨打 139 1234 5678。", "139 1234 5678"),
])
def test_cn_mobile_formats(text, value):
    assert ("CN_MOBILE", value) in types(text)


def test_cn_mobile_rejects_other_numbers():
    assert types("号码12345678901不是手机号。") == []
    assert not [t for t, _ in types("流水号 113800138000123") if t == "CN_MOBILE"]


def test_cn_bank_card_needs_luhn():
    valid = "6222021234567890128"
    assert luhn_valid(valid)
    assert types(f"我的银行卡号是{valid}") == [("CN_BANK_CARD", valid)]
    assert types("我的银行卡号是6222 0212 3456 7890 128") == [("CN_BANK_CARD", "6222 0212 3456 7890 128")]
    invalid = valid[:-1] + "9"
    assert types(invalid) == []  # no Luhn and no card word: nothing says it is a card
    assert types("我的银行卡号是4222021234567890129") == []  # other networks need Luhn even after a card word
    # UnionPay 62 numbers need not pass Luhn: after a card word they are cards (test_pii_unionpay.py)
    assert types(f"我的银行卡号是{invalid}") == [("CN_BANK_CARD", invalid)]


# ---------------------------------------------------------------- pattern entities


@pytest.mark.parametrize("text,expected", [
    ("Card 4111 1111 1111 1111 expires soon", ("CREDIT_CARD", "4111 1111 1111 1111")),
    ("IBAN DE89 3704 0044 0532 0130 00 is mine", ("IBAN_CODE", "DE89 3704 0044 0532 0130 00")),
    ("My SSN is 536-22-1234", ("US_SSN", "536-22-1234")),
    ("server 192.168.1.10 is down", ("IP_ADDRESS", "192.168.1.10")),
    ("route via 2001:db8::1", ("IP_ADDRESS", "2001:db8::1")),
    ("mail bob@example.com today", ("EMAIL_ADDRESS", "bob@example.com")),
    ("visit https://example.com/a?b=1.", ("URL", "https://example.com/a?b=1")),
    ("see www.example.org for more", ("URL", "www.example.org")),
    ("Call +1 (415) 555-0132 now", ("PHONE_NUMBER", "+1 (415) 555-0132")),
    ("Desk: +41 (0)96 471 07 95", ("PHONE_NUMBER", "+41 (0)96 471 07 95")),
    ("Fax: 9498777106", ("PHONE_NUMBER", "9498777106")),
    ("总机010-62345678", ("PHONE_NUMBER", "010-62345678")),
    ("born on 2/8/1935 in Oslo", ("DATE_TIME", "2/8/1935")),
    ("When: 2000-04-16 11:34:35", ("DATE_TIME", "2000-04-16 11:34:35")),
    ("The orchestra was founded in 1977.", ("DATE_TIME", "1977")),
    ("He flew out on Tuesday morning.", ("DATE_TIME", "Tuesday")),
    ("会议在2024年3月5日举行", ("DATE_TIME", "2024年3月5日")),
    ("My driver's license number is F162823540116", ("US_DRIVER_LICENSE", "F162823540116")),
])
def test_pattern_entities(text, expected):
    assert expected in types(text)


@pytest.mark.parametrize("text", [
    "Card 4111 1111 1111 1112 expires soon",  # fails Luhn
    "My SSN is 666-22-1234",  # area 666 is never issued
    "write to bob@example.com",  # the email's domain is not also a URL
    "edit setup.py and README.md",  # file names, not domains
    "We live at 3369 24 Clarke Avenue",  # house numbers, not a phone
    "the 2004-2005 season",
    "order 6940579 shipped",  # a bare number is no driver's licence without the words
    "version v1.2.3.4 released",
])
def test_lookalikes_are_not_reported(text):
    found = types(text)
    assert not [f for f in found if f[0] != "EMAIL_ADDRESS"], found


# ---------------------------------------------------------------- secrets


@pytest.mark.parametrize("text,value", [
    ("key: sk-proj-abcDEF1234567890ghiJKLmnop", "sk-proj-abcDEF1234567890ghiJKLmnop"),
    ("ANTHROPIC_API_KEY=sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWx_yz0123", "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWx_yz0123"),
    ("export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
    ("token ghp_16C7e42F292c6912E7710c838347Ae178B4a", "ghp_16C7e42F292c6912E7710c838347Ae178B4a"),
    ('client_secret = "q8Zr2LmX0vB7nT4kW9sD"', "q8Zr2LmX0vB7nT4kW9sD"),
    ("密码：Abc@12345", "Abc@12345"),
])
def test_secrets(text, value):
    assert ("SECRET", value) in types(text)


@pytest.mark.parametrize("text", [
    "the password is stored in the vault",
    "api_key = <your key here>",
    "token: ${GITHUB_TOKEN}",
    "secret_key = 'aaaaaaaaaaaaaaaaaaaaaaa'",
])
def test_secret_lookalikes(text):
    assert [t for t, _ in types(text) if t == "SECRET"] == []


# ---------------------------------------------------------------- redaction


def test_redact_restore_round_trip():
    text = "Mail bob@example.com or bob@example.com, else alice@x.org; 手机13812345678。"
    red, vault = redact(text)
    n = vault.nonce  # random per vault: only the placeholders this vault issued are restored
    assert re.fullmatch(r"[a-z]{5}", n)
    assert red == f"Mail <EMAIL_ADDRESS_1_{n}> or <EMAIL_ADDRESS_1_{n}>, else <EMAIL_ADDRESS_2_{n}>; 手机<CN_MOBILE_1_{n}>。"
    assert vault == {f"<EMAIL_ADDRESS_1_{n}>": "bob@example.com", f"<EMAIL_ADDRESS_2_{n}>": "alice@x.org",
                     f"<CN_MOBILE_1_{n}>": "13812345678"}
    assert restore(red, vault) == text
    answer = f"I wrote to <EMAIL_ADDRESS_2_{n}> and &lt;CN_MOBILE_1_{n}&gt;; <PHONE_NUMBER_9_{n}>, <EMAIL_ADDRESS_2>."
    assert restore(answer, vault) == f"I wrote to alice@x.org and 13812345678; <PHONE_NUMBER_9_{n}>, <EMAIL_ADDRESS_2>."


def test_vault_is_shared_across_turns_and_json_serialisable():
    _, vault = redact("call 13812345678")
    red, vault2 = redact("mail bob@example.com, call 13812345678", vault=vault)
    assert vault2 is vault and red == f"mail <EMAIL_ADDRESS_1_{vault.nonce}>, call <CN_MOBILE_1_{vault.nonce}>"
    again = Vault(json.loads(json.dumps(vault)))
    assert restore(red, again) == "mail bob@example.com, call 13812345678"


def test_redact_only_some_types_or_given_spans():
    text = "bob@example.com +1 (415) 555-0132"
    red, _ = redact(text, ["EMAIL_ADDRESS"], vault=Vault(nonce=""))  # nonce "": plain <TYPE_N> placeholders
    assert red == "<EMAIL_ADDRESS_1> +1 (415) 555-0132"
    spans = [e for e in find_pii(text) if e.type == "PHONE_NUMBER"]
    red, vault = redact(text, spans, vault=Vault(nonce=""))
    assert red == "bob@example.com <PHONE_NUMBER_1>" and vault["<PHONE_NUMBER_1>"] == "+1 (415) 555-0132"


def test_restore_stream_handles_split_placeholders():
    vault = {"<EMAIL_ADDRESS_1>": "bob@example.com"}
    chunks = ["Write to <EMAIL", "_ADDRESS_1> to", "day. a < b"]
    assert "".join(restore_stream(chunks, vault)) == "Write to bob@example.com today. a < b"


def test_redact_for_storage_is_irreversible_and_walks_structures():
    record = {"input": "my card 4111 1111 1111 1111", "messages": [{"content": "mail bob@example.com"}],
              "n": 3, "tags": ("ticket 12345",)}
    out = redact_for_storage(record, patterns=[r"ticket \d+"])
    assert out == {"input": "my card <CREDIT_CARD>", "messages": [{"content": "mail <EMAIL_ADDRESS>"}],
                   "n": 3, "tags": ("<REDACTED>",)}
    assert record["input"] == "my card 4111 1111 1111 1111"  # the caller's object is not changed


# ---------------------------------------------------------------- the check


def test_check_passes_without_pii_and_fails_with_it():
    check = build("pii")
    ok = check.run("The capital of France is Paris.", CheckContext())
    assert ok.passed and ok.details["entities"] == []
    bad = check.run("Reach me at bob@example.com", CheckContext())
    assert not bad.passed and bad.details["entities"][0]["type"] == "EMAIL_ADDRESS"
    assert bad.details["redacted"] == "Reach me at <EMAIL_ADDRESS>"
    assert "bob@example.com" not in json.dumps(bad.details["entities"])  # values are not copied into results


def test_dates_and_urls_only_when_asked_for():
    text = "Founded in 1977, see https://example.com; mail bob@example.com"
    assert [e["type"] for e in build("pii").run(text, CheckContext()).details["entities"]] == ["EMAIL_ADDRESS"]
    everything = build("pii", {"entities": "all"}).run(text, CheckContext()).details["entities"]
    assert [e["type"] for e in everything] == ["DATE_TIME", "URL", "EMAIL_ADDRESS"]
    assert redact(text, vault=Vault(nonce=""))[0] == "Founded in 1977, see https://example.com; mail <EMAIL_ADDRESS_1>"
    assert redact(text, ["DATE_TIME"], vault=Vault(nonce=""))[0] == \
        "Founded in <DATE_TIME_1>, see https://example.com; mail bob@example.com"


def test_check_arguments():
    only_phone = build("pii", ["PHONE_NUMBER"])
    assert only_phone.run("bob@example.com", CheckContext()).passed
    allowed = build("pii", {"allow": ["support@example.com"]})
    assert allowed.run("write to support@example.com", CheckContext()).passed
    assert build("not-pii").run("no personal data here", CheckContext()).passed is False
    with pytest.raises(UserError):
        build("pii", {"threshold": 2})
    with pytest.raises(UserError):
        build("pii", {"entitys": ["EMAIL"]})
    with pytest.raises(UserError):
        build("pii", {"backend": "spacy"})


def test_long_and_binary_input_do_not_crash():
    check = build("pii")
    long_text = ("lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 18000) + " bob@example.com"
    assert len(long_text) > 1_000_000
    res = check.run(long_text, CheckContext())
    assert res.error is None and not res.passed
    res = check.run(os.urandom(100_000), CheckContext())  # bytes, not text
    assert res.error is None
    res = check.run(os.urandom(100_000).decode("latin-1"), CheckContext())
    assert res.error is None


# ---------------------------------------------------------------- labelled sets


def test_chinese_labelled_set():
    rows = [json.loads(line) for line in (HERE / "data" / "pii_zh.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) >= 50
    tp = fp = fn = 0
    for row in rows:
        gold = {(s["type"], s["start"], s["end"]) for s in row["spans"]}
        got = {(e.type, e.start, e.end) for e in find_pii(row["text"])}
        tp, fp, fn = tp + len(gold & got), fp + len(got - gold), fn + len(gold - got)
    assert tp / (tp + fp) >= 0.9 and tp / (tp + fn) >= 0.9


def test_presidio_synth_micro_f1():
    path = Path(DATA) / "presidio-synth" / "synth_dataset_v2.json"
    need(path.exists(), "shared data presidio-synth is not available")
    from flywheel.bench.guards import LABEL_MAP, PATTERN_ENTITIES, span_scores

    data = json.loads(path.read_text(encoding="utf-8"))
    gold = [[(LABEL_MAP.get(s["entity_type"], s["entity_type"]), s["start_position"], s["end_position"])
             for s in row["spans"]] for row in data]
    pred = [[(e.type, e.start, e.end) for e in find_pii(row["full_text"])] for row in data]
    per, micro = span_scores(gold, pred, PATTERN_ENTITIES)
    assert micro["f1"] >= 0.85
    assert per["PHONE_NUMBER"]["f1"] >= 0.8 and per["US_DRIVER_LICENSE"]["precision"] >= 0.5


def test_presidio_backend_runs_our_recognizers_inside_presidio():
    from flywheel.checks import pii_presidio

    need(pii_presidio.available(), "presidio-analyzer is not installed (the `presidio` extra)")
    found = types("身份证11010519491231002X, bitcoin 1BoatSLRHtKNngkdXEeobR76b53LETtpyT", backend="presidio")
    assert ("CN_RESIDENT_ID", "11010519491231002X") in found  # ours, through Presidio's engine
    assert ("CRYPTO", "1BoatSLRHtKNngkdXEeobR76b53LETtpyT") in found  # Presidio's own recognizer
