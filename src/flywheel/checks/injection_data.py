"""Readers for the public data behind the injection model and its benchmark, and the fixed split.

Benign texts (questions from cmrc2018-dev and askfsdl-scope, sentences from MRPC's train file) are
split by a hash of the text: about 30 % is held out for `flywheel bench guards` and never trained on.
The Tensor Trust files are used as the README prescribes: `extraction_robustness_dataset.jsonl` for
training, `hijacking_robustness_dataset.jsonl` and `prompt_extraction_detection.jsonl` only for
testing. Only `scripts/train_injection.py` and the benchmark read these files; the shipped model
does not need them.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import os
from pathlib import Path

HELD_OUT_PERCENT = 30


def data_dir(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The shared data folder: an explicit path, $FLYWHEEL_DATA_DIR, ../shared/data from the current
    folder, or ../shared/data next to this source checkout; None when none exists."""
    candidates = [explicit, os.environ.get("FLYWHEEL_DATA_DIR"), Path.cwd().parent / "shared" / "data",
                  Path(__file__).resolve().parents[4] / "shared" / "data"]
    for c in candidates:
        if c and Path(c).is_dir():
            return Path(c)
    return None


def held_out(text: str) -> bool:
    """True for the ~30 % of benign texts reserved for evaluation (stable across runs and machines)."""
    return hashlib.sha1(text.encode("utf-8")).digest()[0] * 100 < HELD_OUT_PERCENT * 256


def _jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def benign_sources(root: Path) -> dict[str, list[str]]:
    """Deduplicated benign texts per source (both splits)."""
    cmrc = [r["text"] for r in _jsonl(root / "cmrc2018-dev" / "queries.jsonl")]
    askfsdl = [r["query"] for r in _jsonl(root / "askfsdl-scope" / "queries.jsonl")]
    mrpc: list[str] = []
    with (root / "mrpc" / "msr_paraphrase_train.txt").open(encoding="utf-8-sig") as fh:
        next(fh)
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 5:
                mrpc += [parts[3], parts[4]]
    return {name: list(dict.fromkeys(t.strip() for t in texts if t.strip()))
            for name, texts in (("cmrc2018", cmrc), ("askfsdl", askfsdl), ("mrpc", mrpc))}


def benign_split(root: Path, held: bool) -> dict[str, list[str]]:
    return {name: [t for t in texts if held_out(t) == held] for name, texts in benign_sources(root).items()}


def tensor_trust(root: Path, name: str) -> list[dict]:
    return _jsonl(root / "tensor-trust" / name)


def cmrc_passages(root: Path) -> list[str]:
    """Chinese encyclopedia passages (cmrc2018-dev corpus): benign documents for indirect-injection scanning."""
    return list(dict.fromkeys(r["text"] for r in _jsonl(root / "cmrc2018-dev" / "corpus.jsonl")))


# Python standard-library docstrings: technical English prose with code, imperatives and URLs, the same
# on every Python 3.11 install (so training is reproducible without downloading anything).
_STDLIB = ["json", "re", "os", "pathlib", "subprocess", "argparse", "logging", "unittest", "asyncio", "http.client", "urllib.request", "email", "csv", "sqlite3", "datetime", "collections", "itertools", "functools", "typing", "dataclasses", "shutil", "tempfile", "threading", "socket", "ssl", "hashlib", "base64", "zipfile", "tarfile", "html", "string", "textwrap", "random", "statistics", "decimal", "fractions", "math", "inspect", "ast", "pdb", "timeit", "contextlib", "abc", "enum", "copy", "pickle", "configparser", "getpass", "secrets", "hmac", "uuid", "ipaddress", "smtplib", "ftplib", "imaplib", "mimetypes", "gzip", "bz2", "lzma", "struct", "codecs", "locale", "gettext", "platform", "signal", "selectors", "queue", "sched", "heapq", "bisect", "weakref", "types", "operator", "pprint", "difflib", "unicodedata", "zipapp", "pkgutil", "runpy", "warnings", "traceback", "doctest", "optparse", "shlex", "glob", "fnmatch", "filecmp", "netrc", "plistlib", "calendar", "graphlib", "concurrent.futures"]


def stdlib_docs(min_chars: int = 150) -> list[str]:
    docs: list[str] = []
    for name in _STDLIB:
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        if mod.__doc__:
            docs.append(mod.__doc__)
        for attr, obj in sorted(vars(mod).items()):
            if attr.startswith("_") or getattr(obj, "__module__", None) != mod.__name__:
                continue
            if inspect.isclass(obj) or inspect.isfunction(obj):
                doc = inspect.getdoc(obj)
                if doc and len(doc) >= min_chars:
                    docs.append(doc)
    return list(dict.fromkeys(docs))
