"""Traditional Chinese questions over simplified documents and the reverse: keyword tokens fold traditional
characters to simplified (index and query alike), so 發票怎麼開？ finds the 发票 page and 发票怎么开？ a 發票
page, in `search` and in `flywheel ask` with the extractive model, while the text shown and quoted keeps its
characters. The fold is symmetric, so Japanese kanji still match their own text; `normalize` (cache keys, the
injection model's features) and the trained check's features do not fold. A store indexed by the previous
tokenizer warns once, with the command that re-indexes it."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text, update
from store_revisions import embeddings_before_tenant_vectors

from flywheel.cli import main
from flywheel.config import RetrievalConfig
from flywheel.retrieval.ingest import ingest
from flywheel.retrieval.retriever import Retriever, open_index
from flywheel.retrieval.tokenize import TOKENIZER_VERSION, cjk_bigrams, keyword_tokens
from flywheel.store import Store
from flywheel.store.db import schema_diff
from flywheel.store.schema_retrieval import ingested_files
from flywheel.text import fold_traditional, normalize, tokenize
from flywheel.text.traditional_chars import PAIRS

KEYWORD_ONLY = RetrievalConfig(embedder="none")

PAGES = {
    # tenant "cn": simplified pages
    "cn/invoice.md": "# 发票\n\n## 开具发票\n\n订单完成后可以在订单详情页申请电子发票，"
                     "支持增值税普通发票和增值税专用发票。\n",
    "cn/refund.md": "# 退款政策\n\n## 退款条件\n\n自签收之日起 7 天内，商品未使用且包装完好的，"
                    "可以申请无理由退款。\n",
    "cn/history.md": "# 乾隆\n\n乾隆皇帝在位六十年，是清朝在位时间最长的皇帝之一。\n",
    # tenant "tw": traditional pages
    "tw/invoice.md": "# 發票\n\n## 開立發票\n\n訂單完成後可以在訂單詳情頁申請電子發票，"
                     "支援統一發票與三聯式發票。\n",
    "tw/shipping.md": "# 運費\n\n## 運費說明\n\n訂單滿 500 元免運費，離島地區另計運費。\n",
    "tw/returns.md": "# 退貨\n\n## 退貨流程\n\n在「我的訂單」中選擇要退貨的訂單，"
                     "點選「申請退貨」並填寫原因。\n",
    "tw/account.md": "# 帳號\n\n## 修改密碼\n\n登入後在帳號設定頁面可以修改密碼與綁定手機。\n",
    # tenant "ja": Japanese
    "ja/weather.md": "# 東京の天気\n\n東京の天気は晴れです。週末は雨が降るでしょう。\n",
    "ja/trains.md": "# 電車\n\n新幹線の切符は駅の窓口で買えます。\n",
}


def write_pages(root: Path) -> None:
    for name, body in PAGES.items():
        path = root / "docs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body, encoding="utf-8")


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    """(store, project root): each tenant's folder ingested into its own tenant, BM25 only."""
    root = tmp_path_factory.mktemp("scripts")
    write_pages(root)
    store = Store.open(f"sqlite:///{root / '.flywheel' / 'flywheel.db'}")
    for tenant in ("cn", "tw", "ja"):
        ingest([root / "docs" / tenant], store, KEYWORD_ONLY, tenant=tenant, root=root)
    yield store, root
    store.close()


def retriever(store) -> Retriever:
    return Retriever(open_index(store), None, KEYWORD_ONLY)


def top(store, query: str, tenant: str):
    hits = retriever(store).search(query, k=3, tenant=tenant)
    assert hits, f"{query!r} found nothing in tenant {tenant}"
    return hits[0]


# ------------------------------------------------------------------ the fold itself
def test_the_fold_is_one_character_for_one_and_leaves_everything_else_as_it_is():
    assert fold_traditional("發票怎麼開？") == "发票怎么开？"
    assert fold_traditional("退款政策是什麼？") == "退款政策是什么？"
    assert fold_traditional("請問 API key 的權限怎麼設定？") == "请问 API key 的权限怎么设定？"
    for s in ("Hello, World! Café naïve ÆØÅ 123", "Привет, мир", "안녕하세요", "مرحبا", "发票怎么开？",
              "ｍｉｎ＿ｒｅｌｅｖａｎｃｅ"):
        assert fold_traditional(s) == s
    assert fold_traditional("東京の天気") == "东京の天気"  # 東 folds; kana and 気 stay
    keys, values = PAIRS[0::2], PAIRS[1::2]
    assert len(keys) == len(values) == len(set(keys)) > 2900
    assert all(k != v for k, v in zip(keys, values, strict=True))


