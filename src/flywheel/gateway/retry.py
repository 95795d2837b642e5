"""Retry policy: which failures are retried, and how long to wait before the next attempt.

Exponential backoff with full jitter (sleep uniformly in [0, min(max_s, base_s * 2**n)]), except
when the server sent Retry-After: then we wait what it asked, capped at `retry_after_cap_s`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime


@dataclass
class RetryPolicy:
    base_s: float = 0.25  # first backoff ceiling
    max_s: float = 8.0  # backoff ceiling never grows past this
    retry_after_cap_s: float = 30.0  # never wait longer than this for a Retry-After
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, retry_index: int, retry_after: float | None = None) -> float:
        """Seconds to sleep before retry number `retry_index` (0 for the first retry)."""
        if retry_after is not None and retry_after >= 0:
            return min(retry_after, self.retry_after_cap_s)
        ceiling = min(self.max_s, self.base_s * (2 ** retry_index))
        return self.rng.uniform(0.0, ceiling)


def parse_retry_after(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds from `retry-after-ms`, or `retry-after` given as seconds or an HTTP date; None if absent/bad."""
    if not headers:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
