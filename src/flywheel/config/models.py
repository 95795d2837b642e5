"""The flywheel.yaml schema: one pydantic model per section (models, retrieval, cache, apps and their options,
guards, tracing, server, monitor, review, routes)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from flywheel.config.app_options import (  # noqa: F401 - re-exported: flywheel.config.models names them
    _OPTION_HINTS,
    APP_OPTIONS,
    ChatMemoryOptions,
    ChatOptions,
    DocsQAOptions,
    Section,
    SqlQAOptions,
    SummarizeOptions,
)
from flywheel.config.retrieval_config import RetrievalConfig
from flywheel.config.yaml_io import FieldValueError, anchored
from flywheel.errors import ConfigError, UserError
from flywheel.registry import names_in_group, unknown_alias, unknown_name

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
    # USD per 1M input tokens read from / written to the provider's prompt cache; unset: the input price
    cache_read: float | None = Field(default=None, ge=0)
    cache_write: float | None = Field(default=None, ge=0)


BUILTIN_PROVIDERS = ("openai_compat", "anthropic", "extractive", "transformers", "azure", "bedrock")


class ModelAlias(Section):
    provider: str = "openai_compat"  # a built-in, or a `flywheel.providers` plugin (docs/plugins.md)
    model: str = ""
    version: str | None = None  # pinned version; recorded on every result
    base_url: str | None = None
    api_key_env: str | None = None  # name of the environment variable holding the key
    api_version: str | None = None  # azure: the `api-version` query parameter
    region: str | None = None  # bedrock: the AWS region (else AWS_REGION / AWS_DEFAULT_REGION)
    price: Price = Field(default_factory=Price)
    timeout: float = 60.0  # seconds per attempt
    max_retries: int = Field(default=2, ge=0, le=10)
    fallbacks: list[str] = Field(default_factory=list)
    params: dict[str, Any] = Field(default_factory=dict)  # extra request parameters (temperature, …)
    family: str | None = None  # prompt formatting family (openai, anthropic, qwen …); guessed when absent
    # endpoint accepts response_format json_schema; None: yes for openai_compat; "json_object": it takes the schema
    # as {type: json_object, schema} instead (llama-cpp-python's server refuses type json_schema)
    json_schema: bool | Literal["json_object"] | None = None
    _where: str | None = PrivateAttr(default=None)  # flywheel.yaml:line of `model:`, set when the config loads

    @property
    def defined_at(self) -> str | None:
        """flywheel.yaml:line of this alias's `model:` (for errors about it), when it was read from a file."""
        return self._where

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:  # plugins' names come from their entry points: nothing imported
        known = {value} if value in BUILTIN_PROVIDERS else {*BUILTIN_PROVIDERS, *names_in_group("flywheel.providers")}
        if value not in known:
            raise ValueError(unknown_name("model provider", value, known).message
                             + "; a provider plugin adds its name when installed (docs/plugins.md)")
        return value

    @model_validator(mode="after")
    def _needs_model(self) -> ModelAlias:
        if self.provider != "extractive" and not self.model:
            raise ValueError(f"provider '{self.provider}' needs `model:` (the provider's model name)")
        return self

    @property
    def pinned(self) -> str:
        name = self.model or self.provider
        return f"{name}@{self.version}" if self.version else name


class SemanticCacheConfig(Section):
    # cosine floor for candidates; 0.75 is tuned WITH the verifier (bench cache). Without it, use ≥ 0.92.
    threshold: float = Field(default=0.75, ge=0.0, le=1.0)
    verify: bool = True
    multi_turn: bool = False
    verifier_threshold: float | None = Field(default=None, ge=0.0, le=1.0)  # None: the fitted one


class CacheConfig(Section):
    exact: bool = True
    semantic: SemanticCacheConfig | None = None
    backend: str = "store"  # store | memory | redis://host:port/db (rediss://, unix://)
    ttl_s: float | None = None

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        spec = (value or "store").strip()
        if spec in ("store", "memory") or spec.startswith(("redis://", "rediss://", "unix://")):
            return spec
        raise ValueError(f"unknown cache backend {spec!r}: use store (default), memory, or redis://host:6379/0 "
                         "(rediss://, unix:// also work)")


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




class TracingConfig(Section):
    enabled: bool = True
    otlp_endpoint: str | None = None
    redact: list[str] = Field(default_factory=list)  # extra regexes to scrub from stored spans
    redact_pii: bool | list[str] = False  # mask PII in stored spans: true, or the entity types to mask
    capture_content: bool = True

    @field_validator("otlp_endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value and not re.fullmatch(r"https?://[^/\s?#]+(?:/\S*)?", value):  # "" (from ${VAR:-}) is off
            raise ValueError(f"{value!r} is not an OTLP/HTTP collector URL; write it as http://HOST:4318")
        return value

    @field_validator("redact")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        for i, pattern in enumerate(value):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"item {i} is not a valid regular expression: {exc}") from None
        return value


_ORIGIN = re.compile(r"(?:\*|https?://[^/\s?#]+)")


def validate_cors_origin(origin: str) -> str:
    """The one CORS origin check (`server.cors_origins`, `flywheel serve --cors`): `*` or scheme://host[:port], the
    form a browser's Origin header has, since anything else (a path, a trailing slash, no scheme) never matches
    and the browser blocks every call without saying why. Returns it unchanged."""
    if _ORIGIN.fullmatch(origin):
        return origin
    scheme, sep, rest = origin.partition("://")
    fixed = f"{scheme}://{rest.split('/')[0]}" if sep and scheme in ("http", "https") else f"https://{origin}"
    raise UserError(f"CORS origin {origin!r} can never match: browsers send scheme://host[:port], no path",
                    hint=f"write it as {fixed.rstrip('/')!r}")