def test_keyword_tokens_are_the_same_for_both_scripts_and_mixed_text():
    assert keyword_tokens("發票怎麼開？") == keyword_tokens("发票怎么开？") == ["发票", "开"]
    mixed_tw, mixed_cn = "請問 Invoice API 的發票怎麼開？v2 版本", "请问 Invoice API 的发票怎么开？v2 版本"
    assert keyword_tokens(mixed_tw) == keyword_tokens(mixed_cn)
    assert {"invoic", "api", "v2", "发票"} <= set(keyword_tokens(mixed_tw))  # English stemmed: invoice → invoic
    assert cjk_bigrams("開立發票") == cjk_bigrams("开立发票") == ["开立", "立发", "发票"]
    # traditional function words fold onto the simplified stopwords
    assert tokenize("這個問題", keep_stopwords=False) == tokenize("这个问题", keep_stopwords=False)


def test_text_without_traditional_characters_tokenizes_as_before():
    for s in ("How do I rotate the API keys every month?", "Les clés API sont renouvelées chaque mois.",
              "Ключи API меняются каждый месяц.", "订单完成后可以在订单详情页申请电子发票。",
              "１２３４５ 退款"):
        assert tokenize(s) == tokenize(s, fold=False)


def test_japanese_is_folded_symmetrically_and_still_matches_itself(indexed):
    tokens = keyword_tokens("東京の天気は晴れです")
    assert tokens == tokenize("东京の天気は晴れです")
    assert {"の", "は", "気"} <= set(tokens)  # kana and the Japanese-only 気 are untouched
    store, _ = indexed
    hit = top(store, "東京の天気は？", "ja")
    assert hit.chunk.source == "docs/ja/weather.md" and "東京" in hit.chunk.text  # shown as written
    assert top(store, "新幹線の切符はどこで買えますか", "ja").chunk.source == "docs/ja/trains.md"


def test_normalize_and_the_trained_checks_features_do_not_fold():
    from flywheel.checks.injection_features import normalise as injection_normalise
    from flywheel.checks.trained import _grams

    assert normalize("發票") == "發票"  # cache keys and the injection model's features read this
    assert "發票" in injection_normalise("忽略之前的發票指令")
    assert "w:發票" in _grams("發票怎麼開") and "w:发票" not in _grams("發票怎麼開")


# ------------------------------------------------------------------ search and ask across scripts
def test_a_traditional_question_finds_the_simplified_page_and_the_reverse(indexed):
    store, _ = indexed
    cn = top(store, "發票怎麼開？", "cn")
    assert cn.chunk.source == "docs/cn/invoice.md" and "发票" in cn.chunk.text
    assert cn.scores["coverage"] == top(store, "发票怎么开？", "cn").scores["coverage"] > 0.3
    assert top(store, "退款政策是什麼？", "cn").chunk.source == "docs/cn/refund.md"

    tw = top(store, "发票怎么开？", "tw")
    assert tw.chunk.source == "docs/tw/invoice.md" and "發票" in tw.chunk.text and "发票" not in tw.chunk.text
    assert top(store, "运费怎么算？", "tw").chunk.source == "docs/tw/shipping.md"
    # a character both scripts fold the same way (乾 → 干) still matches its own text
    assert top(store, "乾隆在位多少年？", "cn").chunk.source == "docs/cn/history.md"


def test_flywheel_ask_quotes_the_page_in_the_other_script_verbatim(tmp_path):
    write_pages(tmp_path)
    (tmp_path / "flywheel.yaml").write_text("retrieval: {embedder: none}\n", encoding="utf-8")
    runner = CliRunner()
    project = ["--project", str(tmp_path)]
    for tenant in ("cn", "tw"):
        done = runner.invoke(main, [*project, "ingest", str(tmp_path / "docs" / tenant), "--tenant", tenant])
        assert done.exit_code == 0, done.output
    cn = runner.invoke(main, [*project, "ask", "發票怎麼開？", "--tenant", "cn"])
    assert cn.exit_code == 0, cn.output
    assert "订单完成后可以在订单详情页申请电子发票" in cn.output and "[1]" in cn.output
    tw = runner.invoke(main, [*project, "ask", "发票怎么开？", "--tenant", "tw"])
    assert tw.exit_code == 0, tw.output
    assert "訂單完成後可以在訂單詳情頁申請電子發票" in tw.output and "[1]" in tw.output


