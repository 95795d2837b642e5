"""Benchmarks (`flywheel bench …`): where their public data sets live, and how a missing one or a missing peer
is reported.

The data folder is `--data DIR`, else $FLYWHEEL_BENCH_DATA (or the older $FLYWHEEL_DATA_DIR), else
`../shared/data` next to the current folder or next to this source checkout. It holds one sub-folder per data
set (DATASETS). The data sets are not shipped with flywheel: a missing one is a UserError that names it, its
licence and where it is published.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flywheel.errors import UserError

ENV = "FLYWHEEL_BENCH_DATA"

# sub-folder -> what it is, its licence, where it is published
DATASETS: dict[str, dict[str, str]] = {
    "cmrc2018-dev": {"name": "CMRC 2018 dev set as a BEIR retrieval set (corpus.jsonl, queries.jsonl, qrels/test.tsv)",
                     "licence": "CC BY-SA 4.0", "published": "https://github.com/ymcui/cmrc2018"},
    "askfsdl-scope": {"name": "ask-fsdl questions labelled in/out of scope (queries.jsonl)",
                      "licence": "MIT", "published": "https://github.com/the-full-stack/ask-fsdl"},
    "presidio-synth": {"name": "Presidio synthetic PII spans (synth_dataset_v2.json)",
                       "licence": "MIT",
                       "published": "https://github.com/microsoft/presidio-research (data/synth_dataset_v2.json)"},
    "tensor-trust": {"name": "Tensor Trust prompt-injection attacks (*.jsonl)",
                     "licence": "research data (see the Tensor Trust paper)",
                     "published": "https://github.com/HumanCompatibleAI/tensor-trust-data"},
    "mrpc": {"name": "Microsoft Research Paraphrase Corpus (msr_paraphrase_test.txt, msr_paraphrase_train.txt)",
             "licence": "Microsoft Research, research use",
             "published": "https://www.microsoft.com/en-us/download/details.aspx?id=52398"},
}


def default_roots() -> list[Path]:
    """Where the data folder is looked for when --data is not given, in order."""
    roots = [os.environ.get(ENV), os.environ.get("FLYWHEEL_DATA_DIR")]
    out = [Path(r) for r in roots if r]
    out += [Path.cwd().parent / "shared" / "data", Path(__file__).resolve().parents[3].parent / "shared" / "data"]
    return out


def data_root(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The benchmark data folder: `explicit` (--data) when given (even if absent: the caller reports it), else
    the first default root that exists; None when none does."""
    if explicit:
        return Path(explicit)
    return next((p for p in default_roots() if p.is_dir()), None)


def dataset_dir(root: Path | None, name: str, bench: str) -> Path:
    """`root/name`, or a UserError saying which public data set `flywheel bench <bench>` needs and where to get
    it. `root` may itself be the data set's folder (`--data path/to/mrpc`)."""
    if root is not None:
        if (root / name).is_dir():
            return root / name
        if root.is_dir() and (root.name == name or _looks_like(root, name)):
            return root
    raise missing_data([name], bench, root)


def _looks_like(folder: Path, name: str) -> bool:
    marker = {"cmrc2018-dev": "corpus.jsonl", "askfsdl-scope": "queries.jsonl", "mrpc": "msr_paraphrase_test.txt",
              "presidio-synth": "synth_dataset_v2.json", "tensor-trust": "hijacking_robustness_dataset.jsonl"}
    return (folder / marker.get(name, "")).is_file()


def missing_data(names: list[str], bench: str, root: Path | None = None) -> UserError:
    """The error for missing benchmark data: what is needed, its licence and where it is published."""
    looked = str(root) if root is not None else ", ".join(str(p) for p in default_roots())
    lines = [f"`flywheel bench {bench}` needs public data not shipped with flywheel (looked in {looked}):"]
    for name in names:
        d = DATASETS.get(name, {"name": name, "licence": "?", "published": "?"})
        lines.append(f"  {name}/: {d['name']}; licence {d['licence']}; published at {d['published']}")
    return UserError("\n".join(lines), hint=f"download it into DIR/{names[0]}/ and pass --data DIR "
                     f"(or set {ENV}=DIR)")


def missing_peer(peer: str, install: str, reason: str | None = None) -> dict[str, Any]:
    """How a benchmark reports a peer it could not run: never as null."""
    out: dict[str, Any] = {"peer": peer, "status": "missing", "install": install}
    if reason:
        out["reason"] = reason
    return out
