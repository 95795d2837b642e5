"""Reading flywheel.yaml and other YAML files: duplicate keys rejected, ${ENV} interpolation, and the line of
every key so errors can say file:line."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from flywheel.errors import ConfigError

_YAML_BASE: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping names the same key twice: YAML would silently keep the last one."""


class YAMLLoader(_YAML_BASE):  # type: ignore[valid-type,misc]
    """The one YAML loader of the package: safe (libyaml when present), and a duplicate mapping key is an error
    at its line instead of the earlier value silently disappearing."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[tuple[str, str], yaml.Node] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *defaults` overriding keys is what merge keys are for
            key = (key_node.tag, key_node.value)
            if key in seen:
                raise DuplicateKeyError(
                    "while constructing a mapping", node.start_mark,
                    f"duplicate key `{key_node.value}` (first at line {seen[key].start_mark.line + 1})",
                    key_node.start_mark)
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)  # type: ignore[no-any-return]


_YAML_LOADER = YAMLLoader


def load_yaml(text: str) -> Any:
    """`yaml.safe_load` with duplicate keys rejected; raises yaml.YAMLError like it."""
    return yaml.load(text, Loader=YAMLLoader)  # a SafeLoader subclass: no arbitrary objects


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")



def where(file: Path | str, lines: dict, path: tuple | list) -> str:
    p = tuple(path)
    while p and p not in lines:
        p = p[:-1]
    line = lines.get(p, 1)
    return f"{file}:{line}"


def anchored(raw: str | Path, base: str | Path | None) -> Path:
    """A path written in a config file: `~` expanded, an absolute path as it is, a relative one joined to `base`
    (the folder of the file that holds it — flywheel.yaml's is the project folder); with no `base` (a config
    built in Python, not read from a file) it stays relative to the working directory."""
    path = Path(raw).expanduser()
    return path if path.is_absolute() or base is None else Path(base) / path


def folder_of(location: str | None) -> Path | None:
    """The folder of the file a `file:line` location (as `where` writes it) names, or None without one."""
    if not location:
        return None
    file = Path(re.sub(r":\d+$", "", location))
    return file if file.is_dir() else file.parent


def interpolate(value: Any, file: Path | str, lines: dict, path: tuple = ()) -> Any:
    """Replace ${VAR} and ${VAR:-default} in every string."""
    if isinstance(value, dict):
        return {k: interpolate(v, file, lines, (*path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, file, lines, (*path, i)) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def sub(m: re.Match) -> str:
        name, default = m.group(1), m.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise ConfigError(
            f"environment variable {name} is not set (used in `{'.'.join(map(str, path))}`)",
            where=where(file, lines, path),
            hint=f"export {name}=… or write ${{{name}:-default}}",
        )

    return _ENV.sub(sub, value)


def read_user_text(path: Path | str, encoding: str = "utf-8") -> str:
    """The text of a file the user wrote; a missing file, a folder, a binary file or bytes that are not UTF-8
    are a ConfigError naming the file (and the line of the first bad byte), never a traceback."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist", hint="check the path (relative paths start at the file "
                          "or project that names it)") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a folder, not a file", hint="give the path of a file") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    if b"\x00" in data[:8192]:
        raise ConfigError(f"{path.name} is a binary file, not text", where=f"{path}:1",
                          hint="give a UTF-8 text file")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{path.name} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line})",
                          where=f"{path}:{line}", hint="save the file as UTF-8") from None


