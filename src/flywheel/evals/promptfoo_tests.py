"""promptfoo tests as rows: `tests:` inline, or from `file://tests.csv` / `.yaml` / `.json` / `.jsonl` (globs
too), with `file://` var values loaded and list vars expanded into one test per combination, like promptfoo.

CSV: every column is a var except `__expected` / `__expected1` … (one assertion each, promptfoo's string form:
`contains: Paris`, `not-icontains: sorry`, `similar(0.8): text`, `llm-rubric: …`, `grade: …`; anything else is
`equals`), `__description`, `__threshold` and `__config:__expected[N]:threshold` (that assertion's threshold);
`__metric` and `__metadata…` columns are ignored.
"""

from __future__ import annotations

import copy
import csv
import glob
import io
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flywheel.config import read_jsonl, read_user_text, read_yaml
from flywheel.config import where as line_of
from flywheel.errors import UserError

TEST_KEYS = frozenset({"description", "vars", "assert", "threshold", "options", "metadata"})
TEXT_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".xml", ".j2", ".njk", ".prompt")
_ASSERTION = re.compile(r"^(not-)?([a-z][a-z0-9-]*?)(?:\((\d+(?:\.\d+)?)\))?(?::\s?([\s\S]*))?$")


@dataclass
class TestRow:
    """One promptfoo test before expansion: what was written and where."""

    data: dict[str, Any]
    where: str
    lines: dict[tuple, int] = field(default_factory=dict)  # key path (under the test) → line, when known
    file: Path | None = None

    def at(self, *keys: Any) -> str:
        if self.file is None or not self.lines:
            return self.where
        return line_of(self.file, self.lines, keys)


def file_ref(value: Any) -> str | None:
    return value[len("file://") :] if isinstance(value, str) and value.startswith("file://") else None


def resolve(base: Path, ref: str, where: str, what: str) -> list[Path]:
    """The files a `file://` reference names (a glob may name several), relative to the config's folder."""
    pattern = ref if Path(ref).is_absolute() else str(base / ref)
    if any(ch in ref for ch in "*?["):
        found = sorted(Path(p) for p in glob.glob(pattern, recursive=True))
        if not found:
            raise UserError(
                f"{what} `file://{ref}` matches no file", where=where, hint=f"paths are relative to {base}"
            )
        return found
    path = Path(pattern)
    if not path.is_file():
        raise UserError(
            f"{what} file `{ref}` does not exist", where=where, hint=f"paths are relative to {base}"
        )
    return [path]


# ---------------------------------------------------------------- test files


def read_tests(value: Any, config: Path, lines: dict) -> list[TestRow]:
    """`tests:` of the config at `config` (with its YAML `lines`): a list of tests or file references, or one
    file reference."""
    base = config.parent
    if value is None:
        return []
    if isinstance(value, str):
        return _from_files(value, base, line_of(config, lines, ("tests",)))
    if not isinstance(value, list):
        raise UserError(
            "`tests` must be a list of tests or a file (file://tests.csv)",
            where=line_of(config, lines, ("tests",)),
        )
    rows: list[TestRow] = []
    for i, item in enumerate(value):
        where = line_of(config, lines, ("tests", i))
        if isinstance(item, str):
            rows.extend(_from_files(item, base, where))
        elif isinstance(item, dict):
            rows.append(TestRow(item, where, _shifted(lines, ("tests", i)), config))
        else:
            raise UserError(f"a test must be a mapping or a file reference, got {item!r}", where=where)
    return rows


def _from_files(ref: str, base: Path, where: str) -> list[TestRow]:
    rows: list[TestRow] = []
    for path in resolve(base, file_ref(ref) or ref, where, "tests"):
        suffix = path.suffix.lower()
        if suffix == ".csv":
            rows.extend(_csv_tests(path))
        elif suffix in (".yaml", ".yml", ".json"):
            data, lines = read_yaml(path)
            data = yaml12_bools(data, lines, read_user_text(path))
            items = data if isinstance(data, list) else [data]
            for i, item in enumerate(items):
                key: tuple = (i,) if isinstance(data, list) else ()
                if not isinstance(item, dict):
                    raise UserError("each test must be a mapping", where=line_of(path, lines, key))
                rows.append(TestRow(item, line_of(path, lines, key), _shifted(lines, key), path))
        elif suffix == ".jsonl":
            rows.extend(TestRow(item, f"{path}:{n}") for n, item in read_jsonl(path, "JSON object (a test)"))
        else:
            raise UserError(
                f"cannot read tests from {path.name}",
                where=where,
                hint="use a .csv, .yaml, .json or .jsonl file",
            )
    return rows


def _shifted(lines: dict, prefix: tuple) -> dict[tuple, int]:
    """Line numbers of keys under `prefix`, keyed relative to it."""
    return {k[len(prefix) :]: v for k, v in lines.items() if k[: len(prefix)] == prefix}


