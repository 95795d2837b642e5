"""flywheel.yaml: schema, loading with file:line errors, ${ENV} interpolation, project folders."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from flywheel.errors import ConfigError, UserError
from flywheel.registry import names_in_group, unknown_alias, unknown_name

CONFIG_NAME = "flywheel.yaml"
DATA_DIR = ".flywheel"
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


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


MAX_TENANT = 100
_TENANT_BAD = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ufeff]")


def validate_tenant(tenant: Any, where: str | None = None) -> str:
    """The one tenant check (CLI, Python API, flywheel.yaml): a non-empty name of at most 100 characters with
    no surrounding spaces and no control characters (line breaks, escape codes, bidi overrides), so a tenant
    can never be confused with another one or rewrite a terminal. Returns it unchanged."""
    hint = "a tenant is a non-empty name of at most 100 printable characters, e.g. `acme`"
    if not isinstance(tenant, str) or not tenant.strip():
        raise UserError(f"invalid tenant {tenant!r}: it is empty", where=where, hint=hint)
    if len(tenant) > MAX_TENANT:
        raise UserError(f"invalid tenant {tenant[:20]!r}…: longer than {MAX_TENANT} characters", where=where,
                          hint=hint)
    if _TENANT_BAD.search(tenant) or tenant != tenant.strip():
        raise UserError(f"invalid tenant {tenant!r}: it holds control characters or surrounding spaces",
                          where=where, hint=hint)
    return tenant


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

    @field_validator("min_relevance")
    @classmethod
    def _floor_range(cls, value: float | str | None) -> float | str | None:
        # relevance signals (cosine, term coverage) lie in 0..1: a floor outside it drops every hit or none
        if isinstance(value, (int, float)) and not 0.0 <= value <= 1.0:
            raise ValueError(f"min_relevance must be between 0 and 1 (got {value}); or `auto`, or null for no floor")
        return value


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


GUARD_ACTIONS = ("block", "redact", "fix", "reask", "fallback", "refrain", "log-only")
OUTPUT_ONLY_ACTIONS = ("reask", "fallback")  # they regenerate the answer
SOURCE_ACTIONS = ("drop", "block", "refrain", "log-only")  # the `sources:` stage, on retrieved context


class GuardSpec(BaseModel):
    """One guard entry. Its shape is checked when flywheel.yaml loads; the check's name and arguments when the
    guard policy is built (flywheel.guards, against the check registry)."""

    model_config = ConfigDict(extra="allow")
    check: str
    on_fail: str = "block"
    max_reasks: int = Field(default=1, ge=0, le=5, strict=True)
    fallback: str | None = None


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

    @field_validator("tenant")
    @classmethod
    def _tenant(cls, value: str) -> str:
        try:
            return validate_tenant(value)
        except UserError as exc:
            raise ValueError(exc.message) from None
    options: dict[str, Any] = Field(default_factory=dict)


class DocsQAOptions(Section):
    """`options:` of a docs_qa app."""

    k: int | None = Field(default=None, ge=1, strict=True)  # strict: `k: true` or `k: "5"` is a mistake
    filters: dict[str, Any] | None = None  # metadata field → value, e.g. {lang: en}
    no_answer: str | dict[str, str] | None = None  # a message, or one per language {en: …, zh: …}
    prompt_label: str | None = Field(default=None, pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,99}$")  # pin a label

    class QueryOptions(Section):
        """`options.query`: transforms of the question before search (flywheel.apps.augment)."""

        translate: Literal["off", "auto"] = "off"  # auto: into the corpus language when it differs; true = auto
        rewrite: bool = False  # a self-contained search query from the question
        hyde: bool = False  # search with a hypothetical answer too
        multi_query: int = Field(default=0, ge=0, le=10, strict=True)  # paraphrases fused with RRF
        model: str | None = None  # alias for the transforms; default: the app's model

        @field_validator("translate", mode="before")
        @classmethod
        def _bool_translate(cls, value: Any) -> Any:
            return {True: "auto", False: "off"}.get(value, value) if isinstance(value, bool) else value

    class RerankOptions(Section):
        """`options.rerank`: re-score the top passages (an LLM alias, or the app's cross-encoder when null)."""

        model: str | None = None
        top: int = Field(default=20, ge=1, le=100, strict=True)  # candidates retrieved and scored

    class ContextOptions(Section):
        """`options.context`: which passages the model sees, and in what order."""

        budget_tokens: int | None = Field(default=None, ge=1, strict=True)
        order: Literal["best_first", "best_at_ends", "shuffle"] = "best_first"
        seed: int = 0  # for `order: shuffle`

    query: QueryOptions | None = None
    rerank: RerankOptions | None = None
    context: ContextOptions | None = None


class ChatOptions(Section):
    """`options:` of a chat app."""

    system: str | None = None


# Options of the built-in app kinds; a plugin kind (entry-point group `flywheel.apps`) checks its own.
APP_OPTIONS: dict[str, type[Section]] = {"docs_qa": DocsQAOptions, "chat": ChatOptions}
_OPTION_HINTS = {"docs_qa": "for example {k: 5, filters: {lang: en}, no_answer: \"…\", prompt_label: production, "
                            "query: {translate: auto}, rerank: {model: small}, context: {budget_tokens: 3000}}",
                 "chat": "chat apps take options: {system: \"…\"}"}


class TracingConfig(Section):
    enabled: bool = True
    otlp_endpoint: str | None = None
    redact: list[str] = Field(default_factory=list)  # extra regexes to scrub from stored spans
    redact_pii: bool | list[str] = False  # mask PII in stored spans: true, or the entity types to mask
    capture_content: bool = True


class ServerConfig(Section):
    redis: str | None = None  # redis://host:port/db: budget and rate counters shared by every worker
    cors_origins: list[str] = Field(default_factory=list)
    max_body_mb: float = Field(default=4.0, gt=0)
    online_evaluators: bool = True  # run `monitor.online` in a background worker inside `flywheel serve`


class OnlineEvaluatorSpec(BaseModel):
    """One `monitor.online` entry: a check (grounding, judge, pii, …) run on a sample of production traces after
    the response. Keys other than these are the check's own options (criterion, model …)."""

    model_config = ConfigDict(extra="allow")
    check: str
    apps: list[str] = Field(default_factory=list)  # empty: every app (and plain proxy calls)
    sample: float = Field(default=1.0, gt=0, le=1)
    name: str | None = None  # the feedback `name` the scores are written under; default: the check's name


class AlertRule(Section):
    """One `monitor.alerts` entry: `metric` over `window`, alerting when above/below a bound — absolute, or
    relative to a baseline window when `relative_to` is set (then the bounds are ratios: above: 1.5 = +50 %)."""

    name: str | None = None
    metric: str
    window: str = "1d"
    above: float | None = None
    below: float | None = None
    relative_to: str | None = None  # e.g. "window:7d"
    where: dict[str, str] = Field(default_factory=dict)  # app / model / prompt_version / tenant


class MonitorConfig(Section):
    online: list[OnlineEvaluatorSpec] = Field(default_factory=list)
    alerts: list[AlertRule] = Field(default_factory=list)
    notify: list[str] = Field(default_factory=lambda: ["log"])  # log | http(s)://webhook | command:CMD
    interval_s: float = Field(default=30.0, gt=0)  # how often the background worker looks for new traces


class ReviewConfig(Section):
    overlap: int = Field(default=2, ge=1)  # distinct annotators each review item needs
    lock_ttl_s: float = Field(default=600.0, gt=0)  # an annotator's hold on an item before others may take it
    min_judge_kappa: float = Field(default=0.6, ge=-1, le=1)  # eval reports warn below this agreement


class RouteConfig(Section):
    """One `routes:` entry: a name callers use like a model alias, served by `alias`, or by the arms of `split`
    (weights, sticky per user or session), optionally copied to a `shadow` alias whose answer is only stored."""

    alias: str | None = None
    split: dict[str, float] | None = None  # alias → weight (any positive numbers; 90/10 = 0.9/0.1)
    sticky: Literal["user", "session", "none"] = "user"
    shadow: str | None = None
    shadow_sample: float = Field(default=1.0, gt=0, le=1)  # share of requests copied to the shadow

    @field_validator("split")
    @classmethod
    def _arms(cls, split: dict[str, float] | None) -> dict[str, float] | None:
        if split is not None:
            if len(split) < 2:
                raise ValueError("a split needs at least two arms, e.g. {small: 90, large: 10}; "
                                 "for one alias write `alias: NAME`")
            bad = [f"{name}: {weight}" for name, weight in split.items() if not weight > 0]
            if bad:
                raise ValueError(f"split weights must be positive numbers (got {', '.join(bad)})")
        return split

    @model_validator(mode="after")
    def _one_target(self) -> RouteConfig:
        if (self.alias is None) == (self.split is None):
            raise ValueError("a route needs exactly one of `alias: NAME` or `split: {a: 90, b: 10}`")
        return self

    @property
    def arms(self) -> dict[str, float]:
        """Alias → share of traffic (sums to 1)."""
        if self.split is None:
            return {str(self.alias): 1.0}
        total = sum(self.split.values())
        return {name: weight / total for name, weight in self.split.items()}


class Config(Section):
    store: str | None = None  # sqlite:///… or postgresql://…; default: <project>/.flywheel/flywheel.db
    models: dict[str, ModelAlias] = Field(default_factory=lambda: {"default": ModelAlias(provider="extractive")})
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    tracing: TracingConfig = Field(default_factory=TracingConfig)
    apps: dict[str, AppConfig] = Field(default_factory=dict)
    server: ServerConfig = Field(default_factory=ServerConfig)
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    review: ReviewConfig = Field(default_factory=ReviewConfig)
    routes: dict[str, RouteConfig] = Field(default_factory=dict)  # route name → alias / split / shadow

    @field_validator("models")
    @classmethod
    def _default_alias(cls, v: dict[str, ModelAlias]) -> dict[str, ModelAlias]:
        v.setdefault("default", ModelAlias(provider="extractive"))
        for name, alias in v.items():
            for fb in alias.fallbacks:
                if fb not in v:
                    raise ValueError(unknown_alias(fb, v, used_by=f"alias '{name}'", verb="falls back to").message)
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
        if config is not None and lines is None:  # built in Python: the same checks as a loaded flywheel.yaml
            check_apps(self.config, self.config_path, self._lines)

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
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, path, lines) from None
    check_apps(config, path, lines)
    return config, lines


