"""AWS Signature Version 4 for one HTTP request (what botocore's SigV4Auth does for non-S3 services).

    headers = sign_v4("POST", url, {"content-type": "application/json"}, body, credentials,
                      region="us-east-1", service="bedrock")

Checked against AWS's published test vectors (get-vanilla, get-vanilla-query-order-key-case) and against
botocore for Bedrock-shaped requests (tests/test_provider_bedrock.py). Signed: `host`, `x-amz-date`,
`x-amz-security-token` (temporary credentials) and the headers passed in. The path is signed as it goes on the
wire, URI-encoded once more (the rule for every service but S3).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"


@dataclass(frozen=True)
class AwsCredentials:
    access_key: str
    secret_key: str
    session_token: str | None = None

    def __repr__(self) -> str:  # never the secret
        return f"AwsCredentials(access_key={self.access_key[:4]}…)"


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    key = _hmac(("AWS4" + secret_key).encode(), date)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    return key


def host_header(url: str) -> str:
    """The Host header an HTTP client sends for `url` (the port only when it is not the scheme's default)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    default = 443 if parts.scheme == "https" else 80
    return host if parts.port in (None, default) else f"{host}:{parts.port}"


def canonical_request(method: str, url: str, headers: dict[str, str], body: bytes) -> tuple[str, str]:
    """(canonical request, signed header names joined by ';'); `headers` must include host and x-amz-date."""
    parts = urlsplit(url)
    path = quote(parts.path or "/", safe="/~")
    query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
                     for k, v in sorted(parse_qsl(parts.query, keep_blank_values=True)))
    items = sorted((k.lower().strip(), " ".join(str(v).split())) for k, v in headers.items())
    names = ";".join(k for k, _ in items)
    lines = "".join(f"{k}:{v}\n" for k, v in items)
    return "\n".join([method.upper(), path, query, lines, names, hashlib.sha256(body).hexdigest()]), names


def signature(method: str, url: str, headers: dict[str, str], body: bytes, secret_key: str, *, amz_date: str,
              region: str, service: str) -> tuple[str, str]:
    """(hex signature, signed header names) of a request whose `headers` are the ones to sign."""
    request, names = canonical_request(method, url, headers, body)
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(request.encode()).hexdigest()])
    key = signing_key(secret_key, amz_date[:8], region, service)
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest(), names


def sign_v4(method: str, url: str, headers: dict[str, str], body: bytes, credentials: AwsCredentials, *,
            region: str, service: str, now: dt.datetime | None = None) -> dict[str, str]:
    """`headers` plus Host, X-Amz-Date, X-Amz-Security-Token (when temporary) and Authorization."""
    amz_date = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
    signed = {**headers, "host": host_header(url), "x-amz-date": amz_date}
    if credentials.session_token:
        signed["x-amz-security-token"] = credentials.session_token
    sig, names = signature(method, url, signed, body, credentials.secret_key, amz_date=amz_date, region=region,
                           service=service)
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    signed["authorization"] = (f"{ALGORITHM} Credential={credentials.access_key}/{scope}, SignedHeaders={names}, "
                               f"Signature={sig}")
    return signed


def parse_authorization(value: str) -> dict[str, str] | None:
    """The Credential, SignedHeaders and Signature fields of a SigV4 Authorization header (for verifiers)."""
    if not value.startswith(ALGORITHM + " "):
        return None
    fields = {}
    for part in value[len(ALGORITHM) + 1:].split(","):
        key, _, val = part.strip().partition("=")
        fields[key] = val
    return fields if {"Credential", "SignedHeaders", "Signature"} <= fields.keys() else None
