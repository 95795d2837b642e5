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


def cost_usd(price: Price, input_tokens: int, output_tokens: int, cache_read: int = 0, cache_write: int = 0
             ) -> float:
    """USD for the given token counts at `price` (USD per 1M tokens). `input_tokens` includes the `cache_read`
    and `cache_write` tokens, which are priced at `price.cache_read` / `price.cache_write` when set (Anthropic:
    0.1× and 1.25× the input price; OpenAI's cached input: 0.1-0.5×), else at the input price."""
    if not (price.input or price.output or price.cache_read or price.cache_write):
        return 0.0
    cache_read, cache_write = min(cache_read, input_tokens), min(cache_write, max(input_tokens - cache_read, 0))
    uncached = input_tokens - cache_read - cache_write
    read = price.input if price.cache_read is None else price.cache_read
    write = price.input if price.cache_write is None else price.cache_write
    return (uncached * price.input + cache_read * read + cache_write * write + output_tokens * price.output
            ) / PER_TOKENS


def usage_cost(price: Price, usage: Usage | None) -> float:
    if usage is None:
        return 0.0
    return cost_usd(price, usage.input_tokens, usage.output_tokens, usage.cache_read_tokens,
                    usage.cache_write_tokens)