def check_apps(config: Config, file: Path | str, lines: dict) -> None:
    """What the schema alone cannot say about `apps:` — each app's kind exists, its options fit its kind, its
    model and guard fallbacks are defined aliases — checked when the config loads, with file:line."""
    check_routes(config, file, lines)
    for name, app in config.apps.items():
        at = ("apps", name)
        if app.model not in config.models and app.model not in config.routes:
            raise unknown_alias(app.model, config.models, where=where(file, lines, (*at, "model")),
                                used_by=f"app '{name}'", error=ConfigError)
        for stage in ("input", "output", "sources"):
            for i, spec in enumerate(getattr(app.guards, stage)):
                _check_on_fail(spec, stage, where(file, lines, (*at, "guards", stage, i, "on_fail")))
                if spec.fallback is not None and spec.fallback not in config.models:
                    raise unknown_alias(spec.fallback, config.models, error=ConfigError,
                                        where=where(file, lines, (*at, "guards", stage, i, "fallback")),
                                        used_by=f"guard `{spec.check}`", verb="falls back to")
        schema = APP_OPTIONS.get(app.kind)
        if schema is None:
            kinds = set(APP_OPTIONS) | names_in_group("flywheel.apps")
            if app.kind not in kinds:
                raise unknown_name("kind", app.kind, kinds, where=where(file, lines, (*at, "kind")),
                                   used_by=f"app '{name}'", error=ConfigError,
                                   hint="install the plugin that provides it, or use a built-in kind")
            continue
        unknown = sorted(set(app.options) - set(schema.model_fields))
        if unknown:
            raise ConfigError(f"unknown option(s) for app '{name}': {', '.join(unknown)}",
                              where=where(file, lines, (*at, "options", unknown[0])),
                              hint=f"{app.kind} options are {', '.join(schema.model_fields)}; {_OPTION_HINTS[app.kind]}")
        try:
            schema.model_validate(app.options)
        except ValidationError as exc:
            err = validation_error(exc, file, lines, prefix=(*at, "options"))
            raise ConfigError(err.message, where=err.where, hint=_OPTION_HINTS[app.kind]) from None


