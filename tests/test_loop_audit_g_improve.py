"""New-user audit of the "improve" stage (export → finetune → train-check) on English and Chinese rows:
bad `--device` / `--target-modules` are one line and exit 2 (no traceback), a JSONL saved with a UTF-8 BOM
(Windows editors) is read, what export / finetune / train-check write is readable as the umask says (not 0600 /
0700 from the temporary names), and a run killed with SIGKILL while writing leaves no `.OUT.*` folder behind
for good: the next run clears it. Fine-tune tests use the tiny random model for a step or two on the CPU."""

from __future__ import annotations

import importlib.util
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import need
from review_support import add_traces
from test_loop_audit_s12 import _project as _chat_project

from flywheel.cli import main
from flywheel.feedback import queues
from flywheel.store import Store

HAVE_EXTRA = all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers", "peft"))
ROWS = [("如何联系客服？", "请拨打客服热线联系我们。"), ("How do refunds work?", "Refunds reach the card in five days."),
        ("我的发票在哪里？", "发票每月通过电子邮件发送。"), ("Where is my invoice?", "Invoices are emailed monthly.")]
FAST = ["--max-steps", "1", "--threads", "1", "--device", "cpu", "--dropout", "0"]


def run(root: Path, *args: str):
    return CliRunner().invoke(main, ["--project", str(root), *args])


def sft_file(path: Path, bom: bool = False) -> Path:
    text = "".join(json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]},
                              ensure_ascii=False) + "\n" for q, a in ROWS)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    need(HAVE_EXTRA, "torch, transformers and peft (pip install 'flywheel[finetune]') are not installed")
    from flywheel.testing.tiny_model import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("audit-g") / "tiny-base")


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def modes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder.parent)): stat.S_IMODE(p.stat().st_mode)
            for p in [folder, *folder.rglob("*")]}


def test_finetune_unknown_device_is_one_line_and_exit_2_before_loading(tmp_path, base) -> None:
    data = sft_file(tmp_path / "sft.jsonl")
    result = run(tmp_path, "finetune", "--base", str(base), "--data", str(data), "--out", str(tmp_path / "t"),
                 "--max-steps", "1", "--device", "gpu")
    assert result.exit_code == 2, result.output
    assert "gpu" in result.output and "cuda" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "t").exists()


def test_finetune_unknown_target_module_names_the_modules_there_are(tmp_path, base) -> None:
    data = sft_file(tmp_path / "sft.jsonl")
    result = run(tmp_path, "finetune", "--base", str(base), "--data", str(data), "--out", str(tmp_path / "t"),
                 *FAST, "--target-modules", "q_proj,nope_proj")
    assert result.exit_code == 2, result.output
    assert "nope_proj" in result.output and "v_proj" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "t").exists() and not list(tmp_path.glob(".t.*"))


def test_finetune_reads_a_jsonl_saved_with_a_utf8_bom(tmp_path, base) -> None:
    data = sft_file(tmp_path / "sft.jsonl", bom=True)
    result = run(tmp_path, "finetune", "--base", str(base), "--data", str(data), "--out", str(tmp_path / "t"), *FAST)
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "t" / "flywheel-finetune.json").read_text(encoding="utf-8"))
    assert manifest["rows"] == len(ROWS)


def test_finetune_output_follows_the_umask(tmp_path, base, umask_022) -> None:
    data = sft_file(tmp_path / "sft.jsonl")
    out = tmp_path / "tuned"
    result = run(tmp_path, "finetune", "--base", str(base), "--data", str(data), "--out", str(out), *FAST)
    assert result.exit_code == 0, result.output
    got = modes(out)
    assert got["tuned"] == 0o755 and got["tuned/adapter_model.safetensors"] == 0o644, got
    assert all(m in (0o755, 0o644) for m in got.values()), got


def test_finetune_clears_what_a_killed_run_left_half_written(tmp_path, base) -> None:
    """A run killed (SIGKILL) while writing OUT leaves its temporary folder; the next run removes it."""
    data = sft_file(tmp_path / "sft.jsonl")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True).stdout.strip()
    from flywheel.loop.atomic import partial_prefix

    left = tmp_path / f"{partial_prefix(tmp_path / 'tuned', int(dead))}abc123"
    left.mkdir()
    (left / "adapter_model.safetensors").write_bytes(b"half")
    result = run(tmp_path, "finetune", "--base", str(base), "--data", str(data), "--out", str(tmp_path / "tuned"),
                 *FAST)
    assert result.exit_code == 0, result.output
    assert not left.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sft.jsonl", "tuned"]


