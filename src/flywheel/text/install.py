"""The pip command that adds an extra to *this* flywheel install.

flywheel is installed from a clone (`pip install -e ".[local]"`); the `flywheel` project on PyPI is an unrelated
package (a DynamoDB ORM), so `pip install 'flywheel[server]'` would install the wrong thing. The hint names the
folder flywheel was installed from, as pip recorded it (PEP 610 direct_url.json).
"""

from __future__ import annotations

import json
from functools import lru_cache
from urllib.parse import unquote, urlparse


@lru_cache(maxsize=1)
def _source() -> tuple[str, bool] | None:
    """(the folder flywheel was installed from, editable?) or None when pip recorded no local folder."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        raw = distribution("flywheel").read_text("direct_url.json")
    except PackageNotFoundError:
        return None
    try:
        info = json.loads(raw or "")
    except ValueError:
        return None
    url = urlparse(str(info.get("url", "")))
    if url.scheme != "file" or not url.path:
        return None
    return unquote(url.path), bool((info.get("dir_info") or {}).get("editable"))


def pip_install(extra: str) -> str:
    """`pip install -e '/path/to/clone[extra]'` for the clone this flywheel runs from, else the generic form."""
    source = _source()
    if source is None:
        return f"pip install -e '.[{extra}]' in your flywheel clone"
    path, editable = source
    return f"pip install {'-e ' if editable else ''}'{path}[{extra}]'"