def read_jsonl(path: Path, what: str = "JSON object") -> list[tuple[int, dict]]:
    """(line number, object) of each non-empty line of a user-written JSONL file; ConfigError at file:line for
    a line that is not JSON or not an object (`what` names what each line should be)."""
    rows = []
    for n, line in enumerate(read_user_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise ConfigError(f"invalid JSON: {exc}", where=f"{path}:{n}", hint=f"one {what} per line") from None
        if not isinstance(obj, dict):
            raise ConfigError(f"each line must be a {what}", where=f"{path}:{n}")
        rows.append((n, obj))
    return rows


def read_yaml(path: Path | str, text: str | None = None) -> tuple[Any, dict]:
    """Parse YAML, returning (data, {key path: line}). Syntax errors become ConfigError with file:line."""
    path = Path(path)
    if text is None:
        text = read_user_text(path)
    try:
        # One pass with libyaml when present: compose the node tree (for line numbers), construct data from it.
        loader = _YAML_LOADER(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        problem = getattr(exc, "problem", None) or str(exc)
        if isinstance(exc, DuplicateKeyError):
            raise ConfigError(f"YAML {problem}", where=f"{path}:{line}",
                              hint="keep one of them: YAML would silently drop the first") from None
        raise ConfigError(f"YAML syntax error: {problem}", where=f"{path}:{line}",
                          hint="fix the indentation or quoting on that line") from None
    lines: dict[tuple, int] = {}
    _collect_lines(node, (), lines)
    return data, lines


def _collect_lines(node: Any, path: tuple, out: dict) -> None:
    if node is None:
        return
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = k.value
            out[(*path, key)] = k.start_mark.line + 1
            _collect_lines(v, (*path, key), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _collect_lines(v, (*path, i), out)


class FieldValueError(ValueError):
    """A validator's error about a field below the one it validates (an alias's `fallbacks`, a section's
    `overlap`): `loc` is appended to pydantic's location, so the message points at that field's line."""

    def __init__(self, message: str, loc: tuple[str | int, ...]):
        super().__init__(message)
        self.loc = loc


def validation_error(exc: ValidationError, file: Path | str, lines: dict, prefix: tuple = (),
                     schema: type[BaseModel] | None = None) -> ConfigError:
    """Turn the first pydantic error into a ConfigError naming file:line and the field. With the `schema` that
    was validated, an unknown field names the nearest valid one and lists them all."""
    err = exc.errors()[0]
    own = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    cause = err.get("ctx", {}).get("error")
    if isinstance(cause, FieldValueError):
        own = (*own, *cause.loc)
    loc = (*prefix, *own)
    field = ".".join(map(str, loc)) or "(top level)"
    msg = err["msg"].removeprefix("Value error, ")
    hint = "see the commented example written by `flywheel init`"
    if err["type"] == "extra_forbidden":
        msg = f"unknown field `{loc[-1]}`"
        hint = "remove it or check its spelling; the valid fields are in `flywheel init`'s example"
        valid = _field_names(schema, own[:-1]) if schema is not None else []
        if valid:
            from flywheel.registry import did_you_mean

            close = did_you_mean(str(own[-1]), valid, n=1)
            msg += f" — did you mean `{close[0]}`?" if close else ""
            hint = f"valid fields here: {', '.join(valid)}"
    elif err["type"] == "literal_error":
        hint = f"use one of the allowed values ({err.get('ctx', {}).get('expected', '')})"
    more = f" (+{len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return ConfigError(f"`{field}`: {msg}{more}", where=where(file, lines, loc), hint=hint)



def _field_names(schema: Any, path: tuple) -> list[str]:
    """The field names of the model found at `path` inside `schema` (through dicts, lists and optionals)."""
    tp: Any = schema
    for part in path:
        tp = _step(tp, part)
        if tp is None:
            return []
    model = next((c for c in _members(tp) if isinstance(c, type) and issubclass(c, BaseModel)), None)
    return list(model.model_fields) if model is not None else []


def _members(tp: Any) -> tuple[Any, ...]:
    return get_args(tp) if get_origin(tp) in (Union, UnionType) else (tp,)


def _step(tp: Any, part: Any) -> Any:
    for member in _members(tp):
        if isinstance(member, type) and issubclass(member, BaseModel):
            if isinstance(part, str) and part in member.model_fields:
                return member.model_fields[part].annotation
        elif get_origin(member) is dict and isinstance(part, str):
            return get_args(member)[1]
        elif get_origin(member) is list and isinstance(part, int):
            return get_args(member)[0]
    return None


__all__ = [
    "DuplicateKeyError",
    "YAMLLoader",
    "interpolate",
    "load_yaml",
    "read_jsonl",
    "read_user_text",
    "read_yaml",
    "validation_error",
    "where",
]