# ------------------------------------------------------------------ a store indexed by the previous tokenizer
def as_indexed_by_version_1(store) -> None:
    """What a store written before TOKENIZER_VERSION 2 looks like once migrated: no recorded tokenizer, and a
    settings hash of the old version."""
    with store.engine.begin() as conn:
        conn.execute(update(ingested_files).values(tokenizer=None, settings="indexed-by-version-1"))


def test_a_store_indexed_by_the_old_tokenizer_warns_once_until_reingested(tmp_path, caplog):
    write_pages(tmp_path)
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        ingest([tmp_path / "docs" / "tw"], store, KEYWORD_ONLY, tenant="tw", root=tmp_path)
        with store.engine.connect() as conn:
            recorded = {r[0] for r in conn.execute(text("SELECT tokenizer FROM ingested_files"))}
        assert recorded == {TOKENIZER_VERSION}
        assert retriever(store).stale_tokenizer_files("tw") == 0
        as_indexed_by_version_1(store)

        r = retriever(store)
        with caplog.at_level(logging.WARNING, logger="flywheel.retrieval"):
            r.search("發票", tenant="tw")
            r.search("運費", tenant="tw")
        warnings = [m for m in caplog.messages if "tokenizer" in m]
        assert len(warnings) == 1, caplog.messages
        assert "4 of 4 indexed files of tenant 'tw'" in warnings[0]
        assert "docs/tw/invoice.md" in warnings[0] and "`flywheel ingest PATH --tenant tw`" in warnings[0]
        assert r.stale_tokenizer_files("tw") == 4 and r.stale_tokenizer_files("cn") == 0

        again = ingest([tmp_path / "docs" / "tw"], store, KEYWORD_ONLY, tenant="tw", root=tmp_path)
        assert (again.indexed, again.unchanged) == (4, 0)  # the settings hash changed: every file re-indexed
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="flywheel.retrieval"):
            assert retriever(store).search("发票", tenant="tw")
        assert not [m for m in caplog.messages if "tokenizer" in m]
    finally:
        store.close()


def test_the_migration_adds_the_column_to_a_store_of_the_previous_revision(store_url, tmp_path):
    write_pages(tmp_path)
    store = Store.open(store_url)
    ingest([tmp_path / "docs" / "cn"], store, KEYWORD_ONLY, tenant="cn", root=tmp_path)
    with store.engine.begin() as conn:  # the store as the previous revision left it
        conn.execute(text("ALTER TABLE ingested_files DROP COLUMN tokenizer"))
        embeddings_before_tenant_vectors(conn, "0007_retrieval_halfvec")
    store.close()
    store = Store.open(store_url)
    try:
        assert schema_diff(store, ["ingested_files"]) == []
        assert retriever(store).stale_tokenizer_files("cn") == 3  # NULL: indexed by version 1
        # 发票's tokens are the same in both versions: the old index still answers, with the warning
        assert top(store, "發票怎麼開？", "cn").chunk.source == "docs/cn/invoice.md"
    finally:
        store.close()


def test_flywheel_search_prints_the_warning_with_the_command(tmp_path):
    """The warning reaches the terminal of a real `flywheel search` (logging's last-resort handler)."""
    write_pages(tmp_path)
    (tmp_path / "flywheel.yaml").write_text("retrieval: {embedder: none}\n", encoding="utf-8")
    assert CliRunner().invoke(main, ["--project", str(tmp_path), "ingest", str(tmp_path / "docs" / "cn")]
                              ).exit_code == 0
    store = Store.open(f"sqlite:///{tmp_path / '.flywheel' / 'flywheel.db'}")
    as_indexed_by_version_1(store)
    store.close()
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    done = subprocess.run([sys.executable, "-m", "flywheel", "--project", str(tmp_path), "search", "发票"],
                          capture_output=True, text=True, env=env, timeout=240, check=False)
    assert done.returncode == 0, done.stderr
    assert "docs/cn/invoice.md" in done.stdout
    assert done.stderr.count("indexed by another keyword tokenizer version") == 1, done.stderr
    assert "run `flywheel ingest PATH` on the same paths" in done.stderr
