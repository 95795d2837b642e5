"""Planted secrets and PII for the security suite: values drawn at random from each credential's published
shape (a fresh set per seed, so nothing is tuned to fixed strings), each embedded in the kind of sentence a
user or a document would carry it in. `found(blob)` lists the planted values present in a blob of text."""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

ALNUM = string.ascii_letters + string.digits
B64 = ALNUM + "+/"
URLSAFE = ALNUM + "-_"


@dataclass(frozen=True)
class Plant:
    name: str
    value: str  # what must never be found
    sentence: str  # how it is planted


def _draw(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _mixed(rng: random.Random, alphabet: str, n: int) -> str:
    """Random, with at least one upper, one lower and one digit (real keys have all three)."""
    while True:
        s = _draw(rng, alphabet, n)
        if any(c.isupper() for c in s) and any(c.islower() for c in s) and any(c.isdigit() for c in s):
            return s


def secrets(seed: int = 0) -> list[Plant]:
    r = random.Random(seed)
    openai = "sk-" + _mixed(r, ALNUM, 48)
    proj = "sk-proj-" + _mixed(r, URLSAFE, 100)
    ant = "sk-ant-api03-" + _mixed(r, URLSAFE, 93) + "AA"
    aws_id = "AKIA" + _draw(r, string.ascii_uppercase + string.digits, 16)
    aws_secret = _mixed(r, B64, 40)
    aws_alone = _mixed(r, B64, 40)
    github = "ghp_" + _mixed(r, ALNUM, 36)
    google = "AIza" + _mixed(r, URLSAFE, 35)
    slack = f"xoxb-{_draw(r, string.digits, 12)}-{_draw(r, string.digits, 13)}-{_mixed(r, ALNUM, 24)}"
    hf = "hf_" + _mixed(r, ALNUM, 34)
    jwt = "eyJ" + _mixed(r, URLSAFE, 30) + ".eyJ" + _mixed(r, URLSAFE, 60) + "." + _mixed(r, URLSAFE, 43)
    bearer = _mixed(r, ALNUM + "-._~", 40)
    key_body = _mixed(r, B64, 64)
    url_pw = _mixed(r, ALNUM, 18)
    hex_token = _draw(r, "0123456789abcdef", 40)
    zh_key = "sk-" + _mixed(r, ALNUM, 48)
    zh_password = _mixed(r, ALNUM, 10) + "!"
    return [
        Plant("openai", openai, f"use my key {openai} for the test"),
        Plant("openai_project", proj, f"OPENAI_API_KEY={proj}"),
        Plant("anthropic", ant, f"Claude key: {ant}"),
        Plant("aws_key_id", aws_id, f"aws_access_key_id {aws_id}"),
        Plant("aws_secret_next_to_id", aws_secret, f"credentials {aws_id} {aws_secret}"),
        Plant("aws_secret_after_aws", aws_alone, f"the aws one is {aws_alone} keep it safe"),
        Plant("github", github, f"clone with {github}"),
        Plant("google", google, f"maps key {google}"),
        Plant("slack", slack, f"bot token {slack}"),
        Plant("huggingface", hf, f"HF login {hf}"),
        Plant("jwt", jwt, f"session {jwt}"),
        Plant("bearer", bearer, f"curl -H 'Authorization: Bearer {bearer}' https://api.internal"),
        Plant("private_key", key_body,
              f"-----BEGIN OPENSSH PRIVATE KEY-----\n{key_body}\n-----END OPENSSH PRIVATE KEY-----"),
        Plant("url_password", url_pw, f"connect to postgresql://admin:{url_pw}@db.internal:5432/app"),
        Plant("token_is_hex", hex_token, f"my token is {hex_token}"),
        Plant("glued_to_chinese", zh_key, f"我的密钥是{zh_key}请保密"),
        Plant("chinese_password", zh_password, f"数据库密码：{zh_password}"),
    ]


PII = {
    "email": "jane.roe.4471@example.org",
    "phone": "+1 (415) 555-0199",
}


WINDOW = 12  # a leak of any 12 consecutive characters of a value counts (a key cut in half is still a leak)


def found(blob: str, plants: list[Plant]) -> list[str]:
    """Names of the plants whose value, or any WINDOW-character piece of it, occurs in `blob`."""
    out = []
    for p in plants:
        n = min(WINDOW, len(p.value))
        if any(p.value[i:i + n] in blob for i in range(len(p.value) - n + 1)):
            out.append(p.name)
    return out