class ServerConfig(Section):
    redis: str | None = None  # redis://host:port/db: budget and rate counters shared by every worker
    cors_origins: list[str] = Field(default_factory=list)
    max_body_mb: float = Field(default=4.0, gt=0)
    online_evaluators: bool = True  # run `monitor.online` in a background worker inside `flywheel serve`
    embed_worker: bool = True  # embed chunks that have no vector yet, in the background (after `ingest --no-embed`)
    batch_worker: bool = True  # run the Batch API's batches (/v1/batches) in the background of this server
    batch_concurrency: int = Field(default=4, ge=1, le=256)  # batch requests in flight per server process, all batches
    mcp: bool | None = None  # /mcp (MCP over streamable HTTP) in flywheel serve; None: on when the mcp extra is installed

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            try:
                validate_cors_origin(origin)
            except UserError as exc:
                raise ValueError(f"{exc.message}; {exc.hint}") from None
        return value


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
    # fields whose own personal data `flywheel promote` / `flywheel export` keep (--keep-pii's default): e.g.
    # [reference]; empty: every field masked. Secrets are always masked.
    keep_pii: list[str] = Field(default_factory=list)


class RouterSpec(Section):
    """`routes.<name>.router`: a classifier (`flywheel route train-router`) that sends each query to `small` unless
    its predicted probability that `small` fails the query is above `threshold`, then to `strong`."""

    model: str = Field(min_length=1)  # the router's folder (model.json + weights.npz), relative to flywheel.yaml
    small: str
    strong: str
    threshold: float = Field(ge=0, le=1)
    _base: str | None = PrivateAttr(default=None)  # flywheel.yaml's folder, set when the config loads

    @model_validator(mode="after")
    def _two_models(self) -> RouterSpec:
        if self.small == self.strong:
            raise ValueError(f"a router needs two different aliases (small and strong are both '{self.small}')")
        return self

    def path(self) -> Path:
        return anchored(self.model, self._base)

    def anchor(self, config_file: Path | str, where: str | None = None) -> Path:
        """Resolve `model` against the folder of `config_file`; ConfigError when no router was saved there."""
        self._base = str(Path(config_file).resolve().parent)
        folder = self.path()
        missing = [n for n in ("model.json", "weights.npz") if not (folder / n).is_file()]
        if missing:
            raise ConfigError(f"no query router in {folder} ({' and '.join(missing)} missing)", where=where,
                              hint="fix `model:` (a folder, relative to flywheel.yaml) or restore the folder; to "
                                   "train it again, take the route out of flywheel.yaml and run flywheel route "
                                   "train-router ROUTE --small A --strong B --suite S")
        return folder


class RouteConfig(Section):
    """One `routes:` entry: a name callers use like a model alias, served by `alias`, by the arms of `split`
    (weights, sticky per user or session) or per query by a trained `router`, optionally copied to a `shadow`
    alias whose answer is only stored."""

    alias: str | None = None
    split: dict[str, float] | None = None  # alias → weight (any positive numbers; 90/10 = 0.9/0.1)
    router: RouterSpec | None = None  # per query: small unless the classifier predicts it fails
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
        if sum(x is not None for x in (self.alias, self.split, self.router)) != 1:
            raise ValueError("a route needs exactly one of `alias: NAME`, `split: {a: 90, b: 10}` or "
                             "`router: {model: DIR, small: A, strong: B, threshold: T}`")
        return self

    @property
    def arms(self) -> dict[str, float]:
        """Alias → share of traffic (sums to 1); a router's share is decided per query, its default arm is small."""
        if self.router is not None:
            return {self.router.small: 1.0, self.router.strong: 0.0}
        if self.split is None:
            return {str(self.alias): 1.0}
        total = sum(self.split.values())
        return {name: weight / total for name, weight in self.split.items()}


class Config(Section):
    store: str | None = None  # sqlite:///… or postgresql://…; default: <project>/.flywheel/flywheel.db

    @field_validator("store")
    @classmethod
    def _known_store_scheme(cls, value: str | None) -> str | None:
        if value and "://" not in value:
            raise ValueError("the store is a URL: sqlite:///path/to/flywheel.db or postgresql://user@host:5432/db")
        scheme = (value or "").split(":", 1)[0].split("+", 1)[0].lower()
        if value and scheme not in ("sqlite", "postgresql", "postgres"):
            raise ValueError(f"unsupported store URL scheme {scheme!r}: use sqlite:///path/to/flywheel.db or "
                             "postgresql://user@host:5432/db")
        return value
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
            for i, fb in enumerate(alias.fallbacks):
                if fb not in v:
                    raise FieldValueError(unknown_alias(fb, v, used_by=f"alias '{name}'", verb="falls back to").message,
                                          (name, "fallbacks", i))
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




__all__ = [
    "APP_OPTIONS",
    "GUARD_ACTIONS",
    "MAX_TENANT",
    "OUTPUT_ONLY_ACTIONS",
    "SOURCE_ACTIONS",
    "AlertRule",
    "AppConfig",
    "CacheConfig",
    "ChatMemoryOptions",
    "ChatOptions",
    "Config",
    "DocsQAOptions",
    "GuardSpec",
    "GuardsConfig",
    "ModelAlias",
    "MonitorConfig",
    "OnlineEvaluatorSpec",
    "Price",
    "RetrievalConfig",
    "ReviewConfig",
    "RouteConfig",
    "RouterSpec",
    "Section",
    "SemanticCacheConfig",
    "ServerConfig",
    "SqlQAOptions",
    "SummarizeOptions",
    "TracingConfig",
    "validate_tenant",
]
