"""Cost of a call from its token usage and the alias's price (USD per 1M tokens).

Rule for failed attempts: an attempt costs exactly the tokens the provider REPORTED for it
(some servers return `usage` on an error body or before a stream breaks). An attempt that
reported nothing (429, 5xx, timeout, dropped connection) is counted as 0 tokens and $0 —
providers do not bill those — and its span carries `flywheel.usage.estimated_input_tokens`
(a ~4 chars/token estimate) for visibility only; estimates never enter `usage` or `cost_usd`.
"""

from __future__ import annotations

from flywheel.config import Price
from flywheel.types import Usage

PER_TOKENS = 1_000_000


def cost_usd(price: Price, input_tokens: int, output_tokens: int) -> float:
    """USD for the given token counts at `price` (USD per 1M input / output tokens)."""
    if not (price.input or price.output):
        return 0.0
    return (input_tokens * price.input + output_tokens * price.output) / PER_TOKENS


def usage_cost(price: Price, usage: Usage | None) -> float:
    return 0.0 if usage is None else cost_usd(price, usage.input_tokens, usage.output_tokens)