def _csv_tests(path: Path) -> list[TestRow]:
    rows = []
    reader = csv.DictReader(io.StringIO(read_user_text(path, "utf-8-sig"), newline=""))
    for row in reader:
        where = f"{path}:{reader.line_num}"
        test: dict[str, Any] = {"vars": {}, "assert": []}
        expected: dict[str, dict[str, Any]] = {}  # column → its assertion
        configs: list[tuple[str, str, str]] = []  # (column, key, cell) of `__config:COLUMN:KEY`
        for key, cell in row.items():
            if key is None:
                raise UserError("the row has more cells than the header has columns", where=where)
            cell = cell or ""
            if key.startswith("__expected"):
                if cell.strip():
                    expected[key] = assertion_from_string(cell.strip())
                    test["assert"].append(expected[key])
            elif key.startswith("__config:"):
                column, _, option = key[len("__config:") :].partition(":")
                if not column.startswith("__expected") or option != "threshold":
                    raise UserError(
                        f"unsupported CSV column `{key}`",
                        where=f"{path}:1",
                        hint="flywheel reads `__config:__expected[N]:threshold`",
                    )
                if cell.strip():
                    configs.append((column, option, cell.strip()))
            elif key == "__description":
                test["description"] = cell
            elif key == "__threshold":
                if cell.strip():
                    try:
                        test["threshold"] = float(cell)
                    except ValueError:
                        raise UserError(
                            f"`__threshold` must be a number, got {cell!r}", where=where
                        ) from None
            elif key.startswith(("__metric", "__metadata")):
                continue
            elif key.startswith("__"):
                raise UserError(
                    f"unsupported CSV column `{key}`",
                    where=f"{path}:1",
                    hint="special columns: __expected[N], __description, __threshold, __metric, "
                    "__metadata:NAME, __config:__expected[N]:threshold; other columns are vars",
                )
            else:
                test["vars"][key] = cell
        for column, option, cell in configs:
            # `__expected` also names the first of numbered columns (`__expected1`), as in promptfoo
            target = expected.get(column) or (expected.get("__expected1") if column == "__expected" else None)
            if target is not None:
                try:
                    target[option] = float(cell)
                except ValueError:
                    raise UserError(
                        f"`__config:{column}:{option}` must be a number, got {cell!r}", where=where
                    ) from None
        rows.append(TestRow(test, where))
    return rows


def assertion_from_string(text: str) -> dict[str, Any]:
    """promptfoo's one-cell assertion: `TYPE`, `TYPE: VALUE`, `TYPE(THRESHOLD): VALUE`; else an `equals`."""
    for prefix, kind in (("grade:", "llm-rubric"), ("fn:", "javascript"), ("eval:", "javascript")):
        if text.startswith(prefix):
            return {"type": kind, "value": text[len(prefix) :].strip()}
    m = _ASSERTION.match(text)
    if m is None or (m.group(4) is None and m.group(3) is None and not _bare(m.group(2))):
        return {"type": "equals", "value": text}
    negate, kind, threshold, value = m.groups()
    from flywheel.evals.promptfoo_asserts import SUPPORTED, UNSUPPORTED_WHY

    if kind not in SUPPORTED and kind not in UNSUPPORTED_WHY:
        return {"type": "equals", "value": text}
    out: dict[str, Any] = {"type": f"{negate or ''}{kind}"}
    if value is not None and value != "":
        out["value"] = [v.strip() for v in value.split(",")] if kind.endswith(("-any", "-all")) else value
    if threshold is not None:
        out["threshold"] = float(threshold)
    return out


def _bare(kind: str) -> bool:
    return kind in ("is-json", "contains-json", "is-xml", "answer-relevance")


# ---------------------------------------------------------------- vars


def load_var(value: Any, base: Path, where: str) -> Any:
    """A var value with `file://` references read: text files as text, .json / .yaml parsed; a glob gives a
    list (one test per file)."""
    ref = file_ref(value)
    if ref is None:
        return value
    paths = resolve(base, ref, where, "var")
    values = [_read_var_file(p, where) for p in paths]
    return values if any(ch in ref for ch in "*?[") else values[0]


def _read_var_file(path: Path, where: str) -> Any:
    suffix = path.suffix.lower()
    if suffix in (".json", ".yaml", ".yml"):
        return read_yaml(path)[0]
    if suffix in (".py", ".js", ".ts", ".mjs", ".cjs"):
        raise UserError(
            f"var file {path.name}: flywheel runs no code to compute vars",
            where=where,
            hint="write the value into a .txt, .json or .yaml file",
        )
    if suffix in (".png", ".jpg", ".jpeg", ".gif", ".webp", ".pdf", ".mp3", ".wav"):
        raise UserError(
            f"var file {path.name}: images, audio and PDFs are not supported",
            where=where,
            hint="model targets send text; use a text file",
        )
    return read_user_text(path)


