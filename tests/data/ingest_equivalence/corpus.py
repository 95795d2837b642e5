"""The mixed English/Chinese corpus of tests/test_ingest_speed_equivalence.py, written by `write_corpus`.
expected.json holds what ingesting it (keyword-only, BATCH_CHUNKS=8, into SQLite) stored before the ingest
speed work (issue #17): every chunk's id, text hash, keyword tokens and language, and the file records. The
files' `settings` hash includes TOKENIZER_VERSION and was updated when it went to 2 (traditional Chinese folded to
simplified; this corpus's keyword tokens did not change) and to 3 (English words stemmed: the English chunks'
tokens were updated too, each token either as it was or its Snowball stem, every other field unchanged) and to 4
(用例 and 线上, two-character words jieba's dictionary lacks, became their characters; every other field unchanged).
CHUNKER_VERSION 3 changed every file's `settings` and added one chunk: the last line of zh/notes.txt (a short
line standing alone at the end of the file), which the text loader took for a heading and lost before."""

from __future__ import annotations

import json
from pathlib import Path

_EN = ("The gateway retries failed calls and falls back to another model. Virtual keys carry budgets and rate "
       "limits, and the semantic cache answers paraphrased questions without calling the model again.")
_ZH = "数据飞轮把线上反馈变成评测用例和训练数据。成对比较评估比打分更稳定，位置交换可以消除偏差。"
_FR = "Le cache sémantique répond aux questions reformulées pour les utilisateurs et la plupart des équipes."

FILES: dict[str, str] = {
    "guide.md": (
        "---\ntitle: Gateway guide\ntags: demo\n---\n# Overview\n" + _EN + "\n关注我们的公众号\n"
        "Home | Docs | Blog | About\n\n## Keys\n" + "\n\n".join(f"Part {i}. {_EN}" for i in range(6)) + "\n\n"
        "```python\n# not a heading\napi_key = \"sk-abcdefghijklmnopqrstuvwx1234567890\"\nprint('你好 world')\n```\n\n"
        "## 中文部分\n" + _ZH + "怎么设置 model version pinning？\nContact 王小明 for details about the gateway.\n\n"
        "## Français\n" + _FR + "\n\nReferences\n[1] Smith et al. 2021. https://example.com/a\n"
        "[2] Doe, J. 2020. https://example.com/b\n"),
    "zh/飞轮.md": "# 数据飞轮\n" + "\n\n".join(f"第{i}段。{_ZH}团队每天检查一部分线上输入和输出。" for i in range(14)) + "\n",
    "zh/notes.txt": ("第一章 概述\n\n" + _ZH * 3 + "\n\n一、背景\n\n" + _ZH + " The cache 命中率 is 42%.\n\n"
                     "**Mixed 混合**\n\nＡＢＣ１２３ ﬁle ① café 东京タワー 서울 Привет мир\n"),
    "long.txt": "\n\n".join(f"Section {i} of the long file. " + _EN * 3 for i in range(12)) + "\n",
    "rows.jsonl": "\n".join(json.dumps({"_id": f"r{i}", "title": t, "text": x}, ensure_ascii=False) for i, (t, x) in
                            enumerate([("Cache", _EN), ("评估", _ZH), ("Mixte", _FR + " " + _ZH)])) + "\n",
    "page.html": ("<html><head><title>Page 页面</title></head><body><h1>Intro</h1><p>Hello 世界, the cache is fast."
                  "</p><h2>更多</h2><p>中文段落，包括 English words 和数字 123。</p></body></html>"),
    "secret.txt": "The token is ghp_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef0123 and password: hunter2hunter2\n",
}


def write_corpus(folder: Path) -> Path:
    docs = folder / "docs"
    for name, text in FILES.items():
        path = docs / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return docs
