"""Rebuild benchmarks/retrieval-sets/ (debian-desc-{en,zh}, manpages-{en,zh}) from the downloaded sources.

    mkdir -p /tmp/retrieval-src && cd /tmp/retrieval-src
    curl -sSfO http://deb.debian.org/debian/dists/bookworm/main/i18n/Translation-en.xz
    curl -sSfO http://deb.debian.org/debian/dists/bookworm/main/i18n/Translation-zh_CN.bz2
    apt-get download manpages manpages-dev manpages-zh      # bookworm: 6.03-2, 6.03-2, 1.6.4.0-1
    for d in manpages manpages-dev manpages-zh; do dpkg-deb -x ${d}_*.deb x; done
    cd - && python scripts/build_retrieval_sets.py /tmp/retrieval-src

The rules (queries, documents, near-duplicate families, dev / held-out halves) are in
src/flywheel/bench/retrieval_sets_debian.py; the output is byte-for-byte the same on every run.
"""

from __future__ import annotations

import bz2
import lzma
import sys
from pathlib import Path

from flywheel.bench.retrieval_sets_debian import (
    PACKAGED,
    Item,
    manpage_item,
    manpage_name,
    parse_translation,
    read_manpage,
    select,
    write_packaged,
)

MAX_DOCS = {"debian-desc-en": 1500, "debian-desc-zh": 1500, "manpages-en": 1000, "manpages-zh": 1000}


def _manpages(folders: list[Path], language: str) -> list[Item]:
    items = []
    for folder in folders:
        for path in sorted(folder.glob("man[1-8]*/*")):
            if path.is_symlink() or not path.is_file():
                continue  # an alias of another page
            item = manpage_item(manpage_name(path), read_manpage(path), language)
            if item is not None:
                items.append(item)
    return items


def main(source: Path, out: Path = PACKAGED) -> None:
    with lzma.open(source / "Translation-en.xz", "rt", encoding="utf-8") as f:
        english = f.read()
    with bz2.open(source / "Translation-zh_CN.bz2", "rt", encoding="utf-8") as f:
        chinese = f.read()
    built = {
        "debian-desc-en": (parse_translation(english), "en"),
        "debian-desc-zh": (parse_translation(chinese), "zh"),
        "manpages-en": (_manpages([source / "x/usr/share/man"], "en"), "en"),
        "manpages-zh": (_manpages([source / "x/usr/share/man/zh_CN"], "zh"), "zh"),
    }
    for name, (items, language) in built.items():
        halves = select(items, language, MAX_DOCS[name])
        for half, kept in halves.items():
            write_packaged(out / f"{name}-{half}", kept)
            print(f"{name}-{half}: {len(kept)} items (of {len(items)} parsed)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python scripts/build_retrieval_sets.py SOURCE_FOLDER (see the docstring)")
    main(Path(sys.argv[1]))
