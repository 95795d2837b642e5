"""flywheel.yaml: schema, loading with file:line errors, ${ENV} interpolation, project folders."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from flywheel.errors import ConfigError

CONFIG_NAME = "flywheel.yaml"
DATA_DIR = ".flywheel"
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Price(Section):
    input: float = 0.0  # USD per 1M input tokens
    output: float = 0.0  # USD per 1M output tokens


class ModelAlias(Section):
    provider: Literal["openai_compat", "anthropic", "extractive"] = "openai_compat"
    model: str = ""
    version: str | None = None  # pinned version; recorded on every result
    base_url: str | None = None
    api_key_env: str | None = None  # name of the environment variable holding the key
    price: Price = Field(default_factory=Price)
    timeout: float = 60.0  # seconds per attempt
    max_retries: int = Field(default=2, ge=0, le=10)
    fallbacks: list[str] = Field(default_factory=list)
    params: dict[str, Any] = Field(default_factory=dict)  # extra request parameters (temperature, …)
    family: str | None = None  # prompt formatting family (openai, anthropic, qwen …); guessed when absent
    json_schema: bool | None = None  # endpoint accepts response_format json_schema; None: yes for openai_compat

    @model_validator(mode="after")
    def _needs_model(self) -> ModelAlias:
        if self.provider != "extractive" and not self.model:
            raise ValueError(f"provider '{self.provider}' needs `model:` (the provider's model name)")
        return self

    @property
    def pinned(self) -> str:
        name = self.model or self.provider
        return f"{name}@{self.version}" if self.version else name


class RetrievalConfig(Section):
    embedder: str = "local"  # local | none | an alias of an openai_compat embeddings endpoint
    embedder_model: str | None = None
    chunk_tokens: int = Field(default=256, ge=16, le=8192)
    overlap: int = Field(default=32, ge=0)
    fusion: Literal["auto", "rrf", "weighted"] = "auto"
    rrf_k: int = Field(default=60, ge=1)
    k: int = Field(default=5, ge=1, le=1000)
    min_relevance: float | Literal["auto"] | None = "auto"


class SemanticCacheConfig(Section):
    # cosine floor for candidates; 0.75 is tuned WITH the verifier (bench cache). Without it, use ≥ 0.92.
    threshold: float = Field(default=0.75, ge=0.0, le=1.0)
    verify: bool = True
    multi_turn: bool = False
    verifier_threshold: float | None = Field(default=None, ge=0.0, le=1.0)  # None: the fitted one


class CacheConfig(Section):
    exact: bool = True
    semantic: SemanticCacheConfig | None = None
    backend: str = "store"  # store | redis://host:port/db
    ttl_s: float | None = None


class GuardSpec(BaseModel):
    """One guard entry; validated in detail by flywheel.guards against the check registry."""

    model_config = ConfigDict(extra="allow")
    check: str
    on_fail: str = "block"


class GuardsConfig(Section):
    input: list[GuardSpec] = Field(default_factory=list)
    output: list[GuardSpec] = Field(default_factory=list)
    sources: list[GuardSpec] = Field(default_factory=list)  # on retrieved context (indirect injection)


class AppConfig(Section):
    kind: str = "docs_qa"
    model: str = "default"
    prompt: str | None = None
    tenant: str = "default"
    guards: GuardsConfig = Field(default_factory=GuardsConfig)
    options: dict[str, Any] = Field(default_factory=dict)


class TracingConfig(Section):
    enabled: bool = True
    otlp_endpoint: str | None = None
    redact: list[str] = Field(default_factory=list)  # extra regexes to scrub from stored spans
    redact_pii: bool | list[str] = False  # mask PII in stored spans: true, or the entity types to mask
    capture_content: bool = True


class Config(Section):
    store: str | None = None  # sqlite:///… or postgresql://…; default: <project>/.flywheel/flywheel.db
    models: dict[str, ModelAlias] = Field(default_factory=lambda: {"default": ModelAlias(provider="extractive")})
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    tracing: TracingConfig = Field(default_factory=TracingConfig)
    apps: dict[str, AppConfig] = Field(default_factory=dict)

    @field_validator("models")
    @classmethod
    def _default_alias(cls, v: dict[str, ModelAlias]) -> dict[str, ModelAlias]:
        v.setdefault("default", ModelAlias(provider="extractive"))
        for name, alias in v.items():
            for fb in alias.fallbacks:
                if fb not in v:
                    raise ValueError(f"alias '{name}' falls back to unknown alias '{fb}'; known: {sorted(v)}")
        _check_fallback_loops(v)
        return v


def _check_fallback_loops(models: dict[str, ModelAlias]) -> None:
    """`fallbacks:` must not lead back to an alias already in the chain (a → b → a)."""

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in path:
            loop = " → ".join((*path[path.index(name):], name))
            raise ValueError(f"model aliases fall back in a loop: {loop}; remove one of these fallbacks")
        for fb in models[name].fallbacks:
            visit(fb, (*path, name))

    for name in models:
        visit(name, ())


class Project:
    """A project folder: its flywheel.yaml (optional) and its data folder `.flywheel/`."""

    def __init__(self, root: str | Path = ".", config: Config | None = None, lines: dict | None = None):
        self.root = Path(root).resolve()
        self.config_path = self.root / CONFIG_NAME
        self.data_dir = self.root / DATA_DIR
        self.config = config if config is not None else Config()
        self._lines = lines or {}

    @classmethod
    def load(cls, root: str | Path = ".") -> Project:
        root = Path(root)
        if not root.is_dir():
            raise ConfigError(f"project folder {root} does not exist", hint="pass --project DIR of an existing folder")
        path = root / CONFIG_NAME
        if not path.exists():
            return cls(root)
        config, lines = load_config_file(path)
        return cls(root, config, lines)

    @property
    def store_url(self) -> str:
        url = self.config.store
        if not url:
            return f"sqlite:///{self.data_dir / 'flywheel.db'}"
        prefix, _, path = url.partition(":///")
        if prefix.startswith("sqlite") and path and not path.startswith("/") and path != ":memory:":
            return f"{prefix}:///{self.root / path}"  # relative sqlite paths are relative to the project
        return url

    def where(self, *path: str | int) -> str:
        """file:line of a key path in flywheel.yaml, for error messages (the nearest known parent)."""
        return where(self.config_path, self._lines, path)


def where(file: Path | str, lines: dict, path: tuple | list) -> str:
    p = tuple(path)
    while p and p not in lines:
        p = p[:-1]
    line = lines.get(p, 1)
    return f"{file}:{line}"


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


def read_yaml(path: Path | str, text: str | None = None) -> tuple[Any, dict]:
    """Parse YAML, returning (data, {key path: line}). Syntax errors become ConfigError with file:line."""
    path = Path(path)
    if text is None:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read {path}: {exc}", hint="check the file exists and is UTF-8") from None
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


def validation_error(exc: ValidationError, file: Path | str, lines: dict, prefix: tuple = ()) -> ConfigError:
    """Turn the first pydantic error into a ConfigError naming file:line and the field."""
    err = exc.errors()[0]
    loc = (*prefix, *[p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))])
    field = ".".join(map(str, loc)) or "(top level)"
    msg = err["msg"].removeprefix("Value error, ")
    hint = "see the commented example written by `flywheel init`"
    if err["type"] == "extra_forbidden":
        msg = f"unknown field `{loc[-1]}`"
        hint = "remove it or check its spelling; the valid fields are in `flywheel init`'s example"
    elif err["type"] == "literal_error":
        hint = f"use one of the allowed values ({err.get('ctx', {}).get('expected', '')})"
    more = f" (+{len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return ConfigError(f"`{field}`: {msg}{more}", where=where(file, lines, loc), hint=hint)


def load_config_file(path: Path | str) -> tuple[Config, dict]:
    data, lines = read_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("flywheel.yaml must be a mapping of sections (models:, store: …)", where=f"{path}:1")
    data = interpolate(data, path, lines)
    try:
        return Config.model_validate(data), lines
    except ValidationError as exc:
        raise validation_error(exc, path, lines) from None
