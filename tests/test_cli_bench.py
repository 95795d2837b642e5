"""`flywheel bench …` for a user without the shared data: which public data set is needed, its licence and
where it is published; `--data` and $FLYWHEEL_BENCH_DATA; missing peers reported as missing, not null."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from flywheel.bench import DATASETS, data_root, dataset_dir, missing_peer
from flywheel.cli import main
from flywheel.errors import UserError


@pytest.mark.parametrize("args,needed", [
    (["retrieval"], ["cmrc2018-dev"]),
    (["retrieval", "--calibrate"], ["cmrc2018-dev"]),
    (["guards", "--only", "pii"], ["presidio-synth"]),
    (["guards", "--only", "leak"], ["tensor-trust"]),
    (["cache", "--entries", "1000"], ["mrpc"]),
])
def test_missing_data_names_the_dataset_its_licence_and_where_it_is_published(tmp_path, args, needed):
    result = CliRunner().invoke(main, ["bench", *args, "--data", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for name in needed:
        d = DATASETS[name]
        assert f"{name}/: {d['name']}; licence {d['licence']}; published at {d['published']}" in result.stderr
    assert f"looked in {tmp_path}" in result.stderr and "pass --data DIR" in result.stderr


def test_data_root_order(tmp_path, monkeypatch):
    monkeypatch.setenv("FLYWHEEL_BENCH_DATA", str(tmp_path))
    assert data_root() == tmp_path
    assert data_root(tmp_path / "given") == tmp_path / "given"  # explicit wins, even when absent (reported)


def test_dataset_dir_accepts_the_data_folder_or_the_dataset_folder(tmp_path):
    mrpc = tmp_path / "mrpc"
    mrpc.mkdir()
    (mrpc / "msr_paraphrase_test.txt").write_text("header\n", encoding="utf-8")
    assert dataset_dir(tmp_path, "mrpc", "cache") == mrpc
    assert dataset_dir(mrpc, "mrpc", "cache") == mrpc
    with pytest.raises(UserError, match="cmrc2018-dev/: CMRC 2018"):
        dataset_dir(tmp_path, "cmrc2018-dev", "retrieval")
    with pytest.raises(UserError, match="looked in"):
        dataset_dir(None, "mrpc", "cache")


def test_a_missing_peer_is_reported_as_missing_with_how_to_install_it():
    assert missing_peer("gptcache", "pip install gptcache") == {
        "peer": "gptcache", "status": "missing", "install": "pip install gptcache"}


def test_retrieval_bench_runs_from_the_data_folder(tmp_path):
    """A tiny BEIR set under DATA/cmrc2018-dev is found through --data and measured."""
    import json

    beir = tmp_path / "cmrc2018-dev"
    (beir / "qrels").mkdir(parents=True)
    docs = {"d1": "The API keys rotate every month.", "d2": "Invoices are sent on the first day.",
            "d3": "Support answers within one business day."}
    (beir / "corpus.jsonl").write_text("".join(json.dumps({"_id": k, "title": "", "text": v}) + "\n"
                                               for k, v in docs.items()), encoding="utf-8")
    (beir / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "when do API keys rotate"}) + "\n",
                                        encoding="utf-8")
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["bench", "retrieval", "--data", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["bm25"]["ndcg@10"] == pytest.approx(1.0)
    peer = out["peer_bm25s"]
    assert peer is not None and (peer.get("status") == "missing" or "ndcg@10" in peer)


