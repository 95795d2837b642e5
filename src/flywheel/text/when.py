"""One reader of the time expressions users type: Unix seconds, an ISO date / date-time (UTC unless it says
otherwise), or an age like 24h, 7d, 30m (that long before now). The CLI's `--since/--until` and the HTTP
review API's `since/until` both read times here, so the two accept the same forms."""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime

from flywheel.errors import UserError

DAY = 86_400.0
_AGE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": DAY, "w": 7 * DAY}
FORMS_HINT = "use an age (24h, 7d), a date (2026-06-01), a date-time (2026-06-01T08:00) or Unix seconds"


def parse_when(value: str | float | None, option: str, now: float | None = None) -> float | None:
    """`value` as Unix seconds (None when empty); a UserError naming `option` when it is none of the forms."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
        if not math.isfinite(seconds):
            raise UserError(f"cannot read {option} {value!r} as a time", hint=FORMS_HINT)
        return seconds
    text = str(value).strip()
    now = time.time() if now is None else now
    m = _AGE.match(text.lower())
    if m:
        return now - float(m.group(1)) * _UNITS[m.group(2)]
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(seconds):
            return seconds
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise UserError(f"cannot read {option} {value!r} as a time", hint=FORMS_HINT) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()
