"""Reading a suite's `cases:` file (JSONL or CSV) into flat case mappings, each with its file:line."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import yaml

from flywheel.config import load_yaml, read_jsonl, read_user_text
from flywheel.errors import ConfigError
from flywheel.evals.suite_schema import CASE_KEYS


def read_case_file(path: Path, where: str) -> list[tuple[dict, str, None]]:
    """Cases from JSONL (one case per line) or CSV (columns: id, reference, checks, check:NAME, vars)."""
    if not path.is_file():
        raise ConfigError(
            f"case file {path} does not exist", where=where, hint="the path is relative to the suite"
        )
    if path.suffix == ".jsonl":
        return _jsonl_cases(path)
    if path.suffix == ".csv":
        return _csv_cases(path)
    raise ConfigError(f"cannot read cases from {path.name}", where=where, hint="use a .jsonl or .csv file")


def _jsonl_cases(path: Path) -> list[tuple[dict, str, None]]:
    return [(_flat_case(obj), f"{path}:{i}", None) for i, obj in read_jsonl(path)]


def _csv_cases(path: Path) -> list[tuple[dict, str, None]]:
    rows = []
    reader = csv.DictReader(io.StringIO(read_user_text(path, "utf-8-sig"), newline=""))
    for row in reader:
        where = f"{path}:{reader.line_num}"
        case: dict[str, Any] = {"vars": {}, "checks": []}
        for key, value in row.items():
            if key is None:
                raise ConfigError(
                    f"the row has {len(reader.fieldnames or []) + len(value)} cells but the header has "
                    f"{len(reader.fieldnames or [])} columns",
                    where=where,
                    hint="quote cells that hold commas (\"a, b\"), or add the missing column to the header",
                )
            if value is None or value == "":
                continue
            if key == "checks":
                case["checks"].extend(_yaml_cell(value, where))
            elif key.startswith("check:"):
                case["checks"].append({key[6:]: _yaml_cell(value, where, scalar=True)})
            elif key in ("id", "reference"):
                case[key] = value
            else:
                case["vars"][key] = value
        rows.append((case, where, None))
    return rows


def _yaml_cell(value: str, where: str, scalar: bool = False) -> Any:
    try:
        parsed = load_yaml(value)
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"cannot read cell {value!r}: {exc}",
            where=where,
            hint="write checks as YAML, e.g. [{contains: x}, {max_words: 50}]",
        ) from None
    if scalar:
        # a `check:NAME` cell holds one argument: numbers stay numbers, anything YAML would turn into
        # a bool, null or mapping ("Yes", "version:") is the text the user wrote
        return parsed if isinstance(parsed, (str, int, float)) and not isinstance(parsed, bool) else value
    if not isinstance(parsed, list):
        raise ConfigError(
            "the `checks` column must hold a YAML list",
            where=where,
            hint="write [{contains: x}, {max_words: 50}]",
        )
    return parsed


def _flat_case(obj: dict) -> dict:
    """JSONL rows may nest `vars` or put variables at the top level next to id/reference/checks."""
    if "vars" in obj:
        return obj
    keys = CASE_KEYS if "choices" in obj else CASE_KEYS - {"answer"}  # an `answer` column is a var otherwise
    known = {k: obj[k] for k in keys if k in obj}
    known["vars"] = {k: v for k, v in obj.items() if k not in keys}
    return known
