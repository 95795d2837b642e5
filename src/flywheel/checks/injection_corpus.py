"""The hand-written training corpus of the injection model, read from data files in `checks/data/`.

Each `injection_<set>.jsonl` holds one `{"text": ...}` per line, in the order the training script
samples from it (duplicates kept: the order and multiplicity make training reproducible). The sets
(see `checks/data/README.md` for what each holds and how it was written):

- `attacks`: English and Chinese attacks (override, forced output, extraction, role play, fake
  delimiters, authority, encodings, floods, instructions addressed to an AI, extraction asked as a
  plain question);
- `hard_benign`, `benign_vocabulary`: benign requests and texts sharing words with attacks;
- `assistant_requests`: benign requests addressed to an assistant (second person, imperative);
- `documentation`, `technical_docs`: documentation sentences, technical documents and tool results;
- `licence_units`: lines of licence and copyright texts (for the sources model; none occurs in the
  licences of the indirect evaluation set).

Only `scripts/train_injection.py` and the tests read these; scoring needs only the shipped model.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

DATA_DIR = Path(__file__).parent / "data"
SETS = ("attacks", "hard_benign", "benign_vocabulary", "assistant_requests", "documentation", "technical_docs",
        "licence_units")


@functools.lru_cache(maxsize=16)
def _load(name: str) -> tuple[str, ...]:
    if name not in SETS:
        raise ValueError(f"unknown injection corpus set {name!r} (valid: {', '.join(SETS)})")
    path = DATA_DIR / f"injection_{name}.jsonl"
    rows = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rows.append(str(json.loads(line)["text"]))
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{n}: not a {{\"text\": ...}} row ({exc})") from None
    return tuple(rows)


def load(name: str) -> list[str]:
    """The texts of one set, in file order."""
    return list(_load(name))


def attacks() -> list[str]:
    return load("attacks")


def hard_benign() -> list[str]:
    return load("hard_benign")


def benign() -> list[str]:
    return load("benign_vocabulary")


def assistant_requests() -> list[str]:
    return load("assistant_requests")


def documentation() -> list[str]:
    return load("documentation")


def technical_docs() -> list[str]:
    return load("technical_docs")