def _check_on_fail(spec: GuardSpec, stage: str, at: str) -> None:
    allowed = SOURCE_ACTIONS if stage == "sources" else GUARD_ACTIONS
    if spec.on_fail not in allowed:
        what = "does not apply to retrieved sources" if spec.on_fail in GUARD_ACTIONS else "is unknown"
        raise ConfigError(f"unknown on_fail action `{spec.on_fail}` for guard `{spec.check}` ({what})", where=at,
                          hint=f"use one of: {', '.join(allowed)}")
    if stage == "input" and spec.on_fail in OUTPUT_ONLY_ACTIONS:
        raise ConfigError(f"on_fail `{spec.on_fail}` only applies to output guards (it regenerates the answer)",
                          where=at, hint="use block, redact, fix, refrain or log-only")


def check_routes(config: Config, file: Path | str, lines: dict) -> None:
    """`routes:` name defined aliases (arms and shadow), and no route shadows an alias of the same name."""
    for name, route in config.routes.items():
        at = ("routes", name)
        if name in config.models:
            raise ConfigError(f"route '{name}' has the name of a model alias, so requests for it are ambiguous",
                              where=where(file, lines, at), hint="rename the route or the alias")
        targets = [("alias", route.alias)] if route.split is None else [("split", a) for a in route.split]
        if route.shadow is not None:
            targets.append(("shadow", route.shadow))
        for key, alias in targets:
            if alias not in config.models:
                path = (*at, key, alias) if key == "split" else (*at, key)
                raise unknown_alias(str(alias), config.models, where=where(file, lines, path),
                                    used_by=f"route '{name}'", error=ConfigError)
