"""The builders of the Debian description / man page retrieval sets, on tiny inline fixtures, and the sets
committed under benchmarks/retrieval-sets/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flywheel.bench import retrieval_sets_debian as deb
from flywheel.bench.retrieval_sets import SETS, build
from flywheel.retrieval.beir import load_beir

TRANSLATION_EN = """Package: agda
Description-md5: 0
Description-en: dependently typed functional programming language
 Agda is a dependently typed functional programming language:
 it has inductive families.
 .
 Agda is also a proof assistant.

Package: agda-bin
Description-md5: 1
Description-en: agda-bin
 The name alone is no query.

Package: zsh
Description-md5: 2
Description-en: shell with lots of features
 Zsh is a UNIX command interpreter (shell) usable as an
 interactive login shell and as a shell script command processor.
"""

TRANSLATION_ZH = """Package: 0ad
Description-md5: 3
Description-zh_CN: 古代战争实时策略游戏
 0 A.D. 是一个自由、开源、跨平台的
 古代战争实时策略游戏。
"""

LS_1 = r""".\" a comment
.TH LS 1 "2022" "GNU coreutils" "User Commands"
.SH NAME
ls \- list directory contents
.SH SYNOPSIS
.B ls
[\fIOPTION\fR]... [\fIFILE\fR]...
.SH DESCRIPTION
.\" Add any additional description here
.PP
List information about the FILEs (the current directory by default).
Sort entries alphabetically if none of
.BR \-cftuvSUX " nor " \-\-sort
is specified.
.de XX
ignored macro body
..
.TP
\fB\-a\fR, \fB\-\-all\fR
do not ignore entries starting with \(lq.\(rq
"""

LS_ZH = r""".TH LS 1
.SH 名称
ls \- 列出目录内容
.SH 描述
.PP
列出指定“文件”（默认为当前目录）的信息。如果既没有指定任何一个选项，也没有指定排序方式，则按字母排序项目。
必选参数对长短选项同时适用。不要忽略以点号起始的条目，不要列出隐含的项目。
"""


def test_translation_records_queries_and_documents() -> None:
    items = deb.parse_translation(TRANSLATION_EN)
    assert [it.name for it in items] == ["agda", "zsh"]  # a synopsis that is just the package name is dropped
    agda = items[0]
    assert agda.query == "dependently typed functional programming language"
    assert agda.document == ("Agda is a dependently typed functional programming language: it has inductive "
                             "families.\nAgda is also a proof assistant.")
    (zh,) = deb.parse_translation(TRANSLATION_ZH)
    assert zh.query == "古代战争实时策略游戏"
    assert zh.document == "0 A.D. 是一个自由、开源、跨平台的古代战争实时策略游戏。"  # no space inside Chinese


def test_roff_text_and_manpage_item() -> None:
    sections = deb.roff_sections(LS_1)
    assert sections is not None
    assert [h for h, _ in sections] == ["NAME", "SYNOPSIS", "DESCRIPTION"]
    description = dict(sections)["DESCRIPTION"]
    assert "-cftuvSUX nor --sort is specified" in description
    assert "ignored macro body" not in description and "comment" not in description
    assert '-a, --all do not ignore entries starting with "."' in description
    item = deb.manpage_item("ls.1", LS_1, "en")
    assert item is not None
    assert item.query == "list directory contents"
    assert "list directory contents" not in item.document  # the NAME section is left out
    assert item.document.startswith("ls [OPTION]... [FILE]... List information")
    assert deb.roff_sections(".so man1/ls.1\n") is None  # an alias page
    several = deb.manpage_item("bzip2.1", ".SH NAME\nbzip2 \\- a block-sorting file compressor\nbzcat \\- "
                               "decompresses files to stdout\n.SH DESCRIPTION\n" + "word " * 30, "en")
    assert several is not None and several.query == "a block-sorting file compressor"
    zh = deb.manpage_item("ls.1", LS_ZH, "zh")
    assert zh is not None and zh.query == "列出目录内容" and "列出目录内容" not in zh.document


def test_manpage_item_cuts_long_pages() -> None:
    body = " ".join(f"w{i}" for i in range(400))
    item = deb.manpage_item("x.1", f".SH NAME\nx \\- does x things\n.SH DESCRIPTION\n{body}\n", "en")
    assert item is not None and len(item.document.split()) == deb.EN_WORDS
    zh_body = "中" * 700
    zh = deb.manpage_item("x.1", f".SH NAME\nx \\- 做事\n.SH 描述\n{zh_body}\n", "zh")
    assert zh is not None and zh.document == "中" * deb.ZH_CHARS


def test_select_keeps_one_per_family_and_splits_by_name() -> None:
    shared = " ".join(f"word{i}" for i in range(40))
    items = [deb.Item("libfoo1", "foo library runtime", shared + " runtime files"),
             deb.Item("libfoo-dev", "foo library development files", shared + " headers"),
             deb.Item("bar", "a bar tool", " ".join(f"other{i}" for i in range(40))),
             deb.Item("bar2", "A bar tool!", " ".join(f"third{i}" for i in range(40)))]
    halves = deb.select(items, "en", max_docs=10)
    kept = [it.name for part in halves.values() for it in part]
    assert len([n for n in kept if n.startswith("libfoo")]) == 1  # one of the family
    assert len([n for n in kept if n.startswith("bar")]) == 1  # same query, case and punctuation ignored
    for name_half, part in halves.items():
        assert all(deb.half(it.name) == name_half for it in part)
    assert all(len(part) <= 1 for part in deb.select(items, "en", max_docs=1).values())


def test_packaged_round_trip(tmp_path: Path) -> None:
    items = deb.parse_translation(TRANSLATION_EN)
    deb.write_packaged(tmp_path / "src" / "tiny-dev", items)
    first = (tmp_path / "src" / "tiny-dev" / "corpus.jsonl.gz").read_bytes()
    deb.write_packaged(tmp_path / "src" / "tiny-dev", items)
    assert (tmp_path / "src" / "tiny-dev" / "corpus.jsonl.gz").read_bytes() == first  # deterministic bytes
    data = load_beir(deb.unpack("tiny-dev", tmp_path / "out", root=tmp_path / "src"))
    assert data.queries == {"q:agda": "dependently typed functional programming language",
                            "q:zsh": "shell with lots of features"}
    assert data.qrels == {"q:agda": {"agda": 1}, "q:zsh": {"zsh": 1}}


@pytest.mark.parametrize("name", [n for n, spec in SETS.items() if spec[2] == "packaged"])
def test_committed_sets_are_sound(name: str, tmp_path: Path) -> None:
    data = load_beir(build(name, None, tmp_path / name))
    docs = [json.loads(line) for line in data.corpus.open(encoding="utf-8")]
    ids = [d["_id"] for d in docs]
    assert len(ids) == len(set(ids)) and 100 <= len(ids) <= 1500
    assert set(data.queries) == set(data.qrels)
    assert all(set(rel) <= set(ids) for rel in data.qrels.values())
    role = SETS[name][1]
    assert all(deb.half(i) == role for i in ids)  # the halves share no item
    assert all(d["text"].strip() for d in docs) and all(q.strip() for q in data.queries.values())


def test_committed_sets_stay_small() -> None:
    total = sum(p.stat().st_size for p in deb.PACKAGED.rglob("*") if p.is_file())
    assert total < 2_500_000


def test_an_unknown_set_is_a_user_error() -> None:
    from click.testing import CliRunner

    from flywheel.bench.retrieval import command
    from flywheel.errors import UserError

    result = CliRunner().invoke(command, ["--sets", "--set", "nope"])
    assert isinstance(result.exception, UserError) and "nope" in str(result.exception)
    assert "manpages-zh-heldout" in (result.exception.hint or "")