def expand(vars: dict[str, Any]) -> list[dict[str, Any]]:
    """One vars mapping per combination of the list values (promptfoo's expansion); scalars stay."""
    keys = [k for k, v in vars.items() if isinstance(v, list)]
    if not keys:
        return [dict(vars)]
    combos = itertools.product(*(vars[k] for k in keys))
    return [{**vars, **dict(zip(keys, combo, strict=True))} for combo in combos]


# ---------------------------------------------------------------- $ref, scenarios


def resolve_refs(data: dict[str, Any], at: Callable[..., str]) -> None:
    """Replace every `{$ref: '#/assertionTemplates/NAME'}` (any JSON pointer into the config) under tests,
    defaultTest and scenarios by what it points at, in place."""

    def walk(value: Any, keys: tuple) -> Any:
        if isinstance(value, dict):
            if "$ref" in value:
                return _pointed(data, value["$ref"], at(*keys))
            return {k: walk(v, (*keys, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, (*keys, i)) for i, v in enumerate(value)]
        return value

    for key in ("tests", "defaultTest", "scenarios"):
        if key in data:
            data[key] = walk(data[key], (key,))


def _pointed(data: dict[str, Any], ref: Any, where: str) -> Any:
    if not isinstance(ref, str) or not ref.startswith("#/"):
        raise UserError(
            f"cannot follow `$ref: {ref}`",
            where=where,
            hint="flywheel follows references into the config itself: `$ref: '#/assertionTemplates/NAME'`",
        )
    value: Any = data
    for step in ref[2:].split("/"):
        step = step.replace("~1", "/").replace("~0", "~")
        if isinstance(value, dict) and step in value:
            value = value[step]
        elif isinstance(value, list) and step.isdigit() and int(step) < len(value):
            value = value[int(step)]
        else:
            raise UserError(
                f"`$ref: {ref}` points at nothing in the config",
                where=where,
                hint="define it under `assertionTemplates:` (or fix the path)",
            )
    return copy.deepcopy(value)


def read_scenarios(value: Any, at: Callable[..., str]) -> list[TestRow]:
    """promptfoo `scenarios`: every test of a scenario runs once per entry of its `config`, with the entry's
    vars under the test's and the entry's assertions before the test's."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise UserError("`scenarios` must be a list of {config, tests}", where=at("scenarios"))
    rows: list[TestRow] = []
    for i, scenario in enumerate(value):
        where = at("scenarios", i)
        if not isinstance(scenario, dict) or not isinstance(scenario.get("config"), list):
            raise UserError(
                "a scenario needs `config:` (a list of {vars, assert}) and `tests:`",
                where=where,
                hint="scenarios: [{config: [{vars: {lang: fr}}], tests: [{vars: {q: hi}, assert: […]}]}]",
            )
        unknown = set(scenario) - {"config", "tests", "description"}
        if unknown:
            raise UserError(
                f"scenario key(s) {', '.join(sorted(map(str, unknown)))} are not supported",
                where=where,
                hint="a scenario has description, config and tests",
            )
        tests = scenario.get("tests") or [{}]
        for j, entry in enumerate(scenario["config"]):
            for k, test in enumerate(tests):
                if not isinstance(entry, dict) or not isinstance(test, dict):
                    raise UserError("scenario configs and tests must be mappings", where=where)
                merged = {**entry, **test}
                merged["vars"] = {**(entry.get("vars") or {}), **(test.get("vars") or {})}
                merged["assert"] = [*(entry.get("assert") or []), *(test.get("assert") or [])]
                test_where = (
                    at("scenarios", i, "tests", k)
                    if scenario.get("tests")
                    else at("scenarios", i, "config", j)
                )
                rows.append(TestRow(merged, test_where))
    return rows


# ---------------------------------------------------------------- YAML 1.2 scalars

_YAML11_BOOL = r"(yes|no|on|off)"


def yaml12_bools(data: Any, lines: dict, text: str) -> Any:
    """promptfoo reads YAML 1.2, where `yes` / `no` / `on` / `off` are text, not booleans as in YAML 1.1:
    every boolean written so goes back to the text it was (`body: Yes` stays "Yes")."""
    source = text.splitlines()

    def walk(value: Any, keys: tuple) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, (*keys, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, (*keys, i)) for i, v in enumerate(value)]
        if isinstance(value, bool) and keys in lines and 0 < lines[keys] <= len(source):
            line, last = source[lines[keys] - 1], keys[-1] if keys else None
            lead = rf"{re.escape(str(last))}\s*:\s*" if isinstance(last, str) else r"(?:^|[\[,-])\s*"
            m = re.search(lead + _YAML11_BOOL + r"\s*(?=$|[,}\]#])", line, re.IGNORECASE)
            return m.group(1) if m else value
        return value

    return walk(data, ())
