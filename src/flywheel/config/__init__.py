"""flywheel.yaml: schema (config/models.py), loading with file:line errors and ${ENV} interpolation
(config/yaml_io.py), project folders and the checks the schema alone cannot make (here)."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from flywheel.config.model_checks import check_models
from flywheel.config.models import *  # the schema is part of flywheel.config's API
from flywheel.config.models import (
    _OPTION_HINTS,
    APP_OPTIONS,
    GUARD_ACTIONS,
    OUTPUT_ONLY_ACTIONS,
    SOURCE_ACTIONS,
    Config,
)
from flywheel.config.yaml_io import *
from flywheel.config.yaml_io import anchored, interpolate, read_yaml, validation_error, where
from flywheel.errors import ConfigError
from flywheel.registry import names_in_group, unknown_alias, unknown_name

CONFIG_NAME = "flywheel.yaml"
DATA_DIR = ".flywheel"


class Project:
    """A project folder: its flywheel.yaml (optional) and its data folder `.flywheel/`."""

    def __init__(self, root: str | Path = ".", config: Config | None = None, lines: dict | None = None):
        self.root = Path(root).resolve()
        self.config_path = self.root / CONFIG_NAME
        self._shown_path = Path(root) / CONFIG_NAME  # as the loader names it in errors (relative when root is)
        self.data_dir = self.root / DATA_DIR
        self.config = config if config is not None else Config()
        self._lines = lines or {}
        if config is not None and lines is None:  # built in Python: the same checks as a loaded flywheel.yaml
            check_apps(self.config, self.config_path, self._lines)
            anchor_local_models(self.config, self.config_path, self._lines)

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
            return f"{prefix}:///{anchored(path, self.root)}"  # relative to the project; `~` is the home folder
        return url

    def where(self, *path: str | int) -> str:
        """file:line of a key path in flywheel.yaml, for error messages (the nearest known parent)."""
        return where(self._shown_path, self._lines, path)

    def defines(self, *path: str | int) -> bool:
        """Whether flywheel.yaml itself sets this key path (a default filled in by flywheel does not count)."""
        return tuple(path) in self._lines


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
        raise validation_error(exc, path, lines, schema=Config) from None
    check_apps(config, path, lines)
    anchor_local_models(config, path, lines)
    return config, lines


def check_apps(config: Config, file: Path | str, lines: dict) -> None:
    """What the schema alone cannot say about `apps:` — each app's kind exists, its options fit its kind, its
    model and guard fallbacks are defined aliases — checked when the config loads, with file:line (its `prompt:`
    is checked when the runtime is built: apps.app_prompts)."""
    check_routes(config, file, lines)
    check_models(config, file, lines)
    for name, app in config.apps.items():
        at = ("apps", name)
        if app.model not in config.models and app.model not in config.routes:
            raise unknown_alias(app.model, config.models, where=where(file, lines, (*at, "model")),
                                used_by=f"app '{name}'", error=ConfigError)
        for stage in ("input", "output", "sources"):
            for i, spec in enumerate(getattr(app.guards, stage)):
                check_on_fail(spec.check, spec.on_fail, stage, where(file, lines, (*at, "guards", stage, i, "on_fail")))
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
            options = schema.model_validate(app.options)
        except ValidationError as exc:
            err = validation_error(exc, file, lines, prefix=(*at, "options"), schema=schema)
            raise ConfigError(err.message, where=err.where, hint=_OPTION_HINTS[app.kind]) from None
        rerank = getattr(options, "rerank", None)
        if rerank is not None and rerank.model is None:  # a cross-encoder can only be passed in Python
            raise ConfigError(f"app '{name}': `options.rerank` names no model alias; a cross-encoder can only be "
                              "given in Python (DocsQA(cross_encoder=…))",
                              where=where(file, lines, (*at, "options", "rerank")),
                              hint="set `rerank: {model: ALIAS}` to re-rank with a model alias")
        for key in ("query", "rerank"):  # docs_qa's transform and re-rank aliases
            alias = getattr(getattr(options, key, None), "model", None)
            if isinstance(alias, str) and alias not in config.models and alias not in config.routes:
                raise unknown_alias(alias, config.models, where=where(file, lines, (*at, "options", key, "model")),
                                    used_by=f"app '{name}'", error=ConfigError)


def check_on_fail(check: str, on_fail: str, stage: str, at: str | None) -> None:
    """A guard's on_fail is one its stage can take (flywheel.yaml when it loads, GuardPolicy for Python specs)."""
    allowed = SOURCE_ACTIONS if stage == "sources" else GUARD_ACTIONS
    if on_fail in allowed and not (stage == "input" and on_fail in OUTPUT_ONLY_ACTIONS):
        return
    hint = f"use one of: {', '.join(allowed)}"
    if stage == "sources" and on_fail in GUARD_ACTIONS:
        message = f"on_fail `{on_fail}` does not apply to retrieved sources (guard `{check}`)"
    elif stage != "sources" and on_fail in SOURCE_ACTIONS:
        message = f"on_fail `{on_fail}` only applies to `sources:` guards (it removes retrieved passages)"
    elif on_fail in OUTPUT_ONLY_ACTIONS:
        message = f"on_fail `{on_fail}` only applies to output guards (it regenerates the answer)"
        hint = "use block, redact, fix, refrain or log-only"
    else:
        message = f"unknown on_fail action `{on_fail}` for guard `{check}`"
    raise ConfigError(message, where=at, hint=hint)


