"""One registry for everything flywheel looks up by name: checks, model providers, app kinds (layer 0).

    CHECKS: Registry[type[Check]] = Registry("check", group="flywheel.checks")
    CHECKS.register("contains", Contains)              # an object
    CHECKS.register("pii", "flywheel.checks.pii:PII")  # or "module:object", imported on first use
    CHECKS.get("contians")  # UserError: unknown check 'contians' — did you mean 'contains'?

Registering a second, different object under a taken name is an error that names both ("'x' already
registered (existing=…, new=…)"); `replace=True` says it is meant. The same object again (a module imported
twice, a lazy "module:object" string and the object it names) is not a collision.

Plugins: installed packages add entries through the entry-point groups `flywheel.checks`,
`flywheel.providers` and `flywheel.apps` (see docs/plugins.md). Entry points are read on the first lookup
that misses and on `names()`, and stay "module:object" strings until used, so an installed plugin costs
nothing until it is asked for. A plugin entry point that takes a built-in's name is not registered (the built-in
stays, a warning names both); two plugins with one name make that name an error naming both. A plugin that fails
to import, or names an object of the wrong kind or signature (`validate`), is a RegistryError naming the plugin
and its entry point when it is used; every other name keeps working.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from flywheel.errors import UserError

T = TypeVar("T")
log = logging.getLogger("flywheel.registry")

GROUPS = ("flywheel.checks", "flywheel.providers", "flywheel.apps")


_BY_GROUP: dict[str, Registry[Any]] = {}


def names_in_group(group: str) -> set[str]:
    """Every name known for an entry-point group without importing anything: the group's registry when it
    exists (built-ins and in-process registrations) and the installed plugins' entry points."""
    reg = _BY_GROUP.get(group)
    names = set(reg.names()) if reg is not None else set()
    return names | {ep.name for ep in entry_points(group=group)}


class RegistryError(UserError):
    """A name registered twice, or a lazy entry that cannot be imported."""


def did_you_mean(name: str, known: Iterable[str], *, n: int = 3) -> list[str]:
    """The known names closest to `name` (difflib ratio ≥ 0.6), best first."""
    return difflib.get_close_matches(name, sorted(set(known)), n=n, cutoff=0.6)


def unknown_name(kind: str, name: str, known: Iterable[str], *, where: str | None = None,
                 hint: str | None = None, error: type[UserError] = UserError, used_by: str | None = None,
                 verb: str = "uses", option: str | None = None) -> UserError:
    """The one "unknown <kind>" error: what was asked for, the closest names, every known name. `option`: the
    name came from that command-line option (`--app`), which is then the mistake, not the config file."""
    names = sorted(set(known))
    close = did_you_mean(name, names)
    plural = f"{kind}es" if kind.endswith("s") else f"{kind}s"
    mean = (" — did you mean " + " or ".join(f"'{c}'" for c in close) + "?") if close else ""
    if option:  # "--app 'nope': no such app; apps: a, b — did you mean …?"
        listed = f"{plural}: {', '.join(names)}" if names else f"no {plural} are defined"
        return error(f"{option} '{name}': no such {kind}; {listed}{mean}", where=where, hint=hint)
    message = f"{used_by} {verb} unknown {kind} '{name}'" if used_by else f"unknown {kind} '{name}'"
    message += mean
    message += f" (known {plural}: {', '.join(names)})" if names else f" (no {plural} are defined)"
    return error(message, where=where, hint=hint)


def unknown_alias(alias: str, known: Iterable[str], *, where: str | None = None, used_by: str | None = None,
                  verb: str = "uses", error: type[UserError] = UserError, option: str | None = None) -> UserError:
    """The one "unknown model alias" error (gateway, apps, eval suites, guards, fallbacks, `--model`)."""
    return unknown_name("model alias", alias, known, where=where, used_by=used_by, verb=verb, error=error,
                        hint="use one of those, or add it under `models:` in flywheel.yaml", option=option)


