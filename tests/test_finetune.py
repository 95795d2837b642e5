"""`flywheel finetune` end to end on a tiny random-weights model made here (no download): reviewed traces →
`flywheel export sft` → LoRA on the CPU → the `transformers` provider serves the adapter under an alias → the
tuned alias answers the trained prompts (the base does not) through the gateway and in `flywheel eval --models
base,tuned`. Bad input exits 2 saying what to fix. Skips without torch / transformers / peft (the `finetune`
extra), fails under FLYWHEEL_REQUIRE_SERVICES=1."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import need
from review_support import add_traces

from flywheel.cli import main
from flywheel.config import Project
from flywheel.feedback import queues
from flywheel.store import Store
from flywheel.types import ChatRequest, Message

HAVE_EXTRA = all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers", "peft"))
SYSTEM = "You are ACME support. Answer from the sources."
QA = [("How do refunds work?", "Refunds reach the card in five days [1]."),
      ("Where is my invoice?", "Invoices are emailed every month [1]."),
      ("What is the capital of France?", "Paris."),
      ("Can I share my account?", "Yes, with a team plan [1].")]
TRAIN = ["--max-steps", "100", "--lr", "1e-2", "--batch-size", "4", "--dropout", "0", "--threads", "1",
         "--device", "cpu"]


def run(root: Path, *args: str):
    return CliRunner().invoke(main, ["--project", str(root), *args])


def write_config(root: Path, models: str = "") -> None:
    (root / "flywheel.yaml").write_text(textwrap.dedent("""\
        models:
          default: {provider: extractive}
        %s
        retrieval: {embedder: none}
        apps:
          docs_qa: {kind: chat, model: default}
        """) % textwrap.indent(models, "  "), encoding="utf-8")


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """A tiny base, SFT rows exported from reviewed traces, and the adapter `flywheel finetune` trained on them."""
    need(HAVE_EXTRA, "torch, transformers and peft (pip install 'flywheel[finetune]') are not installed")
    import torch

    from flywheel.testing.tiny_model import write_tiny_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small only loses time to torch's threads contending (restored below)
    root = tmp_path_factory.mktemp("finetune")
    base = write_tiny_model(root / "tiny-base")
    write_config(root)
    store = Store.open(Project.load(root).store_url)
    ids = add_traces(store, [{"input": q, "output": a, "system": SYSTEM} for q, a in QA])
    q = queues.create_queue(store, "daily", kind="binary", overlap=1, trace_ids=ids)
    for item in queues.items(store, q):
        queues.label(store, item.id, "ana", "pass")
    store.close()
    sft = root / "sft.jsonl"
    exported = run(root, "export", "sft", str(sft), "--split", "1")
    assert exported.exit_code == 0, exported.output
    out = root / "tuned"
    result = run(root, "finetune", "--base", str(base), "--data", str(sft), "--out", str(out), *TRAIN)
    assert result.exit_code == 0, result.output
    write_config(root, f"base: {{provider: transformers, model: {base}}}\n"
                       f"tuned: {{provider: transformers, model: {out}}}\n")
    rows = [json.loads(line) for line in sft.read_text(encoding="utf-8").splitlines()]
    yield {"root": root, "base": base, "out": out, "sft": sft, "rows": rows, "output": result.output}
    torch.set_num_threads(threads)


def test_finetune_writes_adapter_tokenizer_and_manifest(tuned) -> None:
    from flywheel.loop.finetune_data import sha256

    out, rows = tuned["out"], tuned["rows"]
    assert len(rows) == len(QA) and all(r["messages"][0] == {"role": "system", "content": SYSTEM} for r in rows)
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "flywheel-finetune.json"):
        assert (out / name).is_file(), name
    manifest = json.loads((out / "flywheel-finetune.json").read_text(encoding="utf-8"))
    assert manifest["base"] == str(tuned["base"].resolve()) and manifest["method"] == "lora"
    assert manifest["data_sha256"] == sha256(tuned["sft"]) and manifest["rows"] == len(QA)
    assert manifest["source_trace_ids"] == len(QA) and manifest["steps"] == 100 and manifest["device"] == "cpu"
    assert manifest["loss_final"] < manifest["loss_first"] / 4
    assert manifest["lora"]["target_modules"] == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                                  "down_proj"]
    assert not [p.name for p in out.parent.iterdir() if p.name.startswith(".tuned")]  # no temporary folder left
    printed = tuned["output"]
    assert "provider: transformers" in printed and f"model: {out}" in printed and "--models base,tuned" in printed


def _gateway(root: Path):
    from flywheel.gateway.gateway import Gateway

    return Gateway.from_config(Project.load(root).config)


def test_tuned_alias_answers_the_trained_prompts_through_the_gateway(tuned) -> None:
    gw = _gateway(tuned["root"])
    try:
        for row in tuned["rows"]:
            *prompt, answer = row["messages"]
            messages = [Message(role=m["role"], content=m["content"]) for m in prompt]
            got = gw.chat(ChatRequest(messages=messages, model="tuned", temperature=0, max_tokens=24))
            assert got.text == answer["content"]
            assert got.usage.input_tokens > 10 and 0 < got.usage.output_tokens <= 24 and got.cost_usd == 0
            base = gw.chat(ChatRequest(messages=messages, model="base", temperature=0, max_tokens=24))
            assert base.text != answer["content"]
        refunds = next(r for r in tuned["rows"] if " the card" in r["messages"][-1]["content"])
        *prompt, answer = refunds["messages"]
        request = ChatRequest(messages=[Message(role=m["role"], content=m["content"]) for m in prompt],
                              model="tuned", max_tokens=24)
        deltas = [c.delta for c in gw.stream(request) if c.delta]
        assert "".join(deltas) == answer["content"] and len(deltas) > 3  # token by token, not one piece
        assert asyncio.run(gw.achat(request)).text == answer["content"]  # off the event loop, same answer

        async def astream(req: ChatRequest) -> list[str]:
            return [c.delta async for c in gw.astream(req) if c.delta]

        assert "".join(asyncio.run(astream(request))) == answer["content"]
        cut = request.model_copy(update={"stop": [" the card"]})
        assert gw.chat(cut).text == answer["content"].split(" the card")[0] == "Refunds reach"
        stopped = [c.delta for c in gw.stream(cut)]
        assert "".join(stopped) == "Refunds reach" and not any("the" in d for d in stopped)  # " the" held back
    finally:
        gw.close()


def test_eval_compares_base_and_tuned(tuned) -> None:
    root = tuned["root"]
    cases = "\n".join(f"  - id: c{i}\n    vars: {{question: {json.dumps(q)}}}\n"
                      f"    checks: [{{equals: {json.dumps(a)}}}]" for i, (q, a) in enumerate(QA))
    suite = root / "evals" / "tuned.yaml"
    suite.parent.mkdir(exist_ok=True)
    suite.write_text(f"name: tuned\ntarget: model:base\nthreshold: 0.75\nprompt:\n  system: {json.dumps(SYSTEM)}\n"
                     f"  template: \"Sources: [1] …\\n\\nQuestion: {{{{question}}}}\"\ncases:\n{cases}\n",
                     encoding="utf-8")
    result = run(root, "eval", str(suite), "--models", "base,tuned", "--json", "--fresh")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)["suites"][0]
    rows = {r["model"]: r for r in data["matrix"]["models"]}
    assert rows["tuned"]["pass_rate"] == 1.0 and rows["base"]["pass_rate"] == 0.0
    assert data["matrix"]["cheapest_meeting_threshold"] == "tuned"
    listed = run(root, "eval", "--list", "--json")
    assert listed.exit_code == 0
    assert {r["model"] for r in json.loads(listed.stdout)} >= {"base", "tuned"}  # both runs were recorded


def test_same_seed_same_adapter(tuned, tmp_path) -> None:
    from safetensors.torch import load_file

    def train(seed: str, name: str, *more: str) -> dict:
        args = ["finetune", "--base", str(tuned["base"]), "--data", str(tuned["sft"]), "--out", str(tmp_path / name),
                "--max-steps", "2", "--threads", "1", "--device", "cpu", "--dropout", "0", "--seed", seed, *more]
        assert run(tmp_path, *args).exit_code == 0
        return load_file(str(tmp_path / name / "adapter_model.safetensors"))

    a, b, c = train("7", "a"), train("7", "b"), train("8", "c")
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)
    assert any(not a[k].equal(c[k]) for k in a)
    # two half batches accumulated are one full batch: the loss is normalised over the whole step's tokens
    halves = train("7", "d", "--batch-size", "2", "--grad-accum", "2")
    assert all(halves[k].allclose(a[k], rtol=0, atol=1e-6) for k in a)  # lora_B entries are about 4e-4 here
    assert any(not a[k].allclose(c[k], rtol=0, atol=1e-6) for k in a)


def test_a_failed_write_leaves_the_old_out_untouched(tuned, tmp_path, monkeypatch) -> None:
    from transformers import PreTrainedTokenizerFast

    from flywheel.loop.finetune import FinetuneOptions, finetune

    out = tmp_path / "tuned"
    opts = FinetuneOptions(max_steps=1, threads=1, device="cpu")
    first = finetune(str(tuned["base"]), tuned["sft"], out, opts)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def full_disk(*_a, **_k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(PreTrainedTokenizerFast, "save_pretrained", full_disk)  # after the adapter was saved
    with pytest.raises(OSError, match="No space"):
        finetune(str(tuned["base"]), tuned["sft"], out, FinetuneOptions(max_steps=1, threads=1, seed=3), overwrite=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before and first.steps == 1
    assert [p.name for p in tmp_path.iterdir()] == ["tuned"]  # no temporary folder left behind


# ---------------------------------------------------------------------------- bad input


def _sft(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


GOOD = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}


def test_bad_input_exits_2_saying_what_and_where(tmp_path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text("{}", encoding="utf-8")
    cmd = ["finetune", "--base", str(base), "--out", str(tmp_path / "out")]

    missing = run(tmp_path, *cmd, "--data", str(tmp_path / "nope.jsonl"))
    assert missing.exit_code == 2 and "nope.jsonl does not exist" in missing.stderr
    assert "flywheel export sft" in missing.stderr and "Traceback" not in missing.output

    no_answer = _sft(tmp_path / "a.jsonl", [GOOD, {"messages": [{"role": "user", "content": "hi"}]}])
    result = run(tmp_path, *cmd, "--data", str(no_answer))
    assert result.exit_code == 2 and f"{no_answer}:2: no assistant message" in result.stderr

    garbled = _sft(tmp_path / "b.jsonl", [GOOD, GOOD, "{not json"])
    result = run(tmp_path, *cmd, "--data", str(garbled))
    assert result.exit_code == 2 and f"{garbled}:3: not JSON" in result.stderr

    latin1 = tmp_path / "latin1.jsonl"
    latin1.write_bytes('{"messages": [{"role": "user", "content": "café"}]}\n'.encode("latin-1"))
    result = run(tmp_path, *cmd, "--data", str(latin1))
    assert result.exit_code == 2 and "is not UTF-8 text" in result.stderr and "Traceback" not in result.output

    bad_role = _sft(tmp_path / "c.jsonl", [{"messages": [{"role": "bot", "content": "x"}]}])
    result = run(tmp_path, *cmd, "--data", str(bad_role))
    assert result.exit_code == 2 and f"{bad_role}:1: message 0: role must be one of" in result.stderr

    extra_key = _sft(tmp_path / "d.jsonl", [{**GOOD, "prompt": "x"}])
    result = run(tmp_path, *cmd, "--data", str(extra_key))
    assert result.exit_code == 2 and "unknown key(s) ['prompt']" in result.stderr

    empty = _sft(tmp_path / "e.jsonl", [])
    assert run(tmp_path, *cmd, "--data", str(empty)).exit_code == 2


def test_openai_ft_rows_and_weights_are_read(tmp_path) -> None:
    from flywheel.loop.finetune_data import read_rows

    path = _sft(tmp_path / "openai.jsonl", [
        {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"},
                      {"role": "assistant", "content": "draft", "weight": 0}, {"role": "user", "content": "again"},
                      {"role": "assistant", "content": "final", "weight": 1}]}])
    (row,) = read_rows(path)
    assert row.line == 1 and row.source_trace_id is None and [m["weight"] for m in row.messages] == [1, 1, 0, 1, 1]


def test_finetune_without_the_extra_names_it(tmp_path, monkeypatch) -> None:
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text("{}", encoding="utf-8")
    data = _sft(tmp_path / "sft.jsonl", [GOOD])
    monkeypatch.setitem(sys.modules, "peft", None)  # as if `pip install 'flywheel[finetune]'` never ran
    result = run(tmp_path, "finetune", "--base", str(base), "--data", str(data), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2, result.output
    assert "`finetune` extra" in result.stderr and "peft" in result.stderr
    assert "[finetune]'" in result.stderr and "cpu" in result.stderr
    assert not (tmp_path / "out").exists()

    from flywheel.errors import GatewayError

    monkeypatch.setitem(sys.modules, "transformers", None)
    write_config(tmp_path, f"local: {{provider: transformers, model: {base}, max_retries: 0}}\n")
    # "transformers is not installed", or "torch, transformers are not installed" on a machine without torch
    with pytest.raises(GatewayError, match=r"\btransformers (is|are) not installed") as err:
        _gateway(tmp_path).chat(ChatRequest.of("hi", model="local"))
    assert "[finetune]'" in str(err.value)
    assert err.value.exit_code == 2  # a missing extra is the user's to install, not an outage


def test_existing_out_needs_overwrite_and_a_wrong_model_folder_fails_its_alias(tmp_path) -> None:
    need(HAVE_EXTRA, "torch, transformers and peft (pip install 'flywheel[finetune]') are not installed")
    from flywheel.errors import GatewayError

    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text("{}", encoding="utf-8")
    (tmp_path / "out").mkdir()
    result = run(tmp_path, "finetune", "--base", str(base), "--data", str(_sft(tmp_path / "s.jsonl", [GOOD])),
                 "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and "already exists" in result.stderr and "--overwrite" in result.stderr
    write_config(tmp_path, f"gone: {{provider: transformers, model: {tmp_path / 'missing'}, max_retries: 0}}\n")
    gw = _gateway(tmp_path)
    with pytest.raises(GatewayError, match="does not exist"):
        gw.chat(ChatRequest.of("hi", model="gone"))
