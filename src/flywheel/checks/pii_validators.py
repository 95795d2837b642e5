"""Checksums and plausibility tests behind the PII recognizers (pure Python, no dependencies).

Each function takes the matched text and answers whether it can be what the recognizer claims:
Luhn for payment cards, ISO 7064 MOD 11-2 for Chinese resident IDs, ISO 13616 MOD 97 for IBANs,
calendar validity for dates, and Shannon entropy for secrets.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import math
import re
from collections import Counter

_NON_DIGIT = re.compile(r"\D")


def digits(text: str) -> str:
    return _NON_DIGIT.sub("", text)


def luhn_valid(number: str) -> bool:
    """The Luhn (mod 10) check used by payment cards and most Chinese bank cards."""
    if not number.isdigit() or len(number) < 2:
        return False
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def repetitive(number: str) -> bool:
    """All one digit, or a plain run like 123456789: test data and placeholders, not real numbers."""
    if len(set(number)) <= 1:
        return True
    return number in "01234567890123456789" or number in "98765432109876543210"


_UNIONPAY = re.compile(r"^(?:62|81(?:[0-6]\d|7[01]))")
# Issuer prefixes and card lengths of the networks. A Luhn-valid number that fits one is likely a card;
# Maestro's wide range (12-19 digits, prefixes 50 / 56-69) also fits barcodes, so it scores lower.
_NETWORKS = [  # (prefix regex, allowed lengths, plausibility 0..1)
    (re.compile(r"^4"), {13, 16, 19}, 1.0),  # Visa
    (re.compile(r"^(?:5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720))"), {16}, 1.0),  # Mastercard
    (re.compile(r"^3[47]"), {15}, 1.0),  # American Express
    (re.compile(r"^3(?:0[0-5]|[689])"), set(range(14, 20)), 1.0),  # Diners Club
    (re.compile(r"^35(?:2[89]|[3-8]\d)"), set(range(16, 20)), 1.0),  # JCB
    (re.compile(r"^(?:6011|64[4-9]|65)"), set(range(16, 20)), 1.0),  # Discover
    (_UNIONPAY, set(range(16, 20)), 1.0),  # UnionPay
    (re.compile(r"^220[0-4]"), set(range(16, 20)), 1.0),  # Mir
    (re.compile(r"^(?:1800|2131)"), {15}, 1.0),  # JCB (old)
    (re.compile(r"^(?:50|5[6-9]|6\d|0604)"), set(range(12, 20)), 0.75),  # Maestro
]


def is_unionpay(number: str) -> bool:
    """A UnionPay card number: IIN 62 or, for cards issued since 2016, 8100-8171; 16 to 19 digits."""
    return bool(_UNIONPAY.match(number)) and 16 <= len(number) <= 19


def card_plausibility(number: str) -> float:
    """1.0 when prefix and length fit a major network, 0.75 for Maestro's wide range, else 0."""
    for prefix, lengths, score in _NETWORKS:
        if prefix.match(number) and len(number) in lengths:
            return score
    return 0.0


# ---------------------------------------------------------------- Chinese resident identity card (GB 11643)

_CN_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CN_ID_CHECK = "10X98765432"
# First digit of the administrative division code: 1 north, 2 north-east, 3 east, 4 south-central,
# 5 south-west, 6 north-west, 7 Taiwan, 8 Hong Kong / Macao / foreigners' permanent residence.
_CN_REGION_FIRST = set("12345678")