def import_object(target: str, *, what: str, where: str | None = None) -> Any:
    """The object a "module:attr.attr" string names; RegistryError saying what is missing when it cannot."""
    module_name, _, attr = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split(".") if attr else []:
            obj = getattr(obj, part)
    except ModuleNotFoundError as exc:
        raise RegistryError(f"{what} is not available: {exc}", where=where,
                            hint="install the package it needs (pip install -e '.[…]')") from None
    except AttributeError as exc:
        raise RegistryError(f"{what} points at {target!r}, which does not exist: {exc}", where=where,
                            hint="fix the entry point or the registration") from None
    except UserError as exc:  # e.g. the module registers a name that is taken
        raise RegistryError(f"{what} could not be imported: {exc.message}", where=where, hint=exc.hint) from None
    except Exception as exc:  # noqa: BLE001 - any failure of a plugin's module is that plugin's error
        raise RegistryError(f"{what} could not be imported: {type(exc).__name__}: {exc}", where=where,
                            hint="fix the module, or uninstall the package that provides it") from None
    return obj


def signature_problem(obj: Any, call: str, *args: Any, **kwargs: Any) -> str | None:
    """Why `obj` cannot be called as `call` (with these placeholder arguments), or None. Only the parameters
    are compared; an object whose signature cannot be read is trusted."""
    if not callable(obj):
        return f"is a {type(obj).__name__}, not a callable `{call}`"
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    try:
        sig.bind(*args, **kwargs)
    except TypeError as exc:
        return f"cannot be called as `{call}` ({exc})"
    return None


def _qualname(obj: Any) -> str:
    """`module:qualname` of an object, or the string itself for a lazy entry."""
    if isinstance(obj, str):
        return obj
    module = getattr(obj, "__module__", None)
    qual = getattr(obj, "__qualname__", None)
    return f"{module}:{qual}" if module and qual else repr(obj)


