"""Bad input anywhere in the CLI is one clear error: exit 2, the file:line (or option) that is wrong, no
traceback. One row per mistake: flywheel.yaml (syntax, tabs, duplicate and unknown keys, wrong types in every
section, missing env vars, non-UTF-8 / binary / folder / huge files), command-line values, eval case files
(JSONL, CSV), promptfoo configs, workflow files and prompt files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from flywheel.cli import main

GOOD = "models:\n  default: {provider: extractive}\n"
SUITE_HEAD = "target: model:default\nprompt: 'Q: {{q}}'\ncases: %s\n"
WF_OK = "name: wf\ninputs: [x]\nsteps:\n  - id: a\n    prompt: 'Say {{inputs.x}}'\n"

# (name, files to write, arguments, what the output must hold)
CASES: list[tuple[str, dict, list[str], list[str]]] = [
    # ---- flywheel.yaml: syntax and file problems
    ("yaml syntax", {"flywheel.yaml": "models:\n  default: {provider: extractive\n"}, ["prompts", "list"], ["flywheel.yaml:"]),
    ("yaml tab", {"flywheel.yaml": "models:\n\tdefault: {provider: extractive}\n"}, ["prompts", "list"], ["flywheel.yaml:2"]),
    ("yaml dup key", {"flywheel.yaml": "models:\n  a: {provider: extractive}\n  a: {provider: extractive}\n"}, ["prompts", "list"], ["flywheel.yaml:3", "duplicate"]),
    ("unknown top key", {"flywheel.yaml": "modles:\n  a: {provider: extractive}\n"}, ["prompts", "list"], ["flywheel.yaml:1", "did you mean `models`"]),
    ("non-utf8", {"flywheel.yaml": b"models:\n  default: {provider: extractive}\n# \xff\xfe\n"}, ["prompts", "list"], ["flywheel.yaml"]),
    ("binary", {"flywheel.yaml": bytes(range(256)) * 4}, ["prompts", "list"], ["flywheel.yaml"]),
    ("directory", {"flywheel.yaml/": None}, ["prompts", "list"], ["flywheel.yaml"]),
    ("not a mapping", {"flywheel.yaml": "- a\n- b\n"}, ["prompts", "list"], ["flywheel.yaml:1"]),
    ("huge line", {"flywheel.yaml": "models:\n  default: {provider: extractive, model: " + "x" * 2_000_000 + "\n"}, ["prompts", "list"], ["flywheel.yaml:"]),
    ("env missing", {"flywheel.yaml": "models:\n  default: {provider: openai_compat, model: m, base_url: '${NOPE_URL_H7}'}\n"}, ["prompts", "list"], ["flywheel.yaml:2", "NOPE_URL_H7"]),
    # ---- flywheel.yaml: wrong types per section
    ("models list", {"flywheel.yaml": "models: [a, b]\n"}, ["prompts", "list"], ["flywheel.yaml:1"]),
    ("models provider typo", {"flywheel.yaml": "models:\n  s: {provider: opena_compat, model: x}\n"}, ["prompts", "list"], ["flywheel.yaml:2", "openai_compat"]),
    ("models field typo", {"flywheel.yaml": "models:\n  s: {provider: openai_compat, model: x, max_retires: 1}\n"}, ["prompts", "list"], ["flywheel.yaml:2", "max_retries"]),
    ("models retries type", {"flywheel.yaml": "models:\n  s: {provider: openai_compat, model: x, max_retries: many}\n"}, ["prompts", "list"], ["flywheel.yaml:2"]),
    ("models price str", {"flywheel.yaml": "models:\n  s:\n    provider: openai_compat\n    model: x\n    price: cheap\n"}, ["prompts", "list"], ["flywheel.yaml:5"]),
    ("models fallback unknown", {"flywheel.yaml": "models:\n  s: {provider: openai_compat, model: x, fallbacks: [strnog]}\n"}, ["prompts", "list"], ["flywheel.yaml:2", "strnog"]),
    ("models alias null", {"flywheel.yaml": "models:\n  s:\n"}, ["prompts", "list"], ["flywheel.yaml:2"]),
    ("retrieval neg", {"flywheel.yaml": "retrieval: {chunk_tokens: -5}\n"}, ["prompts", "list"], ["flywheel.yaml:1", "chunk_tokens"]),
    ("retrieval k str", {"flywheel.yaml": "retrieval:\n  k: five\n"}, ["prompts", "list"], ["flywheel.yaml:2"]),
    ("retrieval fusion typo", {"flywheel.yaml": "retrieval:\n  fusion: rff\n"}, ["prompts", "list"], ["flywheel.yaml:2", "rrf"]),
    ("retrieval list", {"flywheel.yaml": "retrieval: [1]\n"}, ["prompts", "list"], ["flywheel.yaml:1"]),
    ("retrieval overlap>chunk", {"flywheel.yaml": "retrieval: {chunk_tokens: 32, overlap: 64}\n"}, ["prompts", "list"], ["flywheel.yaml:1"]),
    ("apps model unknown", {"flywheel.yaml": GOOD + "apps:\n  docs_qa: {model: defualt}\n"}, ["prompts", "list"], ["flywheel.yaml:4", "default"]),
    ("apps list", {"flywheel.yaml": GOOD + "apps: [docs_qa]\n"}, ["prompts", "list"], ["flywheel.yaml:3"]),
    ("apps kind typo", {"flywheel.yaml": GOOD + "apps:\n  a: {kind: docs_qq}\n"}, ["prompts", "list"], ["flywheel.yaml:4", "docs_qa"]),
    ("apps option typo", {"flywheel.yaml": GOOD + "apps:\n  a:\n    kind: docs_qa\n    options: {kk: 3}\n"}, ["prompts", "list"], ["flywheel.yaml:6"]),
    ("guards check typo", {"flywheel.yaml": GOOD + "apps:\n  a:\n    guards:\n      input: [{check: injecton}]\n"}, ["ask", "--app", "a", "q"], ["flywheel.yaml:6", "injection"]),
    ("guards on_fail typo", {"flywheel.yaml": GOOD + "apps:\n  a:\n    guards:\n      input: [{check: pii, on_fail: blok}]\n"}, ["prompts", "list"], ["flywheel.yaml:6", "block"]),
    ("guards not list", {"flywheel.yaml": GOOD + "apps:\n  a:\n    guards:\n      input: pii\n"}, ["prompts", "list"], ["flywheel.yaml:6"]),
    ("guards max_reasks str", {"flywheel.yaml": GOOD + "apps:\n  a:\n    guards:\n      output: [{check: pii, on_fail: reask, max_reasks: '2'}]\n"}, ["prompts", "list"], ["flywheel.yaml:6"]),
    ("cache threshold", {"flywheel.yaml": "cache:\n  semantic: {threshold: 2}\n"}, ["prompts", "list"], ["flywheel.yaml:2"]),
    ("cache str", {"flywheel.yaml": "cache: yes\n"}, ["prompts", "list"], ["flywheel.yaml:1"]),
    ("cache backend", {"flywheel.yaml": "cache:\n  backend: memcached://x\n"}, ["ask", "q"], ["flywheel.yaml:2"]),
    ("tracing bool", {"flywheel.yaml": "tracing:\n  enabled: maybe\n"}, ["prompts", "list"], ["flywheel.yaml:2"]),
    ("tracing redact regex", {"flywheel.yaml": "tracing:\n  redact: ['(']\n"}, ["prompts", "list"], ["flywheel.yaml:2"]),
    ("server body", {"flywheel.yaml": "server:\n  max_body_mb: -1\n"}, ["prompts", "list"], ["flywheel.yaml:2"]),
    ("server cors str", {"flywheel.yaml": "server:\n  cors_origins: 5\n"}, ["prompts", "list"], ["flywheel.yaml:2"]),
    ("monitor alert metric", {"flywheel.yaml": "monitor:\n  alerts:\n    - {metric: latency_p95, above: x}\n"}, ["prompts", "list"], ["flywheel.yaml:3"]),
    ("monitor window bad", {"flywheel.yaml": "monitor:\n  alerts:\n    - {metric: error_rate, window: soon, above: 0.1}\n"}, ["monitor"], ["flywheel.yaml:3"]),
    ("monitor online sample", {"flywheel.yaml": "monitor:\n  online:\n    - {check: pii, sample: 3}\n"}, ["prompts", "list"], ["flywheel.yaml:3"]),
    ("monitor notify", {"flywheel.yaml": "monitor:\n  notify: [smoke-signal]\n"}, ["monitor"], ["flywheel.yaml:2"]),
    ("review overlap", {"flywheel.yaml": "review:\n  overlap: 0\n"}, ["prompts", "list"], ["flywheel.yaml:2"]),
    ("review kappa", {"flywheel.yaml": "review:\n  min_judge_kappa: high\n"}, ["prompts", "list"], ["flywheel.yaml:2"]),
    ("routes unknown alias", {"flywheel.yaml": GOOD + "routes:\n  r: {alias: nope}\n"}, ["prompts", "list"], ["flywheel.yaml:4"]),
    ("routes split neg", {"flywheel.yaml": GOOD + "routes:\n  r:\n    split: {default: -1}\n"}, ["prompts", "list"], ["flywheel.yaml:5"]),
    ("routes sticky", {"flywheel.yaml": GOOD + "routes:\n  r: {alias: default, sticky: ip}\n"}, ["prompts", "list"], ["flywheel.yaml:4"]),
    ("store url", {"flywheel.yaml": "store: mysql://x\n"}, ["traces"], ["flywheel.yaml:1"]),
    ("store int", {"flywheel.yaml": "store: 5\n"}, ["traces"], ["flywheel.yaml:1"]),
    # ---- CLI values
    ("shard 3/2", {"flywheel.yaml": GOOD, "docs/a.md": "# A\n\nhello\n"}, ["ingest", "docs", "--shard", "3/2"], ["--shard"]),
    ("shard junk", {"flywheel.yaml": GOOD, "docs/a.md": "# A\n\nhello\n"}, ["ingest", "docs", "--shard", "x"], ["--shard"]),
    ("shard 0/0", {"flywheel.yaml": GOOD, "docs/a.md": "# A\n\nhello\n"}, ["ingest", "docs", "--shard", "0/0"], ["--shard"]),
    ("ingest missing", {"flywheel.yaml": GOOD}, ["ingest", "nope/"], ["nope"]),
    ("ingest max-file-mb neg", {"flywheel.yaml": GOOD}, ["ingest", "docs", "--max-file-mb", "-1"], ["--max-file-mb"]),
    ("search k neg", {"flywheel.yaml": GOOD}, ["search", "q", "--k", "-3"], ["--k"]),
    ("ask empty", {"flywheel.yaml": GOOD}, ["ask", ""], ["question"]),
    ("ask app unknown", {"flywheel.yaml": GOOD}, ["ask", "q", "--app", "docs_q"], ["docs_q"]),
    ("chat model unknown", {"flywheel.yaml": GOOD}, ["chat", "hi", "-m", "smal"], ["smal"]),
    ("eval repeat neg", {"flywheel.yaml": GOOD}, ["eval", "--repeat", "-1"], ["--repeat"]),
    ("eval strategies typo", {"flywheel.yaml": GOOD, "evals/s.yaml": SUITE_HEAD % "[{id: a, vars: {q: x}, checks: [{contains: x}]}]"}, ["eval", "evals/s.yaml", "--strategies", "best_of:3,self_consistensy:3"], ["self_consistency"]),
    ("eval strategies empty", {"flywheel.yaml": GOOD, "evals/s.yaml": SUITE_HEAD % "[{id: a, vars: {q: x}, checks: [{contains: x}]}]"}, ["eval", "evals/s.yaml", "--strategies", ","], ["--strategies"]),
    ("eval models unknown", {"flywheel.yaml": GOOD, "evals/s.yaml": SUITE_HEAD % "[{id: a, vars: {q: x}, checks: [{contains: x}]}]"}, ["eval", "evals/s.yaml", "--models", "default,strnog"], ["strnog"]),
    ("eval timeout 0", {"flywheel.yaml": GOOD}, ["eval", "--timeout", "0"], ["--timeout"]),
    ("eval no suites", {"flywheel.yaml": GOOD}, ["eval"], ["evals"]),
    ("eval suite dir file", {"flywheel.yaml": GOOD, "evals/s.yaml/": None}, ["eval", "evals/s.yaml"], ["s.yaml"]),
    ("monitor window bad cli", {"flywheel.yaml": GOOD}, ["monitor", "--window", "soon"], ["--window"]),
    ("monitor since bad", {"flywheel.yaml": GOOD}, ["monitor", "--since", "yesterday-ish"], ["--since"]),
    ("monitor group-by typo", {"flywheel.yaml": GOOD}, ["monitor", "--group-by", "modle"], ["model"]),
    ("traces since bad", {"flywheel.yaml": GOOD}, ["traces", "--since", "5 parsecs"], ["--since"]),
    ("export format typo", {"flywheel.yaml": GOOD}, ["export", "stf", "out.jsonl"], ["sft"]),
    ("export split", {"flywheel.yaml": GOOD}, ["export", "sft", "out.jsonl", "--split", "1.5"], ["--split"]),
    ("drift reference bad", {"flywheel.yaml": GOOD}, ["drift", "--reference", "yesterday"], ["--reference"]),
    ("check name typo", {"flywheel.yaml": GOOD, "rows.jsonl": '{"text": "a"}\n'}, ["check", "piii", "rows.jsonl"], ["pii"]),
    ("check arg bad json", {"flywheel.yaml": GOOD, "rows.jsonl": '{"text": "a"}\n'}, ["check", "pii", "rows.jsonl", "--arg", "{bad"], ["--arg"]),
    ("check rows bad json", {"flywheel.yaml": GOOD, "rows.jsonl": '{"text": "a"}\n{oops\n'}, ["check", "pii", "rows.jsonl"], ["rows.jsonl:2"]),
    ("check rows non-utf8", {"flywheel.yaml": GOOD, "rows.jsonl": b'{"text": "\xff"}\n'}, ["check", "pii", "rows.jsonl"], ["rows.jsonl"]),
    ("feedback score", {"flywheel.yaml": GOOD}, ["feedback", "abc", "--score", "7"], ["--score"]),
    ("serve port", {"flywheel.yaml": GOOD}, ["serve", "--port", "-1"], ["--port"]),
    ("keys create bad budget", {"flywheel.yaml": GOOD}, ["keys", "create", "--budget", "-5"], ["budget"]),
    # ---- eval case files
    ("suite yaml syntax", {"flywheel.yaml": GOOD, "evals/s.yaml": "target: model:default\ncases: [\n"}, ["eval", "evals/s.yaml"], ["s.yaml:"]),
    ("suite check typo", {"flywheel.yaml": GOOD, "evals/s.yaml": SUITE_HEAD % "\n  - id: a\n    vars: {q: x}\n    checks: [{contians: x}]"}, ["eval", "evals/s.yaml"], ["s.yaml:6", "contains"]),
    ("suite target typo", {"flywheel.yaml": GOOD, "evals/s.yaml": "target: modle:default\ncases: [{id: a, checks: [{contains: x}]}]\n"}, ["eval", "evals/s.yaml"], ["s.yaml:1"]),
    ("suite threshold", {"flywheel.yaml": GOOD, "evals/s.yaml": SUITE_HEAD.replace("cases", "threshold: 2\ncases") % "[{id: a, vars: {q: x}, checks: [{contains: x}]}]"}, ["eval", "evals/s.yaml"], ["s.yaml:3"]),
    ("suite key typo", {"flywheel.yaml": GOOD, "evals/s.yaml": "treshold: 0.5\n" + SUITE_HEAD % "[{id: a, vars: {q: x}, checks: [{contains: x}]}]"}, ["eval", "evals/s.yaml"], ["s.yaml:1", "threshold"]),
    ("jsonl bad row", {"flywheel.yaml": GOOD, "evals/s.yaml": SUITE_HEAD % "cases.jsonl", "evals/cases.jsonl": '{"id": "a", "vars": {"q": "x"}, "checks": [{"contains": "x"}]}\n{"id": "b", oops}\n'}, ["eval", "evals/s.yaml"], ["cases.jsonl:2"]),
    ("jsonl array row", {"flywheel.yaml": GOOD, "evals/s.yaml": SUITE_HEAD % "cases.jsonl", "evals/cases.jsonl": '[1, 2]\n'}, ["eval", "evals/s.yaml"], ["cases.jsonl:1"]),
    ("jsonl bad check", {"flywheel.yaml": GOOD, "evals/s.yaml": SUITE_HEAD % "cases.jsonl", "evals/cases.jsonl": '{"id": "a", "vars": {"q": "x"}, "checks": [{"contians": "x"}]}\n'}, ["eval", "evals/s.yaml"], ["cases.jsonl:1", "contains"]),
    ("jsonl non-utf8", {"flywheel.yaml": GOOD, "evals/s.yaml": SUITE_HEAD % "cases.jsonl", "evals/cases.jsonl": b'{"id": "a\xff"}\n'}, ["eval", "evals/s.yaml"], ["cases.jsonl"]),
    ("jsonl empty", {"flywheel.yaml": GOOD, "evals/s.yaml": SUITE_HEAD % "cases.jsonl", "evals/cases.jsonl": ""}, ["eval", "evals/s.yaml"], ["s.yaml:3", "no cases"]),
    ("jsonl missing", {"flywheel.yaml": GOOD, "evals/s.yaml": SUITE_HEAD % "cases.jsonl"}, ["eval", "evals/s.yaml"], ["cases.jsonl"]),
    ("jsonl dir", {"flywheel.yaml": GOOD, "evals/s.yaml": SUITE_HEAD % "cases.jsonl", "evals/cases.jsonl/": None}, ["eval", "evals/s.yaml"], ["cases.jsonl"]),
    ("csv bad row", {"flywheel.yaml": GOOD, "evals/s.yaml": SUITE_HEAD % "cases.csv", "evals/cases.csv": "id,q,checks\na,x,contains: x\nb,y\n"}, ["eval", "evals/s.yaml"], ["cases.csv:"]),
    ("csv extra cols", {"flywheel.yaml": GOOD, "evals/s.yaml": SUITE_HEAD % "cases.csv", "evals/cases.csv": "id,q\na,x,zzz,www\n"}, ["eval", "evals/s.yaml"], ["cases.csv:2"]),
    ("csv binary", {"flywheel.yaml": GOOD, "evals/s.yaml": SUITE_HEAD % "cases.csv", "evals/cases.csv": bytes(range(256))}, ["eval", "evals/s.yaml"], ["cases.csv"]),
    ("cases yaml file bad", {"flywheel.yaml": GOOD, "evals/s.yaml": SUITE_HEAD % "cases.yaml", "evals/cases.yaml": "- id: a\n"}, ["eval", "evals/s.yaml"], ["s.yaml:3", ".jsonl"]),
    ("cases txt", {"flywheel.yaml": GOOD, "evals/s.yaml": SUITE_HEAD % "cases.txt", "evals/cases.txt": "x\n"}, ["eval", "evals/s.yaml"], ["s.yaml:3"]),
    # ---- promptfoo
    ("pf provider config type", {"flywheel.yaml": GOOD, "promptfooconfig.yaml": "prompts: ['Q {{q}}']\nproviders:\n  - id: default\n    config: 5\ntests:\n  - vars: {q: x}\n    assert: [{type: contains, value: x}]\n"}, ["eval", "promptfooconfig.yaml"], ["promptfooconfig.yaml:3"]),
    ("pf assert type typo", {"flywheel.yaml": GOOD, "promptfooconfig.yaml": "prompts: ['Q {{q}}']\nproviders: [default]\ntests:\n  - vars: {q: x}\n    assert: [{type: contans, value: x}]\n"}, ["eval", "promptfooconfig.yaml"], ["promptfooconfig.yaml:5", "contains"]),
    ("pf assert not mapping", {"flywheel.yaml": GOOD, "promptfooconfig.yaml": "prompts: ['Q {{q}}']\nproviders: [default]\ntests:\n  - vars: {q: x}\n    assert: [5]\n"}, ["eval", "promptfooconfig.yaml"], ["promptfooconfig.yaml:5"]),
    ("pf tests not list", {"flywheel.yaml": GOOD, "promptfooconfig.yaml": "prompts: ['Q {{q}}']\nproviders: [default]\ntests: 5\n"}, ["eval", "promptfooconfig.yaml"], ["promptfooconfig.yaml:3"]),
    ("pf test not mapping", {"flywheel.yaml": GOOD, "promptfooconfig.yaml": "prompts: ['Q {{q}}']\nproviders: [default]\ntests:\n  - just text\n"}, ["eval", "promptfooconfig.yaml"], ["promptfooconfig.yaml:4", "just text"]),
    ("pf threshold str", {"flywheel.yaml": GOOD, "promptfooconfig.yaml": "prompts: ['Q {{q}}']\nproviders: [default]\ntests:\n  - vars: {q: x}\n    threshold: high\n    assert: [{type: contains, value: x}]\n"}, ["eval", "promptfooconfig.yaml"], ["promptfooconfig.yaml:5"]),
    ("pf weight str", {"flywheel.yaml": GOOD, "promptfooconfig.yaml": "prompts: ['Q {{q}}']\nproviders: [default]\ntests:\n  - vars: {q: x}\n    assert: [{type: contains, value: x, weight: heavy}]\n"}, ["eval", "promptfooconfig.yaml"], ["promptfooconfig.yaml:5"]),
    ("pf vars list", {"flywheel.yaml": GOOD, "promptfooconfig.yaml": "prompts: ['Q {{q}}']\nproviders: [default]\ntests:\n  - vars: [q]\n    assert: [{type: contains, value: x}]\n"}, ["eval", "promptfooconfig.yaml"], ["promptfooconfig.yaml:4", "vars"]),
    ("pf prompt int", {"flywheel.yaml": GOOD, "promptfooconfig.yaml": "prompts: [5]\nproviders: [default]\ntests:\n  - vars: {q: x}\n    assert: [{type: contains, value: x}]\n"}, ["eval", "promptfooconfig.yaml"], ["promptfooconfig.yaml:1"]),
    ("pf prompt file missing", {"flywheel.yaml": GOOD, "promptfooconfig.yaml": "prompts: [file://nope.txt]\nproviders: [default]\ntests:\n  - vars: {q: x}\n    assert: [{type: contains, value: x}]\n"}, ["eval", "promptfooconfig.yaml"], ["promptfooconfig.yaml:1", "nope.txt"]),
    ("pf csv non-utf8", {"flywheel.yaml": GOOD, "promptfooconfig.yaml": "prompts: ['Q {{q}}']\nproviders: [default]\ntests: file://t.csv\n", "t.csv": b"q,__expected\n\xff,contains: x\n"}, ["eval", "promptfooconfig.yaml"], ["t.csv"]),
    ("pf csv bad expected", {"flywheel.yaml": GOOD, "promptfooconfig.yaml": "prompts: ['Q {{q}}']\nproviders: [default]\ntests: file://t.csv\n", "t.csv": "q,__expected\nx,javascript: 1\n"}, ["eval", "promptfooconfig.yaml"], ["t.csv:2"]),
    ("pf provider unknown", {"flywheel.yaml": GOOD, "promptfooconfig.yaml": "prompts: ['Q {{q}}']\nproviders: [openai:gpt-9]\ntests:\n  - vars: {q: x}\n    assert: [{type: contains, value: x}]\n"}, ["eval", "promptfooconfig.yaml"], ["promptfooconfig.yaml:2"]),
    ("pf defaultTest list", {"flywheel.yaml": GOOD, "promptfooconfig.yaml": "prompts: ['Q {{q}}']\nproviders: [default]\ndefaultTest: [1]\ntests:\n  - vars: {q: x}\n    assert: [{type: contains, value: x}]\n"}, ["eval", "promptfooconfig.yaml"], ["promptfooconfig.yaml:3"]),
    ("pf template syntax", {"flywheel.yaml": GOOD, "promptfooconfig.yaml": "prompts: ['Q {{q']\nproviders: [default]\ntests:\n  - vars: {q: x}\n    assert: [{type: contains, value: x}]\n"}, ["eval", "promptfooconfig.yaml"], ["promptfooconfig.yaml:1"]),
    ("pf empty file", {"flywheel.yaml": GOOD, "promptfooconfig.yaml": ""}, ["eval", "promptfooconfig.yaml"], ["promptfooconfig.yaml:1"]),
    # ---- workflows
    ("wf yaml syntax", {"flywheel.yaml": GOOD, "wf.yaml": "name: wf\nsteps: [\n"}, ["workflow", "run", "wf.yaml"], ["wf.yaml:"]),
    ("wf step kind typo", {"flywheel.yaml": GOOD, "wf.yaml": "name: wf\nsteps:\n  - id: a\n    promt: 'x'\n"}, ["workflow", "run", "wf.yaml"], ["wf.yaml:"]),
    ("wf steps not list", {"flywheel.yaml": GOOD, "wf.yaml": "name: wf\nsteps: 5\n"}, ["workflow", "run", "wf.yaml"], ["wf.yaml:2"]),
    ("wf dup ids", {"flywheel.yaml": GOOD, "wf.yaml": "name: wf\nsteps:\n  - id: a\n    prompt: x\n  - id: a\n    prompt: y\n"}, ["workflow", "run", "wf.yaml"], ["wf.yaml:5"]),
    ("wf unknown ref", {"flywheel.yaml": GOOD, "wf.yaml": "name: wf\nsteps:\n  - id: a\n    prompt: 'x {{steps.zz}}'\n"}, ["workflow", "run", "wf.yaml"], ["wf.yaml:"]),
    ("wf cycle", {"flywheel.yaml": GOOD, "wf.yaml": "name: wf\nsteps:\n  - id: a\n    prompt: '{{b}}'\n    after: [b]\n  - id: b\n    prompt: '{{a}}'\n    after: [a]\n"}, ["workflow", "run", "wf.yaml"], ["wf.yaml:"]),
    ("wf missing", {"flywheel.yaml": GOOD}, ["workflow", "run", "nope.yaml"], ["nope.yaml"]),
    ("wf dir", {"flywheel.yaml": GOOD, "wf.yaml/": None}, ["workflow", "run", "wf.yaml"], ["wf.yaml"]),
    ("wf non-utf8", {"flywheel.yaml": GOOD, "wf.yaml": b"name: \xff\n"}, ["workflow", "run", "wf.yaml"], ["wf.yaml"]),
    ("wf input bad", {"flywheel.yaml": GOOD, "wf.yaml": WF_OK}, ["workflow", "run", "wf.yaml", "--input", "novalue"], ["--input"]),
    # ---- prompt files
    ("prompt key typo", {"flywheel.yaml": GOOD, "prompts/p.yaml": "template: Hi {{q}}\nsytem: x\n"}, ["prompts", "list"], ["p.yaml:2", "system"]),
    ("prompt not mapping", {"flywheel.yaml": GOOD, "prompts/p.yaml": "- a\n"}, ["prompts", "list"], ["p.yaml:1"]),
    ("prompt shots bad", {"flywheel.yaml": GOOD, "prompts/p.yaml": "template: Hi {{q}}\nshots: {k: -1}\n"}, ["prompts", "list"], ["p.yaml:2"]),
    ("prompt yaml bad", {"flywheel.yaml": GOOD, "prompts/p.yaml": "template: 5\nsystem: [1]\n"}, ["prompts", "list"], ["p.yaml:"]),
    ("prompt template syntax", {"flywheel.yaml": GOOD, "prompts/p.yaml": "template: 'Hi {{ q'\n"}, ["prompts", "list"], ["p.yaml:"]),
    ("prompt non-utf8", {"flywheel.yaml": GOOD, "prompts/p.yaml": b"template: '\xff'\n"}, ["prompts", "list"], ["p.yaml"]),
    ("prompt dir", {"flywheel.yaml": GOOD, "prompts/p.yaml/": None}, ["prompts", "list"], ["p.yaml"]),
    ("app prompt missing", {"flywheel.yaml": GOOD + "apps:\n  docs_qa: {prompt: prompts/nope.yaml}\n"}, ["ask", "q"], ["nope.yaml"]),
    ("prompts show unknown", {"flywheel.yaml": GOOD}, ["prompts", "show", "docs_qq"], ["docs_qa"]),
    ("prompts label bad", {"flywheel.yaml": GOOD}, ["prompts", "label", "docs_qa", "zzzzzz", "--as", "prod"], ["zzzzzz"]),
]


def materialize(root: Path, files: dict) -> None:
    """Write `files` under root: text, bytes, or a folder for a name ending in /."""
    for rel, body in files.items():
        p = root / rel.rstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith("/"):
            p.mkdir(exist_ok=True)
        elif isinstance(body, bytes):
            p.write_bytes(body)
        else:
            p.write_text(body, encoding="utf-8")


def run_case(root: Path, files: dict, args: list[str], expect: list[str]) -> tuple[list[str], str]:
    """Run the CLI in `root` with `files` written; what is wrong with how it failed, and its output."""
    materialize(root, files)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        r = CliRunner().invoke(main, ["--project", str(root), *args], input="")
    finally:
        os.chdir(cwd)
    out = r.output or ""
    problems = []
    if r.exit_code != 2:
        problems.append(f"exit {r.exit_code}")
    if "Traceback" in out or (r.exception and not isinstance(r.exception, SystemExit)):
        problems.append("traceback/crash: " + repr(r.exception))
    for e in expect:
        if e not in out:
            problems.append(f"missing {e!r}")
    text = out.replace(str(root) + "/", "").strip()
    return problems, text


# Mistakes that still load or lack their line; each names the file to fix (strict: they fail once fixed).
OPEN: dict[str, str] = {}


@pytest.mark.parametrize(
    ("files", "args", "expect"),
    [
        pytest.param(files, args, expect, id=name,
                     marks=[pytest.mark.xfail(strict=True, reason=OPEN[name])] if name in OPEN else [])
        for name, files, args, expect in CASES
    ],
)
def test_bad_input_is_one_clear_error(tmp_path: Path, files: dict, args: list[str], expect: list[str]) -> None:
    problems, output = run_case(tmp_path, files, args, expect)
    assert not problems, f"{problems}\n{output}"
