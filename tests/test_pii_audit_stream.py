"""A streamed answer through an output `pii` redact guard: multi-line secrets are masked whole, whatever the
size of the pieces the model sends."""

from __future__ import annotations

import random
import string

import pytest

from flywheel.guards.policy import GuardPolicy
from flywheel.guards.streaming import MAX_BLOCK, guard_stream

RNG = random.Random(7)
B64 = string.ascii_letters + string.digits + "+/"


def _key_body(lines: int) -> list[str]:
    return ["".join(RNG.choice(B64) for _ in range(64)) for _ in range(lines)]


def _pieces(text: str, n: int) -> list[str]:
    return [text[i : i + n] for i in range(0, len(text), n)]


def _stream(text: str, n: int) -> str:
    pipeline = GuardPolicy.from_config({"output": [{"check": "pii", "on_fail": "redact"}]}).output
    return "".join(guard_stream(_pieces(text, n), pipeline))


@pytest.mark.parametrize("kind", ["RSA PRIVATE KEY", "OPENSSH PRIVATE KEY", "PRIVATE KEY"])
@pytest.mark.parametrize("n", [1, 5, 64, 10_000])
def test_private_key_block_is_masked_whole(kind, n):
    body = _key_body(5)
    block = "\n".join([f"-----BEGIN {kind}-----", *body, f"-----END {kind}-----"])
    out = _stream(f"Here is the key you asked for:\n{block}\nKeep it safe. Rotate it monthly.", n)
    assert not any(line[:16] in out for line in body), out  # was: every body line released in clear
    assert out.startswith("Here is the key you asked for:") and out.endswith(
        "Keep it safe. Rotate it monthly."
    )


def test_unterminated_block_is_masked_to_the_end():
    body = _key_body(3)
    out = _stream("-----BEGIN EC PRIVATE KEY-----\n" + "\n".join(body) + "\n", 7)
    assert not any(line[:16] in out for line in body), out


def test_text_after_a_long_unclosed_block_is_still_released():
    # a BEGIN line that is never closed does not hold the rest of a long answer back forever
    tail = "Sentence number %d is here. "
    text = "-----BEGIN CERTIFICATE-----\n" + "".join(tail % i for i in range(MAX_BLOCK // 20))
    out = _stream(text, 500)
    assert out.endswith(tail % (MAX_BLOCK // 20 - 1))
