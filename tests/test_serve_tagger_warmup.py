"""`flywheel serve` with the semantic cache on loads jieba's part-of-speech tagger (which the cache's contrast
rules use on Chinese questions) in the background at start, so the first Chinese lookup does not pay for it;
with the semantic cache off it loads nothing. Each server runs in a fresh Python process, so what earlier tests
imported cannot stand in for the warm-up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = r"""
import json, sys
sys.path.insert(0, sys.argv[2])
from server_support import serve_project
yaml_text = sys.argv[4] + '''
retrieval: {embedder: none}
server: {online_evaluators: false, embed_worker: false, batch_worker: false}
''' + sys.argv[3]
server = serve_project(__import__("pathlib").Path(sys.argv[1]), yaml_text)
warmup = getattr(server.app.state, "warmup", None)
finished = warmup.done.wait(120) if warmup is not None else None  # a readiness wait, not a timing assertion
print(json.dumps({"warmup": warmup is not None, "finished": finished, "tagger": "jieba.posseg" in sys.modules,
                  "openai": "openai" in sys.modules}))
server.stop()
"""


OPENAI_ALIAS = """models:
  gpt: {provider: openai_compat, base_url: "http://127.0.0.1:9/v1", model: fake-model, max_retries: 0}
"""


def _serve(tmp_path: Path, cache_yaml: str, models: str = OPENAI_ALIAS) -> dict:
    tests = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tests.parent / "src"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path), str(tests), cache_yaml, models],
                          env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_serve_loads_the_tagger_in_the_background_when_the_semantic_cache_is_on(tmp_path):
    got = _serve(tmp_path, "cache: {exact: true, semantic: {}}\n")
    assert got == {"warmup": True, "finished": True, "tagger": True, "openai": True}


@pytest.mark.parametrize("cache_yaml", ["cache: {exact: true}\n", "cache: {exact: false}\n"])
def test_serve_loads_no_tagger_without_the_semantic_cache(tmp_path, cache_yaml):
    got = _serve(tmp_path, cache_yaml)
    assert got["tagger"] is False
    assert got["warmup"] is True and got["finished"] is True and got["openai"] is True  # the alias's SDK, loaded


def test_serve_imports_no_sdk_no_alias_needs(tmp_path):
    got = _serve(tmp_path, "cache: {exact: false}\n", models="models: {ex: {provider: extractive}}\n")
    assert got["warmup"] is False and got["openai"] is False
