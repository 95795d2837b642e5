"""`flywheel export`: reviewed traces → SFT / DPO / OpenAI fine-tuning / Hugging Face / eval data. Rows carry the
exact final prompt, corrections replace answers, pairwise verdicts give DPO pairs, PII is masked, near-duplicates
go, no input is on both sides of the split, and the datasheet says what is in the file."""

from __future__ import annotations

import json
import textwrap

import pytest
import yaml
from click.testing import CliRunner
from review_support import add_traces

import flywheel.cli.export  # noqa: F401 - registers `flywheel export` (until cli/__init__ lists it)
from flywheel import feedback
from flywheel.cli import main
from flywheel.config import Project
from flywheel.errors import UserError
from flywheel.feedback import queues
from flywheel.loop.export import validate_openai
from flywheel.loop.labelled import check_no_leak, split
from flywheel.store import Store

SYSTEM = "You are ACME support. Answer from the sources."
TOPICS = ["refunds", "passwords", "shipping", "invoices", "accounts", "pricing", "exports", "webhooks", "tokens",
          "backups", "regions", "teams"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    (root / "flywheel.yaml").write_text(textwrap.dedent("""\
        models:
          default: {provider: extractive}
        retrieval: {embedder: none}
        apps:
          docs_qa: {kind: chat, model: default}
        """), encoding="utf-8")
    project = Project.load(root)
    store = Store.open(project.store_url)
    specs = [{"input": f"How do {t} work in the billing console?", "output": f"{t.title()} work like this [1].",
              "system": SYSTEM} for t in TOPICS]
    specs[0]["input"] = "How do refunds work? Mail me at ann.lee@example.com"
    specs.append({"input": "how do refunds work?? mail me at ann.lee@example.com", "output": "Refunds: see [1].",
                  "system": SYSTEM})  # a near-duplicate of specs[0]
    ids = add_traces(store, specs)
    pair_ids = add_traces(store, [{"input": "Which regions host data?", "output": "EU and US [1].", "system": SYSTEM},
                                  {"input": "Which regions host data?", "output": "Somewhere.", "system": SYSTEM}])
    loose = add_traces(store, [{"input": "What is the SLA?", "output": "99%.", "system": SYSTEM}])[0]
    q = queues.create_queue(store, "daily", kind="binary", overlap=3, trace_ids=ids)
    item = {it.trace_id: it.id for it in queues.items(store, q)}
    for tid in ids[:10] + [ids[-1]]:
        for who in ("ana", "bo", "cy"):
            queues.label(store, item[tid], who, "pass")
    for who in ("ana", "bo"):  # corrected
        queues.label(store, item[ids[10]], who, "fail", reason="vague", correction="Exports run nightly at 02:00 UTC.")
    queues.label(store, item[ids[10]], "cy", "fail")
    queues.label(store, item[ids[11]], "ana", "pass")  # 2 of 3: agreement 0.67
    queues.label(store, item[ids[11]], "bo", "pass")
    queues.label(store, item[ids[11]], "cy", "fail")
    pq = queues.create_queue(store, "ab", kind="pairwise", overlap=1, pairs=[tuple(pair_ids)])
    said = dict(zip(pair_ids, ["EU and US [1].", "Somewhere."], strict=True))
    shown = queues.label(store, queues.items(store, pq)[0].id, "ana", "a")  # what ana saw as A
    if shown.verdict == "b":  # ana's A was the item's canonical B
        pair_ids = pair_ids[::-1]
    feedback.record(store, loose, "correction", "The SLA is 99.9% monthly.")
    store.close()
    return {"project": project, "ids": ids, "pair": pair_ids, "said": said, "loose": loose}


def _run(world, *args: str):
    return CliRunner().invoke(main, ["--project", str(world["project"].root), *args])


def _rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_sft_rows_prompt_corrections_pii_dedup_split_and_datasheet(world, tmp_path):
    out = tmp_path / "sft.jsonl"
    res = _run(world, "export", "sft", str(out), "--split", "0.7", "--json")
    assert res.exit_code == 0, res.output
    train, holdout = _rows(out), _rows(tmp_path / "sft.holdout.jsonl")
    rows = train + holdout
    by_id = {r["source_trace_id"]: r for r in rows}
    ids = world["ids"]
    assert ids[10] in by_id and by_id[ids[10]]["messages"][-1] == {
        "role": "assistant", "content": "Exports run nightly at 02:00 UTC."}  # the correction replaces the answer
    assert by_id[world["loose"]]["messages"][-1]["content"] == "The SLA is 99.9% monthly."  # a correction event
    first = by_id[ids[0]]["messages"]
    assert first[0] == {"role": "system", "content": SYSTEM}  # the exact final prompt, as sent
    assert first[1]["content"].startswith("Sources: [1]") and first[-1]["role"] == "assistant"
    text = out.read_text(encoding="utf-8") + (tmp_path / "sft.holdout.jsonl").read_text(encoding="utf-8")
    assert "ann.lee@example.com" not in text and "<EMAIL_ADDRESS_1>" in text
    assert ids[-1] not in by_id  # the near-duplicate of ids[0] is gone
    assert all(r["source_trace_id"] for r in rows) and holdout
    users = lambda part: {r["messages"][-2]["content"] for r in part}
    assert not users(train) & users(holdout)
    sheet = json.loads((tmp_path / "sft.datasheet.json").read_text(encoding="utf-8"))
    assert sheet["rows"] == {"train": len(train), "holdout": len(holdout)}
    assert sheet["dropped"]["near-duplicates"] == 1 and sheet["labels"]["n_labels"] >= 30
    assert sheet["date_range"]["first"] and "daily" in sheet["sources"]["queues"]
    md = (tmp_path / "sft.datasheet.md").read_text(encoding="utf-8")
    assert "Label agreement" in md and "Fleiss" in md
    try:
        import datasets
    except ImportError:  # the JSONL structure was checked above
        return
    else:
        ds = datasets.load_dataset("json", data_files={"train": str(out), "holdout": str(tmp_path / "sft.holdout.jsonl")})
        assert ds["train"].num_rows == len(train) and "source_trace_id" in ds["train"].column_names


def test_min_agreement_and_verdict_filters(world, tmp_path):
    res = _run(world, "export", "sft", str(tmp_path / "a.jsonl"), "--split", "1", "--queue", "daily",
               "--min-agreement", "0.8")
    assert res.exit_code == 0, res.output
    kept = {r["source_trace_id"] for r in _rows(tmp_path / "a.jsonl")}
    assert world["ids"][11] not in kept and world["ids"][0] in kept and world["loose"] not in kept
    assert not (tmp_path / "a.holdout.jsonl").exists()
    res = _run(world, "export", "sft", str(tmp_path / "b.jsonl"), "--split", "1", "--queue", "daily",
               "--verdict", "fail")
    assert res.exit_code == 0, res.output
    assert [r["source_trace_id"] for r in _rows(tmp_path / "b.jsonl")] == [world["ids"][10]]


def test_dpo_from_pairwise_verdicts_and_corrections(world, tmp_path):
    res = _run(world, "export", "dpo", str(tmp_path / "dpo.jsonl"), "--split", "1")
    assert res.exit_code == 0, res.output
    rows = {r["source_trace_id"]: r for r in _rows(tmp_path / "dpo.jsonl")}
    winner, loser = world["pair"]  # the trace ana preferred first
    pair = rows[winner]
    assert pair["chosen"] == [{"role": "assistant", "content": world["said"][winner]}]
    assert pair["rejected"] == [{"role": "assistant", "content": world["said"][loser]}]
    assert pair["rejected_trace_id"] == loser and pair["chosen"][0]["role"] == "assistant"
    assert pair["prompt"][0]["role"] == "system" and pair["prompt"][-1]["role"] == "user"
    fixed = rows[world["ids"][10]]
    assert fixed["chosen"][0]["content"] == "Exports run nightly at 02:00 UTC."
    assert fixed["rejected"][0]["content"] == "Regions work like this [1]."


def test_openai_ft_follows_the_format_rules(world, tmp_path):
    res = _run(world, "export", "openai-ft", str(tmp_path / "ft.jsonl"), "--split", "0.8")
    assert res.exit_code == 0, res.output
    rows = _rows(tmp_path / "ft.jsonl") + _rows(tmp_path / "ft.holdout.jsonl")
    assert validate_openai(rows) == [] and all(set(r) == {"messages"} for r in rows)
    ids = _rows(tmp_path / "ft.sources.jsonl")
    assert len(ids) == len(_rows(tmp_path / "ft.jsonl")) and all(i["source_trace_id"] for i in ids)
    bad = [{"messages": [{"role": "user", "content": "hi"}]},
           {"messages": [{"role": "robot", "content": "hi"}, {"role": "assistant", "content": "x"}]},
           {"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "x"}]},
           {"messages": [{"role": "assistant", "content": "x"}, {"role": "user", "content": "y"}]},
           {"messages": [{"role": "user", "content": "y", "extra": 1}, {"role": "assistant", "content": "x"}]},
           {"prompt": "no messages"}]
    problems = validate_openai(bad)
    for n, words in enumerate(["no assistant", "role must be", "empty content", "last message", "unknown key",
                               "no `messages`"], 1):
        assert any(p.startswith(f"line {n}") and words in p for p in problems), (n, problems)


def test_hf_folder_loads_with_datasets(world, tmp_path):
    res = _run(world, "export", "hf", str(tmp_path / "ds"), "--split", "0.75")
    assert res.exit_code == 0, res.output
    folder = tmp_path / "ds"
    assert {p.name for p in folder.iterdir()} == {"train.jsonl", "holdout.jsonl", "README.md", "datasheet.md",
                                                  "datasheet.json"}
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert yaml.safe_load(card.split("---")[1])["configs"][0]["data_files"][0]["path"] == "train.jsonl"
    datasets = pytest.importorskip("datasets", reason="datasets not installed (dev extra)")
    ds = datasets.load_dataset("json", data_files={"train": str(folder / "train.jsonl"),
                                                   "holdout": str(folder / "holdout.jsonl")})
    assert ds["train"].num_rows + ds["holdout"].num_rows == len(_rows(folder / "train.jsonl")) + len(
        _rows(folder / "holdout.jsonl"))
    assert ds["train"][0]["messages"][-1]["role"] == "assistant"


def test_eval_export_writes_a_loadable_suite(world, tmp_path):
    res = _run(world, "export", "eval", str(tmp_path / "evals" / "kept.yaml"), "--queue", "daily",
               "--target", "app:docs_qa")
    assert res.exit_code == 0, res.output
    data = yaml.safe_load((tmp_path / "evals" / "kept.yaml").read_text(encoding="utf-8"))
    assert data["target"] == "app:docs_qa" and len(data["cases"]) >= 9
    assert all(c["metadata"]["source_trace_id"] for c in data["cases"])
    assert (tmp_path / "evals" / "kept.datasheet.md").exists()


def test_leaking_split_refused_and_split_groups_inputs():
    with pytest.raises(UserError, match="leak"):
        check_no_leak(["How do refunds work?"], ["how do refunds work"])
    keys = ["a", "a", "b", "c", "c", "d"]
    train, holdout = split(keys, 0.5, seed=3)
    assert not train & holdout and train | holdout == set(keys)
    with pytest.raises(UserError, match="one distinct input"):
        split(["a", "a"], 0.9, seed=0)


def test_no_labelled_data_says_what_to_label_first(tmp_path):
    res = CliRunner().invoke(main, ["--project", str(tmp_path), "export", "sft", str(tmp_path / "x.jsonl")])
    assert res.exit_code == 2
    assert "flywheel review sample" in res.output and not (tmp_path / "x.jsonl").exists()


def test_since_and_app_filters_leave_nothing_and_write_nothing(world, tmp_path):
    res = _run(world, "export", "sft", str(tmp_path / "late.jsonl"), "--since", "2100-01-01")
    assert res.exit_code == 2 and "outside --since / --app" in res.output
    res = _run(world, "export", "sft", str(tmp_path / "other.jsonl"), "--app", "nope")
    assert res.exit_code == 2 and not list(tmp_path.iterdir())


# ---------------------------------------------------------------------------- personal data per field

PII_INPUTS = ["My invoice mail to ann.lee@example.com bounced; where do I send it?",
              "Who is the contact for refunds? I am bo.ray@example.org",
              "Why does my API call fail? My key is sk-proj-AbCdEfGhIjKlMnOpQrStUv12"]
PII_FIXES = ["Send it to billing@acme-corp.com, not ann.lee@example.com.",  # a new address: the point of the fix
             "Write to refunds@acme-corp.com; bo.ray@example.org gets a copy.",
             "That key is revoked; mail ops@acme-corp.com."]


@pytest.fixture(scope="module")
def pii_world(tmp_path_factory):
    """Three traces labelled fail with corrections that hold e-mail addresses; one input holds a secret (written
    straight to the store here: flywheel's own tracing scrubs secrets before they are stored)."""
    root = tmp_path_factory.mktemp("export-pii")
    (root / "flywheel.yaml").write_text("models:\n  default: {provider: extractive}\nretrieval: {embedder: none}\n"
                                        "apps:\n  docs_qa: {kind: chat, model: default}\n", encoding="utf-8")
    project = Project.load(root)
    store = Store.open(project.store_url)
    ids = add_traces(store, [{"input": q, "output": "Please contact support.", "system": SYSTEM} for q in PII_INPUTS])
    q = queues.create_queue(store, "pii", kind="binary", overlap=1, trace_ids=ids)
    for item, fix in zip(queues.items(store, q), [PII_FIXES[ids.index(i.trace_id)] for i in queues.items(store, q)],
                         strict=True):
        queues.label(store, item.id, "ana", "fail", reason="wrong contact", correction=fix)
    store.close()
    return {"project": project, "ids": ids}


def _pii_rows(pii_world, tmp_path, fmt: str, *args: str):
    out = tmp_path / f"{fmt}.jsonl"
    res = _run(pii_world, "export", fmt, str(out), "--queue", "pii", "--split", "1", *args)
    assert res.exit_code == 0, res.output
    rows = {r["source_trace_id"]: r for r in _rows(out)}
    return res, [rows[t] for t in pii_world["ids"]], json.loads((tmp_path / f"{fmt}.datasheet.json").read_text("utf-8"))


def test_sft_same_value_same_placeholder_and_the_reference_only_warning(pii_world, tmp_path):
    res, rows, sheet = _pii_rows(pii_world, tmp_path, "sft")
    user, answer = rows[0]["messages"][-2]["content"], rows[0]["messages"][-1]["content"]
    assert "ann.lee@example.com" not in user and "<EMAIL_ADDRESS_1>" in user
    # the input's address is <EMAIL_ADDRESS_1> in the answer too; the new one gets the next number
    assert answer == "Send it to <EMAIL_ADDRESS_2>, not <EMAIL_ADDRESS_1>."
    assert rows[1]["messages"][-1]["content"] == "Write to <EMAIL_ADDRESS_2>; <EMAIL_ADDRESS_1> gets a copy."
    text = json.dumps(rows)
    assert "@acme-corp.com" not in text and "sk-proj-" not in text and "<SECRET>" in rows[2]["messages"][-2]["content"]
    warning = ("3 corrections contain personal data only in the reference; masked; pass --keep-pii reference to "
               "keep them")
    assert res.stderr.count(warning) == 1  # once per run, with the count
    pii = sheet["pii"]
    assert pii["kept_fields"] == [] and pii["corrections_with_reference_only_pii"] == {"masked": 3, "kept": 0}
    # each row's prompt holds its input's address (rows 1, 2) or key (row 3) once; answers: 2 + 2 + 1 addresses
    assert pii["masked"]["prompt"] == {"EMAIL_ADDRESS": 2, "SECRET": 1}
    assert pii["masked"]["answer"] == {"EMAIL_ADDRESS": 5}
    assert warning in sheet["warnings"]
    md = (tmp_path / "sft.datasheet.md").read_text(encoding="utf-8")
    assert "## Personal data" in md and "| prompt | EMAIL_ADDRESS (2), SECRET (1) | — |" in md


def test_keep_pii_reference_keeps_the_corrected_address_and_masks_the_inputs(pii_world, tmp_path):
    res, rows, sheet = _pii_rows(pii_world, tmp_path, "sft", "--keep-pii", "reference")
    user, answer = rows[0]["messages"][-2]["content"], rows[0]["messages"][-1]["content"]
    assert "ann.lee@example.com" not in user and "<EMAIL_ADDRESS_1>" in user
    # the new address is the fact the correction teaches: kept; the input's address stays masked everywhere
    assert answer == "Send it to billing@acme-corp.com, not <EMAIL_ADDRESS_1>."
    assert "sk-proj-" not in json.dumps(rows)
    assert "warning" not in res.stderr
    assert sheet["pii"]["kept_fields"] == ["answer"] and sheet["pii"]["kept"] == {"answer": {"EMAIL_ADDRESS": 3}}
    assert sheet["pii"]["corrections_with_reference_only_pii"] == {"masked": 0, "kept": 3}
    assert sheet["options"]["keep_pii"] == ["answer"]


def test_dpo_keep_all_still_masks_secrets(pii_world, tmp_path):
    _, rows, sheet = _pii_rows(pii_world, tmp_path, "dpo", "--keep-pii", "all")
    assert "ann.lee@example.com" in rows[0]["prompt"][-1]["content"]
    assert rows[0]["chosen"][0]["content"] == PII_FIXES[0]
    prompt = rows[2]["prompt"][-1]["content"]
    assert "sk-proj-" not in prompt and "<SECRET>" in prompt and "ops@acme-corp.com" in rows[2]["chosen"][0]["content"]
    assert sheet["pii"]["kept_fields"] == ["chosen", "prompt", "rejected"]
    assert sheet["pii"]["masked"] == {"prompt": {"SECRET": 1}}


@pytest.mark.parametrize(("fmt", "bad", "valid"), [
    ("sft", "refrence", "valid fields: prompt, answer, reference, all, none"),
    ("dpo", "answer", "valid fields: prompt, chosen, rejected, reference, all, none"),
    ("eval", "messages", "valid fields: input, context, served_answer, reference, reason, all, none"),
    ("sft", "all,answer", "valid fields: prompt, answer"),
])
def test_bad_keep_pii_field_exits_2_listing_the_valid_ones(pii_world, tmp_path, fmt, bad, valid):
    out = tmp_path / "rows.jsonl"
    res = _run(pii_world, "export", fmt, str(out), "--queue", "pii", "--keep-pii", bad)
    assert res.exit_code == 2 and valid in res.output and "Traceback" not in res.output
    assert list(tmp_path.iterdir()) == []


def test_config_default_and_eval_export_record_pii(pii_world, tmp_path):
    project = pii_world["project"]
    config = project.root / "flywheel.yaml"
    original = config.read_text(encoding="utf-8")
    config.write_text(original + "review: {keep_pii: [reference]}\n", encoding="utf-8")
    try:
        res = _run(pii_world, "export", "eval", str(tmp_path / "cases.yaml"), "--verdict", "fail", "--queue", "pii",
                   "--json")
        assert res.exit_code == 0, res.output
        cases = {c["metadata"]["source_trace_id"]: c for c in yaml.safe_load((tmp_path / "cases.yaml").read_text())
                 ["cases"]}
        first = cases[pii_world["ids"][0]]
        assert first["reference"] == "Send it to billing@acme-corp.com, not <EMAIL_ADDRESS_1>."
        assert "<EMAIL_ADDRESS_1>" in first["vars"]["question"]
        sheet = json.loads((tmp_path / "cases.datasheet.json").read_text(encoding="utf-8"))
        assert sheet["pii"]["kept_fields"] == ["reference"]
        assert sheet["pii"]["masked"]["input"] == {"EMAIL_ADDRESS": 2, "SECRET": 1}
        # the flag wins over the config
        res = _run(pii_world, "export", "sft", str(tmp_path / "s.jsonl"), "--queue", "pii", "--split", "1",
                   "--keep-pii", "none")
        assert res.exit_code == 0 and "3 corrections contain personal data only in the reference" in res.stderr
        config.write_text(original + "review: {keep_pii: [answr]}\n", encoding="utf-8")
        res = _run(pii_world, "export", "sft", str(tmp_path / "t.jsonl"), "--queue", "pii")
        assert res.exit_code == 2 and "review.keep_pii" in res.output and "answr" in res.output
    finally:
        config.write_text(original, encoding="utf-8")