def anchor_local_models(config: Config, file: Path | str, lines: dict) -> None:
    """Paths in flywheel.yaml are relative to its folder (the project), so the same config works from any working
    directory: a `transformers` alias's `model:` folder (a relative one that is not a folder there and does not
    start with `.` is the id of a model in the Hugging Face cache) and `retrieval.embedder_model`. Routers'
    folders are anchored by check_routes, trained checks' `path:` by the check (flywheel.checks.trained)."""
    base = Path(file).resolve().parent
    at = ("retrieval", "embedder_model")
    config.retrieval.anchor(file, where(file, lines, at) if at in lines else None)  # of `embedder: local`
    for name, alias in config.models.items():
        if alias.provider != "transformers":
            continue
        alias._where = where(file, lines, ("models", name, "model")) if lines else None  # None: built in Python
        folder = anchored(alias.model, base)
        if alias.model.startswith((".", "~", "/")) or folder.is_dir():
            alias.model = str(folder)


def check_routes(config: Config, file: Path | str, lines: dict) -> None:
    """`routes:` name defined aliases (arms and shadow), and no route shadows an alias of the same name."""
    for name, route in config.routes.items():
        at = ("routes", name)
        if name in config.models:
            raise ConfigError(f"route '{name}' has the name of a model alias, so requests for it are ambiguous",
                              where=where(file, lines, at), hint="rename the route or the alias")
        targets = [("alias", route.alias)] if route.split is None else [("split", a) for a in route.split]
        if route.router is not None:
            targets = [("router", route.router.small), ("router", route.router.strong)]
            route.router.anchor(file, where(file, lines, (*at, "router", "model")))
        if route.shadow is not None:
            if route.shadow == route.alias:  # every copied request would go to the model that just answered it
                raise ConfigError(f"route '{name}': shadow `{route.shadow}` is also the alias that serves it, so "
                                  "each request would be sent to it twice", where=where(file, lines, (*at, "shadow")),
                                  hint="shadow a candidate you are not serving yet, or remove `shadow:`")
            targets.append(("shadow", route.shadow))
        for key, alias in targets:
            if alias not in config.models:
                path = (*at, key, alias) if key == "split" else (*at, key)
                raise unknown_alias(str(alias), config.models, where=where(file, lines, path),
                                    used_by=f"route '{name}'", error=ConfigError)
