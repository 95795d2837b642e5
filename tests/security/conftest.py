"""The security suite runs with the network refused beyond loopback (tests/security/netguard.py); every test
here must pass offline, and any attempt to reach out fails the test that made it."""

from __future__ import annotations

import pytest

from security.netguard import attempts, offline


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    # presidio's tldextract would fetch the public-suffix list; flywheel must not depend on it being reachable
    monkeypatch.setenv("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", " ")
    before = len(attempts)
    with offline():
        yield
    refused = attempts[before:]
    assert not refused, f"the code under test tried to reach the network: {refused}"
