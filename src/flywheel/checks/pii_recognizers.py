"""Pure-regex PII recognizers: one per entity type, each with validation and context scoring.

A recognizer proposes candidate spans with a score in 0..1; `flywheel.checks.pii` keeps the candidates
above its threshold and resolves overlaps (highest score wins). Scores follow one scale:
about 0.3 for "plausible shape, no evidence", +0.3-0.4 when a context word ("phone", "card", "身份证")
stands near the match, 0.9+ when a checksum passes. Number boundaries use look-arounds instead of
\\b so that digits glued to Chinese characters (`手机13800138000`) are still found.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from flywheel.checks import pii_validators as v
from flywheel.checks.pii_context import in_address, is_quantity, near, words

_L = r"(?<![0-9A-Za-z])"  # left boundary of a number or token, also next to CJK characters
_R = r"(?![0-9A-Za-z])"


@dataclass(frozen=True)
class PiiEntity:
    """One detected span: `text[start:end]` is the value."""

    type: str
    start: int
    end: int
    score: float
    text: str
    recognizer: str = ""

    def as_dict(self) -> dict:
        return {"type": self.type, "start": self.start, "end": self.end, "score": round(self.score, 3),
                "recognizer": self.recognizer}


Scorer = Callable[[re.Match[str], str], float | None]


class Recognizer:
    """A regex plus a scorer; the scorer rejects a candidate (None) or gives its score."""

    def __init__(self, entity: str, name: str, pattern: str | re.Pattern[str], scorer: Scorer,
                 group: int | str = 0, flags: int = 0):
        self.entity = entity
        self.name = name
        self.pattern = re.compile(pattern, flags) if isinstance(pattern, str) else pattern
        self.scorer = scorer
        self.group = group

    def find(self, text: str) -> Iterator[PiiEntity]:
        for m in self.pattern.finditer(text):
            score = self.scorer(m, text)
            if score is None or score <= 0:
                continue
            s, e = m.span(self.group)
            yield PiiEntity(self.entity, s, e, min(score, 1.0), text[s:e], self.name)


# ---------------------------------------------------------------- email, URL, IP

_EMAIL = re.compile(r"(?<![A-Za-z0-9_.+%-])[A-Za-z0-9][A-Za-z0-9._%+'-]{0,63}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}"
                    r"[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![A-Za-z0-9_-])")


# `scheme://user:pa#ss` right before a match: the "local part" is (the end of) a URL's password.
_URL_USERINFO = re.compile(r"://[^/\s:@]*:[^@\s/]*$")


def _email(m: re.Match[str], text: str) -> float | None:
    value = m.group(0)
    if ".." in value or value.split("@")[0].endswith("'"):
        return None
    if _URL_USERINFO.search(text, max(0, m.start() - 80), m.start()):
        return None  # the `url_password` SECRET recognizer claims it
    return 1.0


# Top-level domains accepted for bare host names ("example.com.br"). Two-letter ones that are also
# common file extensions or words are accepted only behind a second-level label such as "co." or "com.".
_GTLD = ("com net org edu gov mil int info biz io ai app dev co me tv cloud online site tech store blog "
         "news shop xyz top club live pro name mobi asia eu page")
_CCTLD = ("ad ae ar at au be bg br by ca ch cl cn cy cz de dk ee eg es fi fr gr hk hr hu id ie il in iq ir "
          "is it jp ke kr kz lt lu lv ma mx my ng nl no nz pe ph pk pt qa ro rs ru sa se sg si sk th tr tw "
          "ua uk us uy uz ve vn za")
_AMBIGUOUS_TLD = {"py", "md", "sh", "rs", "pl", "so", "ps", "cc", "js", "am", "at", "is", "it", "in", "me",
                  "no", "to", "do", "go", "be", "us", "my", "id", "ai", "tv", "pe", "ma", "im"}
_TLDS = sorted(set(_GTLD.split()) | set(_CCTLD.split()) | {"pl", "py", "am", "do", "to", "sh"},
               key=len, reverse=True)
_URL_CHARS = r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]"
_URL = re.compile(
    r"(?<![A-Za-z0-9_@./-])(?:(?:https?|ftp)://" + _URL_CHARS + r"+"
    r"|www\.[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+(?:[/?#]" + _URL_CHARS + r"*)?"
    r"|(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+(?:" + "|".join(_TLDS) + r")(?::\d{2,5})?"
    r"(?:/" + _URL_CHARS + r"*)?(?![A-Za-z0-9_@-]))", re.IGNORECASE)
_URL_TRAIL = ".,;:!?'\")]}"


def _url(m: re.Match[str], text: str) -> float | None:
    url = m.group(0)
    if "://" in url or url.lower().startswith("www."):
        return 0.9
    host = url.split("/")[0].split(":")[0]
    labels = host.split(".")
    tld = labels[-1]
    if not (tld.islower() or tld.isupper()) or len(labels[-2]) < 2:
        return None  # "end.It": a missing space after a full stop
    if tld.isupper() and len(tld) == 2 and len(labels) == 2:
        return None  # stock tickers: "WCOEQ.PK", "0001.HK"
    if tld.lower() in _AMBIGUOUS_TLD and not (len(labels) >= 3 and labels[-2].lower() in
                                              ("co", "com", "org", "net", "gov", "edu", "ac")):
        return None  # "setup.py", "README.md", "node.js"
    return 0.6


class UrlRecognizer(Recognizer):
    """Trims sentence punctuation that a URL regex swallows ("see https://x.org/a.")."""

    def __init__(self) -> None:
        super().__init__("URL", "url", _URL, _url)

    def find(self, text: str) -> Iterator[PiiEntity]:
        for ent in super().find(text):
            value, end = ent.text, ent.end
            while value and value[-1] in _URL_TRAIL:
                if value[-1] == ")" and value.count("(") >= value.count(")"):
                    break
                value, end = value[:-1], end - 1
            if "." in value:
                yield PiiEntity(ent.type, ent.start, end, ent.score, value, ent.recognizer)


_IPV4 = re.compile(r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
                   r"(?:/\d{1,2})?(?!\.?\d)")
_IPV6 = re.compile(r"(?<![A-Za-z0-9_:])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{0,4})"
                   r"(?:/\d{1,3})?(?![A-Za-z0-9_:]|\.\d)")
_IP_WORDS = words("ip", "ips", "address", "host", "server", "gateway", "dns", "subnet", "ping", "地址")
_VERSION_WORDS = words("version", "versions", "ver", "v", "release", "released", "build", "firmware", "patch",
                        "update", "upgrade", "sdk", "kernel", "版本", "版本号", "固件", "补丁", "升级")
# Addresses that point at no one: this machine, "any address", and subnet masks (255.255.255.0).
_NOT_A_HOST = re.compile(r"^(?:127\.|0\.0\.0\.0(?:/|$)|255\.)")


def _ipv4(m: re.Match[str], text: str) -> float | None:
    if text[max(0, m.start() - 1):m.start()] in ("v", "V"):
        return None  # v1.2.3.4
    if _NOT_A_HOST.match(m.group(0)):
        return None
    if near(text, m.start(), m.end(), _VERSION_WORDS, 24, 12) and not near(text, m.start(), m.end(), _IP_WORDS,
                                                                             32, 8):
        return 0.4  # "firmware 10.4.2.1", "4.10.2.3 release"
    if max(len(part) for part in m.group(0).split("/")[0].split(".")) == 1:
        return 0.7 if near(text, m.start(), m.end(), _IP_WORDS, 32, 8) else 0.45  # "3.1.4.2": rarely an IP
    return 0.9


def _ipv6(m: re.Match[str], text: str) -> float | None:
    value = m.group(0)
    if value.count(":") < 2 or not any(c.isalpha() for c in value) and "::" not in value:
        return None  # clock times such as 11:34:35
    if not v.ip_valid(value) or value.split("/")[0] in ("::", "::1"):
        return None  # "::1" is this machine, "::" any address
    return 0.9


# ---------------------------------------------------------------- phone numbers

_PHONE = re.compile(
    r"(?<![A-Za-z0-9_+./-])(?:(?:\+|00)\d{1,3}[ \t.-]?)?(?:\(0\)[ \t]?)?(?:\(\d{1,5}\)[ \t.-]?)?"
    r"\d{1,12}(?:[ \t.-]\d{1,10}){0,5}(?:[ \t]?(?:x|ext\.?|extension)[ \t]?\d{1,6})?(?![A-Za-z0-9_/]|\.\d|-\d)")
_PHONE_WORDS = words("phone", "telephone", "tel", "call", "called", "calling", "mobile", "cell", "cellphone",
                      "fax", "desk", "office", "home", "work", "whatsapp", "sms", "text", "dial", "reach",
                      "contact", "answering", "messages", "hotline", "ph", "mob", "landline", "ring", "电话", "手机",
                      "联系", "致电", "来电", "座机", "传真", "热线", "总机", "客服", "拨打")
_OTHER_ID_WORDS = words("license", "licence", "card", "account", "passport", "ssn", "social security", "iban",
                         "invoice", "order", "tracking", "routing", "zip", "postal", "postcode", "id", "part",
                         "sku", "serial", "model", "item", "product", "batch", "lot", "reference", "ref", "ticket",
                         "case", "policy", "contract", "arxiv", "doi", "isbn", "issn", "patent", "iso", "iec",
                         "gb", "rfc", "din", "ansi", "ieee", "standard", "标准",
                         "订单", "单号", "编号", "工单", "流水", "序列号", "批号", "学号", "工号", "账号", "合同",
                         "发票", "运单", "快递")
_NAME_AFTER = re.compile(r"[ \t]+[A-Z][a-z]")
_CN_LANDLINE = re.compile(r"^(?:0\d{2,3}-\d{7,8}|[48]00-?\d{3}-?\d{4})$")
_YEAR_RANGE = re.compile(r"^(?:1[6-9]|20)\d\d[ \t]?[-.][ \t]?(?:1[6-9]|20)\d\d$")
_YEAR_PAREN = re.compile(r"^\((?:1[6-9]|20)\d\d\)")  # "(2010) 658": a citation, not an area code
_SSN_SHAPE = re.compile(r"^\d{3}-\d{2}-\d{4}$")
_DATE_SHAPE = re.compile(r"^(?:\d{1,4}[./-]\d{1,2}[./-]\d{1,4}|\d{4}[./-]\d{2})$")


def _phone(m: re.Match[str], text: str) -> float | None:
    value = m.group(0)
    core = re.split(r"[ \t]?(?:x|ext\.?|extension)[ \t]?(?=\d)", value)[0]
    n = len(v.digits(core))
    if not 7 <= n <= 15 or _SSN_SHAPE.match(value) or _YEAR_RANGE.match(value) or _DATE_SHAPE.match(value) or v.repetitive(v.digits(core)):
        return None
    if in_address(text, m.start(), m.end()):
        return None
    groups = re.findall(r"\d+", core)
    international = value.startswith(("+", "00")) or "(" in value and not _YEAR_PAREN.match(value)
    if not international and len(groups) == 2 and "." in core:
        return None  # a decimal number: 121.4737, arXiv 2301.12345
    if international:
        score = 0.6
    elif len(groups) == 1:
        score = 0.3 if n in (10, 11) else 0.15  # bare digits: needs context
    elif _CN_LANDLINE.match(value):
        score = 0.55  # 010-62345678, 0755-86013388, 400-820-8820
    elif core.startswith("0") and n in (10, 11) and len(groups) <= 3:
        score = 0.55  # a national number with its trunk prefix: UK 07700 900123, 020 7946 0018
    elif n == 7 and len(groups) == 2:
        score = 0.55 if len(groups[0]) == 3 else 0.45  # NANP local 555 0123; 4-3 is often a postcode
    elif all(len(g) >= 2 for g in groups) and max(len(g) for g in groups) <= 5:
        score = 0.55
    else:
        score = 0.35
    if len(groups) >= 2 and n > 12 and not international:
        score -= 0.2  # long runs of groups are more often account or reference numbers
    if near(text, m.start(), m.end(), _PHONE_WORDS):
        score += 0.35
    elif near(text, m.start(), m.end(), _OTHER_ID_WORDS, 32, 8):
        score -= 0.25
    elif _NAME_AFTER.match(text, m.end()):
        score -= 0.2  # "9816 214 Pavlou Drandaki": a house number before a street name
    return score


# ---------------------------------------------------------------- payment and bank cards

# spaced or dashed anyhow; dotted only in groups of four (4111.1111.1111.1111), not as a decimal number
_CARD = re.compile(_L + r"(?:\d(?:(?: {1,2}|-)?\d){11,18}|\d{4}(?:\.\d{4}){2}\.\d{3,7})" + _R
                   + r"(?![-.]\d)")
_CARD_WORDS = words("card", "credit", "debit", "visa", "mastercard", "amex", "american express", "discover",
                     "jcb", "diners", "maestro", "unionpay", "cc", "payment", "pay", "paid", "charge", "charged",
                     "billed",
                     "卡", "卡号", "信用卡", "银行卡", "借记卡", "储蓄卡")
_CN_BANK_WORDS = words("银行卡", "卡号", "储蓄卡", "借记卡", "信用卡", "银行账号", "银行账户", "开户", "银联",
                        "unionpay", "china union")


def _card_number(value: str) -> str | None:
    number = v.digits(value)
    if not 12 <= len(number) <= 19 or v.repetitive(number) or not v.luhn_valid(number):
        return None
    return number


_BARCODE_WORDS = words("ean", "upc", "gtin", "barcode", "bar code", "isbn", "sku", "条码", "条形码", "商品码")


def _credit_card(m: re.Match[str], text: str) -> float | None:
    number = _card_number(m.group(0))
    if number is None:
        return None
    score = {1.0: 0.6, 0.75: 0.45}.get(v.card_plausibility(number), 0.3)
    if near(text, m.start(), m.end(), _CARD_WORDS, 56, 16):
        score += 0.35
    elif near(text, m.start(), m.end(), _BARCODE_WORDS, 24, 8):
        return None  # a product code that happens to pass Luhn (1 in 10 do)
    if v.is_unionpay(number):
        score = min(score, 0.85)  # UnionPay: the Chinese bank-card recognizer claims it
    return score


# UnionPay does not require the Luhn check digit on every IIN 62 range, so a 62 number of 16-19 digits that
# fails Luhn is a card when a card word stands right before it (卡号, 银行卡, 银联, card) and no word for
# another kind of number (订单号, 流水号, tracking, order) does: without Luhn, the context is the evidence.
_CARD_LABEL = words("卡", "银联", "unionpay", "card", "card no", "card number", "card #")
_NOT_CARD_LABEL = words("订单", "单号", "编号", "流水", "工单", "序列号", "批号", "运单", "快递", "物流", "合同", "发票",
                        "条码", "会议", "order", "tracking", "invoice", "reference", "ref", "ticket", "transaction",
                        "serial", "sku", "barcode", "id")


def _unionpay_without_luhn(m: re.Match[str], text: str) -> float | None:
    number = v.digits(m.group(0))
    if not (number.startswith("62") and 16 <= len(number) <= 19) or v.repetitive(number):
        return None
    if near(text, m.start(), m.end(), _CARD_LABEL, 16, 0) and not near(text, m.start(), m.end(), _NOT_CARD_LABEL,
                                                                       16, 0):
        return 0.8
    return None


def _cn_bank_card(m: re.Match[str], text: str) -> float | None:
    number = _card_number(m.group(0))
    if number is None:
        return _unionpay_without_luhn(m, text)
    if not 16 <= len(number) <= 19:
        return None
    if near(text, m.start(), m.end(), _CN_BANK_WORDS, 24, 8):
        return 0.96  # a Chinese bank's card, whatever its network
    return 0.9 if v.is_unionpay(number) else None


# ---------------------------------------------------------------- IBAN and US identifiers

_IBAN = re.compile(_L + r"[A-Za-z]{2}\d{2}(?:[ ]?[A-Za-z0-9]){10,30}" + _R)


class IbanRecognizer(Recognizer):
    """Cuts the candidate at its country's IBAN length before the MOD 97 check, so that a following
    word glued on by the optional group spaces ("GB82 WEST 1234 … 32 is mine") does not spoil it."""

    def __init__(self) -> None:
        super().__init__("IBAN_CODE", "iban", _IBAN, lambda m, t: 1.0)

    def find(self, text: str) -> Iterator[PiiEntity]:
        for m in self.pattern.finditer(text):
            value = m.group(0)
            want = v.IBAN_LENGTH.get(value[:2].upper())
            if want is None:
                continue
            taken, end = 0, m.start()
            for i, ch in enumerate(value):
                if ch != " ":
                    taken += 1
                if taken == want:
                    end = m.start() + i + 1
                    break
            if taken != want or (end < len(text) and text[end].isalnum()):
                continue
            compact = text[m.start():end].replace(" ", "")
            if v.iban_valid(compact):
                yield PiiEntity("IBAN_CODE", m.start(), end, 1.0, text[m.start():end], self.name)


_SSN = re.compile(r"(?<![\d-])(\d{3})([- .]?)(\d{2})\2(\d{4})(?![\d-])")
_SSN_WORDS = words("ssn", "ssns", "social security", "social sec", "ss#", "ss number", "taxpayer")


def _ssn(m: re.Match[str], text: str) -> float | None:
    if not v.ssn_valid(m.group(1) + m.group(3) + m.group(4)):
        return None
    context = near(text, m.start(), m.end(), _SSN_WORDS)
    if m.group(2) == "-":
        return 0.95 if context else 0.6
    return 0.85 if context else (0.4 if m.group(2) else 0.2)


# US state driver's licence formats vary from 1 letter + 4 digits to 13 alphanumerics, so a number
# alone says little; the licence is recognised by the words around it.
_DL = re.compile(_L + r"(?:[A-Za-z]{1,2}[ -]?\d{4,14}|\d[\d-]{5,16}\d|[A-Za-z]\d{3}[ -]?\d{3}[ -]?\d{2,6})" + _R)
_DL_WORDS = words("driver's license", "drivers license", "driver license", "driver’s license",
                   "driving licence", "driving license", "driver's licence", "drivers licence", "dl", "dl#",
                   "dln", "license number", "licence number", "license no", "licence no", "license #",
                   "lic#", "lic no", "驾驶证", "驾照")


def _driver_license(m: re.Match[str], text: str) -> float | None:
    n = len(v.digits(m.group(0)))
    if n < 5 or n > 16 or v.repetitive(v.digits(m.group(0))):
        return None
    return 0.8 if near(text, m.start(), m.end(), _DL_WORDS, 40, 0) else None


# ---------------------------------------------------------------- Chinese identifiers

# also written in 6-8-4 groups (`110105 19491231 002X`, `110105-19491231-002X`): one separator, used twice
_CN_ID = re.compile(_L + r"[1-8]\d{5}([ -]?)(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\1\d{3}[\dXx]"
                    + _R)
_CN_ID15 = re.compile(_L + r"[1-8]\d{5}\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}" + _R)
_CN_ID_WORDS = words("身份证", "身份证号", "证件号", "公民身份", "居民身份", "id card", "resident id", "id number")


def _cn_id(m: re.Match[str], text: str) -> float | None:
    return 0.95 if v.cn_id_valid(m.group(0).replace(" ", "").replace("-", "")) else None


def _cn_id15(m: re.Match[str], text: str) -> float | None:
    if not v.cn_id15_valid(m.group(0)):
        return None
    return 0.75 if near(text, m.start(), m.end(), _CN_ID_WORDS, 24, 4) else None


_CN_MOBILE = re.compile(r"(?<![0-9A-Za-z+.])(?:(?:\+|00)86[ -]?|86-)?1[3-9]\d(?:[ .-]?\d{4}){2}" + _R
                        + r"(?![-.]\d)")
_CN_MOBILE_WORDS = words("手机", "电话", "联系", "致电", "号码", "微信", "短信", "mobile", "phone", "cell", "tel",
                          "call", "whatsapp", "wechat")


def _cn_mobile(m: re.Match[str], text: str) -> float | None:
    value = m.group(0)
    if v.repetitive(v.digits(value)[-11:]):
        return None
    score = 0.8 if not value.startswith(("+", "00", "86")) else 0.85
    if near(text, m.start(), m.end(), _CN_MOBILE_WORDS, 24, 8) or near(text, m.start(), m.end(), _PHONE_WORDS):
        return score + 0.15  # above any PHONE_NUMBER score for the same span
    if re.fullmatch(r"1\d{10}", value) is None:
        return score
    if is_quantity(text, m.start(), m.end()):
        return None  # "营收13812345678元", "累计 15923456789 次"
    if near(text, m.start(), m.end(), _OTHER_ID_WORDS, 24, 0):
        return 0.45  # bare digits after "order", "工单", with no phone word near: a reference number
    return score


# ---------------------------------------------------------------- dates and times

_MONTH = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
          r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?")
_WEEKDAY = r"(?:mon|tues?|wed(?:nes)?|thu(?:rs?)?|fri|sat(?:ur)?|sun)day"
_TIME = r"(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d{1,6})?)?(?:[ ]?(?:[ap]\.?m\.?))?"
_DATE_PATTERNS = [
    # ISO 8601 date, optionally with time and zone: 2000-04-16 11:34:35, 2024-01-02T10:00Z
    ("iso", r"(?<![\d-])(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[T ]" + _TIME + r"(?:Z|[+-]\d{2}:?\d{2})?)?(?![\d])"),
    # numeric day/month/year in either order: 2/8/1935, 24.06.1991, 12-1-81
    ("dmy", r"(?<![\d./-])(\d{1,2})[/.-](\d{1,2})[/.-](\d{4}|\d{2})(?:,?[ T]" + _TIME + r")?(?![\d]|[/.-]\d)"),
    # written dates: March 3, 2020 / 3 March 2020 / 3rd of March / March 2020 / Mar 3
    ("text", r"(?i)\b(?=[0-9jfmasondtw])(?:(?:" + _WEEKDAY + r"),?[ ]+)?(?:\d{1,2}(?:st|nd|rd|th)?(?:[ ]+of)?[ ]+" + _MONTH +
     r"(?:,?[ ]+\d{4})?|" + _MONTH + r"[ ]+\d{1,2}(?:st|nd|rd|th)?(?:,?[ ]+\d{4})?|" + _MONTH +
     r",?[ ]+\d{4})\b"),
    ("weekday", r"(?i)\b(?=[mtwfs])" + _WEEKDAY + r"s?\b"),
    ("time", r"(?<![\d:.])" + _TIME + r"(?![\d:])|(?i:\b(?:1[0-2]|0?[1-9])[ ]?(?:[ap]\.m\.|[ap]m)(?![a-z]))"),
    # Chinese: 2024年3月5日 / 3月5日 / 2024年 / 星期三 / 周五
    ("zh", r"\d{4}年(?:\d{1,2}月(?:\d{1,2}[日号])?)?|\d{1,2}月\d{1,2}[日号]|(?:星期|礼拜)[一二三四五六日天]"),
    # a year alone: in 1977, since 2001, the 1990s, a 2017 film
    ("year", r"(?<![\w.,/:$€£-])(?:1[6-9]|20)\d\d(?:s|'s)?(?![\w]|[.,/:-]\d)"),
]
_YEAR_BEFORE = re.compile(
    r"(?:\b(?:in|since|during|of|by|until|till|from|to|before|after|around|circa|ca\.|c\.|year|years|early|"
    r"late|mid|the|a|an|born|founded|established|built|dated|between|and|fiscal|fy|class|summer|winter|"
    r"spring|autumn|fall|january|february|march|april|may|june|july|august|september|october|november|"
    r"december)|[(–-])\s*$", re.IGNORECASE)
_DATE_WORDS = words("date", "born", "birth", "dob", "when", "on", "since", "due", "expires", "expiry", "日期",
                     "生日", "出生")


def _date_score(kind: str, m: re.Match[str], text: str) -> float | None:
    value = m.group(0)
    if kind == "iso":
        y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
        return 0.85 if v.valid_date(y, mo, d, 1000, 2999) else None
    if kind == "dmy":
        a, b, year = int(m.group(1)), int(m.group(2)), m.group(3)
        if not (a <= 12 and 1 <= b <= 31 or b <= 12 and 1 <= a <= 31) or a == 0 or b == 0:
            return None
        score = 0.75 if len(year) == 4 else 0.5
        return score + 0.2 if near(text, m.start(), m.end(), _DATE_WORDS, 24, 0) else score
    if kind == "text":
        if value[:3].lower() == "may" and not any(c.isdigit() for c in value):
            return None
        return 0.8 if any(c.isdigit() for c in value) else None
    if kind == "weekday":
        return 0.6 if value[0].isupper() or value.islower() else 0.5
    if kind == "time":
        if ":" in value and value.count(":") == 1 and text[m.end():m.end() + 1].isdigit():
            return None
        return 0.6
    if kind == "zh":
        return 0.8
    # a lone year: needs a preposition, article or date word in front and must not be an address number
    if in_address(text, m.start(), m.end()):
        return None
    if _YEAR_BEFORE.search(text, max(0, m.start() - 16), m.start()):
        return 0.6
    return 0.35


def _date_recognizers() -> list[Recognizer]:
    out: list[Recognizer] = []
    for kind, pattern in _DATE_PATTERNS:
        def scorer(m: re.Match[str], t: str, k: str = kind) -> float | None:
            return _date_score(k, m, t)

        out.append(Recognizer("DATE_TIME", f"date_{kind}", pattern, scorer))
    return out


def builtin_recognizers() -> list[Recognizer]:
    """Every pure-regex recognizer (secrets live in `pii_secrets`)."""
    return [
        Recognizer("EMAIL_ADDRESS", "email", _EMAIL, _email),
        UrlRecognizer(),
        Recognizer("IP_ADDRESS", "ipv4", _IPV4, _ipv4),
        Recognizer("IP_ADDRESS", "ipv6", _IPV6, _ipv6),
        Recognizer("PHONE_NUMBER", "phone", _PHONE, _phone),
        Recognizer("CREDIT_CARD", "credit_card", _CARD, _credit_card),
        IbanRecognizer(),
        Recognizer("US_SSN", "us_ssn", _SSN, _ssn),
        Recognizer("US_DRIVER_LICENSE", "us_driver_license", _DL, _driver_license),
        Recognizer("CN_RESIDENT_ID", "cn_resident_id", _CN_ID, _cn_id),
        Recognizer("CN_RESIDENT_ID", "cn_resident_id15", _CN_ID15, _cn_id15),
        Recognizer("CN_MOBILE", "cn_mobile", _CN_MOBILE, _cn_mobile),
        Recognizer("CN_BANK_CARD", "cn_bank_card", _CARD, _cn_bank_card),
        *_date_recognizers(),
    ]
