"""The hint of an all-failed gateway error suggests `fallbacks:` only when the alias had none to try."""

from flywheel.errors import AttemptFailure, GatewayError


def test_fallbacks_are_suggested_only_when_none_were_tried():
    alone = GatewayError("gpt", [AttemptFailure("gpt", "m", "no API key", 401)])
    chain = GatewayError("gpt", [AttemptFailure("gpt", "m", "no API key", 401),
                                 AttemptFailure("backup", "m2", "no API key", 401)])
    assert "fallbacks:" in (alone.hint or "")
    assert "fallbacks:" not in (chain.hint or "") and "API key is set" in (chain.hint or "")