class Registry(Generic[T]):
    """Names → objects of one kind, with lazy "module:object" entries and an optional entry-point group."""

    def __init__(self, kind: str, *, group: str | None = None, hint: str | None = None,
                 validate: Callable[[Any], str | None] | None = None):
        """`validate(obj)`: what is wrong with an imported lazy entry (not a Check subclass, a factory with
        the wrong parameters …), or None; checked when the entry is first used."""
        self.kind = kind
        self.group = group
        self.hint = hint  # added to the "unknown" error: how to add one
        self.validate = validate
        self._entries: dict[str, T | str] = {}
        self._origin: dict[str, str] = {}  # where an entry came from, for collision messages
        self._plugins: dict[str, tuple[str, str]] = {}  # name -> (distribution, "entry point GROUP: name = mod:obj")
        self._conflicts: dict[str, RegistryError] = {}  # a name two plugins claim: an error when it is asked for
        self._plugins_loaded = group is None
        self._lock = threading.RLock()
        if group is not None:
            _BY_GROUP[group] = self

    # ---------------------------------------------------------------- adding
    def register(self, name: str, obj: T | str, *, replace: bool = False, origin: str | None = None) -> None:
        """Add `obj` (or a lazy "module:object" string) under `name`."""
        if not name:
            raise RegistryError(f"a {self.kind} needs a non-empty name (got {name!r} for {_qualname(obj)})")
        with self._lock:
            existing = self._entries.get(name)
            if existing is not None and not replace and _qualname(existing) != _qualname(obj):
                raise RegistryError(
                    f"{self.kind} '{name}' already registered "
                    f"(existing={self._origin.get(name) or _qualname(existing)}, new={origin or _qualname(obj)})",
                    hint="pick another name, or pass replace=True if replacing it is meant")
            if existing is not None and not isinstance(existing, str) and isinstance(obj, str) and not replace:
                return  # already imported: keep the object
            self._entries[name] = obj
            self._origin[name] = origin or _qualname(obj)

    def add(self, name: str | None = None, *, replace: bool = False) -> Callable[[T], T]:
        """Decorator form: `@REG.add("name")`; without a name, the object's `name` attribute is used."""

        def deco(obj: T) -> T:
            self.register(name or str(getattr(obj, "name", "")), obj, replace=replace)
            return obj

        return deco

    def unregister(self, name: str) -> None:
        with self._lock:
            self._entries.pop(name, None)
            self._origin.pop(name, None)
            self._plugins.pop(name, None)
            self._conflicts.pop(name, None)

    # ---------------------------------------------------------------- plugins
    def load_plugins(self) -> None:
        """Register the group's entry points (lazily: nothing is imported here). Runs once."""
        if self._plugins_loaded:
            return
        with self._lock:
            if self._plugins_loaded:
                return
            self._plugins_loaded = True
            for ep in entry_points(group=self.group or ""):
                dist = getattr(getattr(ep, "dist", None), "name", None) or "?"
                origin = f"{ep.value} (plugin {dist})"
                existing = self._entries.get(ep.name)
                if existing is not None and _qualname(existing) != ep.value:
                    taken = f"existing={self._origin.get(ep.name) or _qualname(existing)}, new={origin}"
                    if ep.name in self._plugins:  # two plugins, one name: neither is meant more than the other
                        self._conflicts[ep.name] = RegistryError(
                            f"{self.kind} '{ep.name}' is claimed by two plugins ({taken})",
                            hint=f"uninstall one of them (pip uninstall {dist}), or rename its entry point")
                    else:  # a built-in (or a registration made in Python) keeps its name
                        log.warning("flywheel: ignoring plugin %s (entry point %s: %s = %s); %s '%s' already "
                                    "registered (%s): rename it in the plugin", dist, self.group, ep.name, ep.value,
                                    self.kind, ep.name, taken)
                    continue
                self.register(ep.name, ep.value, origin=origin)
                self._plugins[ep.name] = (dist, f"entry point {self.group}: {ep.name} = {ep.value}")

    # ---------------------------------------------------------------- lookup
    def get(self, name: str, *, where: str | None = None) -> T:
        """The object for `name` (imported now if it was lazy); UserError with suggestions when unknown."""
        entry = self._entries.get(name)
        if entry is None:
            self.load_plugins()
            entry = self._entries.get(name)
        if name in self._conflicts:
            conflict = self._conflicts[name]
            raise RegistryError(conflict.message, where=where, hint=conflict.hint)
        if entry is None:
            raise unknown_name(self.kind, name, self.names(), where=where, hint=self.hint)
        if isinstance(entry, str):
            return self._import(name, entry, where)
        return entry

    def _import(self, name: str, target: str, where: str | None) -> T:
        dist, entry_point = self._plugins.get(name, (None, None))
        what = f"{self.kind} '{name}' of plugin {dist} ({entry_point})" if dist else f"{self.kind} '{name}'"
        hint = f"fix the plugin, or uninstall it (pip uninstall {dist})" if dist else None
        try:
            obj = import_object(target, what=what, where=where)
        except RegistryError as exc:
            raise RegistryError(exc.message, where=where, hint=hint or exc.hint) from None
        with self._lock:
            current = self._entries.get(name)
            if current is not None and not isinstance(current, str):
                obj = current  # importing it registered the object itself (a decorator): keep that one
            problem = self.validate(obj) if self.validate is not None else None
            if problem:  # the entry stays lazy: every use says what is wrong, other names are unaffected
                if current is not None and not isinstance(current, str):
                    self._entries[name] = target
                raise RegistryError(f"{what}: {target} {problem}", where=where,
                                    hint=hint or "fix the registration")
            if current == target:
                self._entries[name] = obj
        return obj  # type: ignore[no-any-return]

    def names(self) -> list[str]:
        self.load_plugins()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def items(self) -> list[tuple[str, T]]:
        """Every entry, imported."""
        return [(name, self.get(name)) for name in self.names()]

    def raw(self, name: str) -> T | str | None:
        """The entry as registered (a "module:object" string while not imported yet), or None."""
        return self._entries.get(name)
