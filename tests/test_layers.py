"""The layer rule of docs/architecture.md, checked on every run: a module imports only from its own layer and the
layers below it; and within layer 2, tracing does not reach into the detectors nor the cache into retrieval (they
get a masker and an embedder injected by the runtime)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "flywheel"
LAYERS = {
    "types": 0, "config": 0, "errors": 0, "text": 0, "registry": 0, "protocols": 0,
    "store": 1,
    "gateway": 2, "retrieval": 2, "checks": 2, "cache": 2, "prompts": 2, "tracing": 2,
    "guards": 3, "apps": 3, "workflows": 3, "evals": 3, "feedback": 3, "monitor": 3, "loop": 3,
    "cli": 4, "server": 4, "web": 4, "bench": 4, "testing": 4, "__main__": 4, "__init__": 4,
}
FORBIDDEN_SIDEWAYS = {("tracing", "checks"), ("cache", "retrieval")}


def _imports(path: Path) -> list[tuple[int, str]]:
    rel = path.relative_to(SRC)
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.level:
                base = ["flywheel", *rel.parts[:-1]][: max(1, len(rel.parts) - node.level + 1)]
                out.append((node.lineno, ".".join([*base, node.module])))
            else:
                out.append((node.lineno, node.module))
    return out


def test_no_module_imports_a_layer_above_its_own():
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        own = path.relative_to(SRC).parts[0].removesuffix(".py")
        assert own in LAYERS, f"{own} has no layer: add it to docs/architecture.md and this test"
        for line, target in _imports(path):
            parts = target.split(".")
            if parts[0] != "flywheel" or len(parts) < 2:
                continue
            pkg = parts[1]
            if LAYERS.get(pkg, -1) > LAYERS[own] or (own, pkg) in FORBIDDEN_SIDEWAYS:
                bad.append(f"{path.relative_to(SRC)}:{line}: {own} imports {target}")
    assert not bad, "\n".join(bad)
