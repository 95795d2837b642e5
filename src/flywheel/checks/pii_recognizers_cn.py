"""Recognizers for personal data that Chinese-speaking users write: QQ numbers, WeChat ids, passports,
Hong Kong / Macao / Taiwan identity cards, mainland landlines, bank accounts, car plates and home addresses.

Scores follow the scale of `pii_recognizers` (0.3 plausible shape, +0.3-0.4 with a context word, 0.9+ with a
checksum). Formats without a checksum (QQ, WeChat, passports, accounts, Macao IDs) are only reported next to a
context word in Chinese or English: their bare shapes are ordinary numbers and words. Car plates and addresses
down to a flat number have shapes distinctive enough to stand alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from flywheel.checks import pii_validators as v
from flywheel.checks.pii_context import is_quantity, near, words
from flywheel.checks.pii_recognizers import PiiEntity, Recognizer

_L = r"(?<![0-9A-Za-z])"
_R = r"(?![0-9A-Za-z])"
# separators allowed between a context word and its value: "QQ号：", "微信号是 ", "passport no. "
_SEP = r"[ \t]*(?:号码|號碼|号|號|帐号|账号|賬號|number|no\.?|id|#)?[ \t]*(?:是|为|為|[:：=])?[ \t]*"


class _Hinted(Recognizer):
    """Runs its regex only on text holding one of its (lower-case) key substrings: most text holds none,
    and a substring test is far cheaper than trying an alternation of labels at every position."""

    def __init__(self, keys: tuple[str, ...], *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.keys = keys

    def find(self, text: str) -> Iterator[PiiEntity]:
        low = text.lower()
        if any(k in low for k in self.keys):
            yield from super().find(text)


def _label(*names: str) -> str:
    return r"(?:" + "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)) + r")"


# ---------------------------------------------------------------- QQ numbers

# QQ numbers are 5 to 11 digits without a leading zero (10001 was among the first); no checksum, so only a
# number right after "QQ" / "扣扣" counts. "QQ群" numbers name a group, not a person.
_QQ = re.compile(r"(?i)(?<![A-Za-z])" + _label("qq", "扣扣", "企鹅号") + r"(?!群|空间|音乐|邮箱|[A-Za-z])"
                 + _SEP + r"([1-9]\d{4,10})" + _R + r"(?![.-]\d)")


def _qq(m: re.Match[str], text: str) -> float | None:
    if is_quantity(text, m.start(1), m.end(1)):
        return None  # "QQ 800000000 users", "QQ 800000000 元"
    return 0.85  # above a bare CN_MOBILE (0.8): the word says what the number is


# ---------------------------------------------------------------- WeChat ids

# A WeChat id is 6-20 letters, digits, "_" or "-", starting with a letter; old accounts have "wxid_…".
_WECHAT_WORDS = _label("微信号", "微信", "wechat", "weixin", "vx", "wx", "v信", "薇信", "威信")
_WECHAT = re.compile(r"(?i)(?<![A-Za-z])" + _WECHAT_WORDS + r"(?![A-Za-z])" + r"(?P<mark>" + _SEP + r")"
                     + r"(?P<id>[A-Za-z][-_A-Za-z0-9]{5,19})" + r"(?![-_A-Za-z0-9@.]|\.[A-Za-z0-9])")
_WXID = re.compile(r"(?<![A-Za-z0-9_])wxid_[a-z0-9]{6,20}(?![A-Za-z0-9_])")


def _wechat(m: re.Match[str], text: str) -> float | None:
    value = m.group("id")
    if any(c.isdigit() or c in "_-" for c in value):
        return 0.85  # "微信 zhang_san88"
    if re.search(r"号|號|id|[:：=是为]", m.group("mark"), re.IGNORECASE):
        return 0.75  # "微信号：zhangsan": an explicit label, letters only
    return None  # "微信 WeChatPay", "wechat Official": a product name, not an id


# ---------------------------------------------------------------- passports

_PASSPORT_WORDS = words("护照", "護照", "passport", "passports", "旅行证", "通行证", "通行證")
# PRC ordinary passports: E or G and 8 digits, or (e-passports since 2017) E, a letter other than I/O, 7 digits;
# P/S/D + 7 digits are public-affairs, service and diplomatic passports; K/H + 8 digits Hong Kong SAR passports.
_CN_PASSPORT = re.compile(_L + r"(?:[EG]\d{8}|E[A-HJ-NP-Z]\d{7}|[PSD]\d{7}|[KH]\d{8}|MA\d{7})" + _R)
# Other countries: 6-9 letters and digits with at least one digit (ICAO 9303 allows up to 9 characters).
_PASSPORT = re.compile(r"(?i)(?:护照|護照|passport)" + r"[ \t]*(?:号码|號碼|号|號|number|no\.?|#)?[ \t]*(?:是|为|為|is|was|[:：])?"
                       + r"[ \t]*(?P<id>(?=[A-Z0-9]{0,8}\d)[A-Z0-9]{6,9})" + _R)


def _cn_passport(m: re.Match[str], text: str) -> float | None:
    if near(text, m.start(), m.end(), _PASSPORT_WORDS, 24, 8):
        return 0.9
    return 0.4  # "G12345678" alone: a part or train number as often as a passport


def _passport(m: re.Match[str], text: str) -> float | None:
    value = m.group("id")
    if value.isdigit() and len(value) < 7 or value.isalpha():
        return None  # "passport 2024", "passport photos"
    return 0.8


# ---------------------------------------------------------------- Hong Kong, Macao, Taiwan identity cards

_HK_WORDS = words("香港身份证", "香港身份證", "身份证", "身份證", "hkid", "hong kong id", "identity card", "id card")
_HK_ID = re.compile(_L + r"[A-Z]{1,2}\d{6}(?:[(（][0-9A][)）]|[0-9A])(?![0-9A-Za-z])")
_TW_WORDS = words("身分證", "身份證", "身分证", "身份证", "统一编号", "統一編號", "national id", "id card", "台湾", "台灣")
_TW_ID = re.compile(_L + r"[A-Z][1289]\d{8}" + _R)
_MO_WORDS = words("澳门身份证", "澳門身份證", "澳门居民", "澳門居民", "身份证", "身份證", "bir", "macao id", "macau id")
_MO_ID = re.compile(r"(?<![0-9A-Za-z])[157]\d{6}[(（]\d[)）]")


def _hk_id(m: re.Match[str], text: str) -> float | None:
    if not v.hk_id_valid(m.group(0)):
        return None
    if "(" in m.group(0) or "（" in m.group(0) or near(text, m.start(), m.end(), _HK_WORDS, 24, 8):
        return 0.95  # the check character in brackets is how the card prints it
    return 0.6  # a passing check character alone: 1 in 11 random codes


def _tw_id(m: re.Match[str], text: str) -> float | None:
    if not v.tw_id_valid(m.group(0)):
        return None
    return 0.95 if near(text, m.start(), m.end(), _TW_WORDS, 24, 8) else 0.85


def _mo_id(m: re.Match[str], text: str) -> float | None:
    # The Macao check digit's algorithm is not published: the printed shape and a context word decide.
    return 0.85 if near(text, m.start(), m.end(), _MO_WORDS, 24, 8) else 0.45


# ---------------------------------------------------------------- mainland landlines

# Area codes: 010 and 02x (3 digits), else 0 + three digits not starting with 0 or 1; the local number has
# 7 or 8 digits and never starts with 0 or 1. Brackets round the area code are the usual way to write it.
_CN_LANDLINE = re.compile(r"(?<![0-9A-Za-z+])(?=[(（+0]|86-)(?:(?:\+|00)86[ -]?|86-)?[(（]?(?P<area>0?(?:10|2\d|[3-9]\d{2}))[)）]?"
                          r"[ -]?(?P<local>[2-9]\d{2,3}[ -]?\d{4})(?:[ ]?(?:转|轉|分机|ext\.?|x)[ ]?\d{1,6})?"
                          + _R + r"(?![-.]\d)")
_LANDLINE_WORDS = words("电话", "電話", "座机", "座機", "固话", "固話", "传真", "傳真", "总机", "总台", "办公室",
                        "联系", "致电", "拨打", "phone", "tel", "telephone", "fax", "landline", "call")


def _cn_landline(m: re.Match[str], text: str) -> float | None:
    value = m.group(0)
    area = m.group("area")
    local = v.digits(m.group("local"))
    trunk = area.startswith("0") or value.startswith(("+", "00", "86"))
    bracketed = bool(re.search(r"[(（]0", value))
    if not trunk or len(local) not in (7, 8) or v.repetitive(local):
        return None
    if not bracketed and not re.search(r"[ -]", value[:len(value) - len(local)]):
        return None  # "075586013388": an unseparated run, left to the phone recognizer
    if is_quantity(text, m.start(), m.end()):
        return None
    score = 0.75 if bracketed or value.startswith(("+", "00", "86")) else 0.6
    return score + 0.2 if near(text, m.start(), m.end(), _LANDLINE_WORDS, 24, 8) else score


# ---------------------------------------------------------------- bank accounts

# Account numbers (not card numbers) have no common checksum or length: 8-30 digits right after an account
# word. Plain "账号" alone is any login; a bank word must be near.
_ACCOUNT = re.compile(r"(?i)" + _label("银行账号", "银行帐号", "銀行帳號", "银行账户", "銀行帳戶", "对公账户",
                                       "对公账号", "收款账号", "收款账户", "收款帳號", "账号", "帐号", "账户",
                                       "帳號", "帳戶", "account number", "account no", "acct no", "acct",
                                       "a/c", "bank account", "account #")
                      + r"[ \t]*(?:是|为|為|[:：#])?[ \t]*(?P<id>\d(?:[ -]?\d){7,29})" + _R + r"(?![.-]\d)")
_BANK_WORDS = words("银行", "銀行", "开户", "開戶", "对公", "收款", "汇款", "匯款", "转账", "轉帳", "转帐", "bank",
                    "iban", "swift", "routing", "sort code", "wire", "transfer", "deposit", "acct", "account number",
                    "a/c", "工行", "建行", "农行", "中行", "招行", "交行")


def _bank_account(m: re.Match[str], text: str) -> float | None:
    number = v.digits(m.group("id"))
    if v.repetitive(number) or is_quantity(text, m.start("id"), m.end("id")):
        return None
    if near(text, m.start("id"), m.end("id"), _BANK_WORDS, 40, 16):  # the label itself may be the bank word
        return 0.85
    return None


# ---------------------------------------------------------------- car plates

# Mainland plates (GA 36-2018): a province's one-character abbreviation, the issuing city's letter (never I
# or O), then 5 letters/digits, or 6 for new-energy vehicles (D or F first, or last for large vehicles).
_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
_PLATE = re.compile(r"(?<![A-Za-z0-9])[" + _PROVINCES + r"][A-HJ-NP-Z][·•.\- ]?"
                    r"(?:[DF][A-HJ-NP-Z0-9]\d{4}|\d{5}[DF]|[A-HJ-NP-Z0-9]{4}[A-HJ-NP-Z0-9挂学警港澳领使])"
                    + _R)
_PLATE_WORDS = words("车牌", "車牌", "牌照", "号牌", "號牌", "车号", "plate", "license plate", "licence plate",
                     "registration", "车辆", "車輛")


def _plate(m: re.Match[str], text: str) -> float | None:
    value = re.sub(r"[·•.\- ]", "", m.group(0))
    if sum(c.isdigit() for c in value[2:]) < 2:
        return None  # "京AB CDE…": letters glued to a province name, not a plate
    return 0.9 if near(text, m.start(), m.end(), _PLATE_WORDS, 24, 8) else 0.65


# ---------------------------------------------------------------- home addresses

# Only the part a person lives at: a road or compound, a door number, and a building / unit / room; a bare
# "某某路1号" is a shop's or an office's public address as often as a home, so it needs an address word.
_ADDRESS_WORDS = words("住址", "家住", "住在", "家庭地址", "收货", "收貨", "收件", "寄到", "寄往", "送到", "居住",
                       "户籍", "戶籍", "我的地址", "我家地址", "home address", "lives at", "ship to", "deliver to")
# "地址" alone heads an office's or a station's public address as often as a person's.
_ANY_ADDRESS_WORD = words("地址", "地點", "address")
_ADDRESS = re.compile(
    r"[\u4e00-\u9fff]{0,20}(?:路|街|大街|大道|巷|弄|胡同|里|村|小区|社区|花园|苑)\d{1,5}(?:-\d{1,4})?(?:号|號|弄)(?!线|線)"
    r"(?P<unit>(?:[A-Za-z0-9一二三四五六七八九十]{1,4}(?:号楼|栋|幢|座|单元|层|楼|室|号|-\d{1,4})){0,4})")
_DOOR = re.compile(r"(?:路|街|道|巷|弄|同|里|村|区|园|苑)\d{1,5}(?:-\d{1,4})?(?:号|號|弄)")
# Words that end the run of Chinese characters before the address itself ("他家住在北京市…", "寄到上海市…").
_ADDRESS_LEAD = re.compile(r".*(?:住址|地址|家住|住在|居住在|居住于|寄到|寄往|送到|在|于|是|为|到)")


def _lead(value: str) -> int:
    lead = _ADDRESS_LEAD.match(value)
    return lead.end() if lead and lead.end() < len(value) - 4 else 0


def _address(m: re.Match[str], text: str) -> float | None:
    if _ADDRESS_WORDS.search(text, max(0, m.start() - 12), m.start() + _lead(m.group(0))):
        return 0.85  # "地址：…", "他家住在…" (the lead-in words are inside the run the pattern takes)
    flat = re.search(r"室|单元|栋|幢", m.group("unit"))
    if flat and _ANY_ADDRESS_WORD.search(text, max(0, m.start() - 12), m.start() + _lead(m.group(0))):
        return 0.85
    if flat:
        return 0.7  # a flat number: someone's home, not a shop front
    return None


class AddressRecognizer(Recognizer):
    """Starts the span after the words that lead into the address, which the run of characters swallows."""

    def __init__(self) -> None:
        super().__init__("CN_ADDRESS", "cn_address", _ADDRESS, _address)

    def find(self, text: str) -> Iterator[PiiEntity]:
        if not _DOOR.search(text):  # a road and a door number are rare; look for them before the long run
            return
        for ent in super().find(text):
            cut = _lead(ent.text)
            yield PiiEntity(ent.type, ent.start + cut, ent.end, ent.score, ent.text[cut:], ent.recognizer)


def cn_recognizers() -> list[Recognizer]:
    bank = ("账", "帳", "acct", "account", "a/c")
    return [
        _Hinted(("qq", "扣扣", "企鹅"), "CN_QQ", "cn_qq", _QQ, _qq, group=1),
        _Hinted(("微信", "wechat", "weixin", "vx", "wx", "v信", "薇信", "威信"), "CN_WECHAT", "cn_wechat", _WECHAT,
                _wechat, group="id"),
        _Hinted(("wxid_",), "CN_WECHAT", "cn_wxid", _WXID, lambda m, t: 0.85),
        Recognizer("PASSPORT", "cn_passport", _CN_PASSPORT, _cn_passport),
        _Hinted(("护照", "護照", "passport"), "PASSPORT", "passport", _PASSPORT, _passport, group="id"),
        Recognizer("HK_ID", "hk_id", _HK_ID, _hk_id),
        Recognizer("TW_ID", "tw_id", _TW_ID, _tw_id),
        Recognizer("MO_ID", "mo_id", _MO_ID, _mo_id),
        Recognizer("PHONE_NUMBER", "cn_landline", _CN_LANDLINE, _cn_landline),
        _Hinted(bank, "BANK_ACCOUNT", "bank_account", _ACCOUNT, _bank_account, group="id"),
        Recognizer("CN_LICENSE_PLATE", "cn_license_plate", _PLATE, _plate),
        AddressRecognizer(),
    ]
