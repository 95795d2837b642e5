"""Every English page under docs/ has its Chinese twin under docs/zh/ with the same file name (and no Chinese page
is without an English one), and the getting-started pair both carry the CLI exit-code table."""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_every_page_has_a_twin_of_the_same_name():
    english = {p.name for p in DOCS.glob("*.md")}
    chinese = {p.name for p in (DOCS / "zh").glob("*.md")}
    assert english - chinese == set(), "English pages without a docs/zh/ twin"
    assert chinese - english == set(), "Chinese pages without a docs/ twin (name them like the English page)"


def test_both_getting_started_pages_list_the_exit_codes():
    for page in (DOCS / "getting-started.md", DOCS / "zh" / "getting-started.md"):
        codes = re.findall(r"^\| (\d+) \|", page.read_text(encoding="utf-8"), flags=re.MULTILINE)
        assert codes == ["0", "1", "2", "3", "130", "141"], page


def test_links_between_pages_resolve():
    broken = []
    for page in DOCS.rglob("*.md"):
        for target in re.findall(r"\]\(([^)#:\s]+\.md)", page.read_text(encoding="utf-8")):
            if not (page.parent / target).resolve().exists():
                broken.append(f"{page.relative_to(DOCS)} → {target}")
    assert broken == []