def _reviewed_project(root: Path) -> None:
    store = Store.open(_chat_project(root).store_url)
    specs = [{"input": q, "output": a} for q, a in ROWS] + [{"input": f"无关的问题 {i}", "output": "不知道。"}
                                                           for i in range(8)]
    ids = add_traces(store, specs)
    q = queues.create_queue(store, "q", kind="binary", overlap=1, trace_ids=ids)
    for item in queues.items(store, q):
        queues.label(store, item.id, "ana", "fail" if "不知道" in (item.output or "") else "pass")
    store.close()


def test_export_and_train_check_outputs_follow_the_umask(tmp_path, umask_022) -> None:
    _reviewed_project(tmp_path)
    for args in (("export", "sft", str(tmp_path / "out" / "sft.jsonl")), ("export", "hf", str(tmp_path / "out" / "ds")),
                 ("train-check", "ok", "--queue", "q", "--heldout", "0.5")):
        result = run(tmp_path, *args)
        assert result.exit_code == 0, result.output
    got = {**modes(tmp_path / "out"), **modes(tmp_path / ".flywheel" / "checks" / "ok")}
    assert got["out/sft.jsonl"] == 0o644 and got["out/ds"] == 0o755 and got["ok"] == 0o755, got
    assert all(m in (0o755, 0o644) for m in got.values()), got
    rows = (tmp_path / "out" / "sft.jsonl").read_text(encoding="utf-8") + \
        (tmp_path / "out" / "sft.holdout.jsonl").read_text(encoding="utf-8")
    assert "请拨打客服热线联系我们。" in rows and "发票每月通过电子邮件发送。" in rows


def test_export_to_a_folder_or_an_unwritable_place_is_exit_2_and_leaves_nothing(tmp_path) -> None:
    _reviewed_project(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "afile").write_text("x", encoding="utf-8")
    before = sorted(p.name for p in tmp_path.iterdir())
    for out, said in ((tmp_path / "out", "is a folder"), (tmp_path / "afile" / "sft.jsonl", "cannot write")):
        result = run(tmp_path, "export", "sft", str(out))
        assert result.exit_code == 2, result.output
        assert said in result.output and "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before and not list((tmp_path / "out").iterdir())


def test_export_with_nothing_left_says_why_in_words(tmp_path) -> None:
    _reviewed_project(tmp_path)
    result = run(tmp_path, "export", "sft", str(tmp_path / "sft.jsonl"), "--app", "nope")
    assert result.exit_code == 2, result.output
    assert f"outside --since / --app: {len(ROWS) + 8}" in result.output and "{" not in result.output


def test_finetune_refuses_an_unwritable_out_before_training(tmp_path, base) -> None:
    data = sft_file(tmp_path / "sft.jsonl")
    (tmp_path / "afile").write_text("x", encoding="utf-8")
    result = run(tmp_path, "finetune", "--base", str(base), "--data", str(data), "--out",
                 str(tmp_path / "afile" / "tuned"), *FAST)
    assert result.exit_code == 2, result.output
    assert "cannot write" in result.output and "step 1" not in result.output and "Traceback" not in result.output


def test_export_eval_with_an_unknown_target_app_names_the_suite_not_a_temporary_file(tmp_path) -> None:
    _reviewed_project(tmp_path)
    out = tmp_path / "evals" / "from-review.yaml"
    result = run(tmp_path, "export", "eval", str(out), "--target", "app:nope")
    assert result.exit_code == 2, result.output
    assert "unknown app 'nope'" in result.output and str(out) in result.output, result.output
    assert ".from-review." not in result.output and not list((tmp_path / "evals").iterdir())


def test_finetune_on_a_dpo_export_says_to_export_sft(tmp_path) -> None:
    """Checked before torch is imported: no model needed."""
    data = tmp_path / "dpo.jsonl"
    data.write_text(json.dumps({"prompt": [{"role": "user", "content": "怎么修改密码？"}],
                                "chosen": [{"role": "assistant", "content": "在设置页面修改。"}],
                                "rejected": [{"role": "assistant", "content": "不知道。"}]}, ensure_ascii=False)
                    + "\n", encoding="utf-8")
    result = run(tmp_path, "finetune", "--base", str(tmp_path / "none"), "--data", str(data), "--out",
                 str(tmp_path / "t"))
    assert result.exit_code == 2, result.output
    assert f"{data}:1" in result.output and "DPO" in result.output and "export sft" in result.output


def test_export_clears_what_a_killed_export_left(tmp_path) -> None:
    from flywheel.loop.atomic import partial_prefix

    _reviewed_project(tmp_path)
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout)
    out = tmp_path / "out" / "sft[1].jsonl"
    out.parent.mkdir()
    left = out.parent / f"{partial_prefix(out, dead)}x1y2"
    left.write_text('{"messages": [', encoding="utf-8")
    result = run(tmp_path, "export", "sft", str(out), "--split", "1")
    assert result.exit_code == 0, result.output
    assert not left.exists() and not [p for p in out.parent.iterdir() if ".partial-" in p.name]