def cn_id_check_char(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character of the first 17 digits of an 18-digit resident ID."""
    total = sum(int(c) * w for c, w in zip(first17, _CN_ID_WEIGHTS, strict=True))
    return _CN_ID_CHECK[total % 11]


def valid_date(year: int, month: int, day: int, earliest: int = 1800, latest: int | None = None) -> bool:
    latest = latest or _dt.date.today().year
    if not earliest <= year <= latest:
        return False
    try:
        _dt.date(year, month, day)
    except ValueError:
        return False
    return True


def cn_id_valid(text: str) -> bool:
    """18 characters: region code, birth date YYYYMMDD, sequence number and MOD 11-2 check character."""
    s = text.strip().upper()
    if len(s) != 18 or not s[:17].isdigit() or s[0] not in _CN_REGION_FIRST:
        return False
    if not valid_date(int(s[6:10]), int(s[10:12]), int(s[12:14]), earliest=1880):
        return False
    return cn_id_check_char(s[:17]) == s[17]


def cn_id15_valid(text: str) -> bool:
    """The pre-1999 15-digit form (YYMMDD birth date, no check digit): only a date test is possible."""
    s = text.strip()
    if len(s) != 15 or not s.isdigit() or s[0] not in _CN_REGION_FIRST:
        return False
    return valid_date(1900 + int(s[6:8]), int(s[8:10]), int(s[10:12]), earliest=1900, latest=1999)


# ---------------------------------------------------------------- IBAN (ISO 13616)

IBAN_LENGTH = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21,
    "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28,
    "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22,
    "RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25,
    "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}


def iban_valid(compact: str) -> bool:
    s = compact.upper()
    if IBAN_LENGTH.get(s[:2]) != len(s) or not s[2:4].isdigit() or not s.isalnum():
        return False
    rearranged = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


# ---------------------------------------------------------------- US social security number


def ssn_valid(number: str) -> bool:
    """Area 001-665/667-899, group 01-99, serial 0001-9999 (SSA rules); known fakes rejected."""
    if len(number) != 9 or not number.isdigit() or repetitive(number):
        return False
    area, group, serial = number[:3], number[3:5], number[5:]
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return False
    return number not in ("078051120", "219099999")


# ---------------------------------------------------------------- IP addresses


def ip_valid(text: str) -> bool:
    try:
        ipaddress.ip_address(text.split("/")[0].split("%")[0])
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------- secrets


def shannon_entropy(text: str) -> float:
    """Bits per character; random base64 tokens score 4.5-6, English words 2.5-3.5."""
    if not text:
        return 0.0
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in Counter(text).values())


def looks_random(token: str, min_len: int = 16, min_entropy: float = 3.2) -> bool:
    """A credential-like token: long enough, mixed character classes, high entropy, not a plain word."""
    if len(token) < min_len:
        return False
    classes = sum((any(c.islower() for c in token), any(c.isupper() for c in token),
                   any(c.isdigit() for c in token)))
    return classes >= 2 and shannon_entropy(token) >= min_entropy


# ---------------------------------------------------------------- Hong Kong and Taiwan identity cards


def hk_id_valid(text: str) -> bool:
    """HKID: one or two letters, six digits, a check character 0-9 or A. Letters count A=10 … Z=35, a
    missing second letter counts 36; weights 9 … 1 from the left; the weighted sum is divisible by 11
    (the check character A stands for 10)."""
    s = re.sub(r"[\s()（）]", "", text).upper()
    if not re.fullmatch(r"[A-Z]{1,2}\d{6}[0-9A]", s):
        return False
    letters = s[:-7]
    values = ([36] if len(letters) == 1 else []) + [ord(c) - 55 for c in letters]
    values += [int(c) for c in s[-7:-1]] + [10 if s[-1] == "A" else int(s[-1])]
    return sum(val * w for val, w in zip(values, range(9, 0, -1), strict=True)) % 11 == 0


# Taiwan: the first letter's two-digit code (household registration place); I, O, W … are out of order.
_TW_LETTER = dict(zip("ABCDEFGHJKLMNPQRSTUVXYWZIO", range(10, 36), strict=True))


def tw_id_valid(text: str) -> bool:
    """Taiwan national ID (and the 2021 resident certificate): a letter, 1/2 (8/9 for residents), eight
    digits; the letter's code d1 d0 weighted 1, 9, the digits 8 … 1, the check digit 1; sum divisible by 10."""
    s = text.strip().upper()
    if not re.fullmatch(r"[A-Z][1289]\d{8}", s):
        return False
    code = _TW_LETTER[s[0]]
    total = code // 10 + code % 10 * 9 + sum(int(c) * w for c, w in zip(s[1:9], range(8, 0, -1), strict=True))
    return (total + int(s[9])) % 10 == 0
