"""Stored prompt versions and labels: what each version said, and which version `production` (or any label) uses.

    versions = PromptVersions(store)
    versions.record(prompt)                            # once per distinct (name, version); returns True if new
    versions.set_label("docs_qa", "3f2a9c", "production")
    prompt = versions.load("docs_qa", label="production")  # the stored content, even if the file moved on
    versions.rollback("docs_qa", "production")          # back to the version it pointed at before

A reference to a version (`resolve`) is a label, a full version or a unique prefix of one (at least 4 characters).
Labels keep their history: a rollback undoes the last move, a second rollback the one before it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from flywheel.errors import UserError
from flywheel.prompts.prompt import Prompt
from flywheel.protocols import StoreLike
from flywheel.registry import did_you_mean
from flywheel.text import scrub_secrets

LABEL = re.compile(r"[^\W\d_][\w.-]{0,99}")  # a letter of any script (production, 生产), then letters, digits, _ . -
MIN_PREFIX = 4


@dataclass(frozen=True)
class StoredVersion:
    name: str
    version: str
    content: dict[str, Any]
    description: str
    path: str | None
    source_text: str | None
    created_at: float

    def prompt(self, label: str | None = None) -> Prompt:
        return Prompt.from_content(self.name, self.content, description=self.description, path=self.path,
                                   label=label)


def _tables(store: StoreLike) -> tuple[Any, Any]:
    from flywheel.store.schema_prompts import prompt_labels, prompt_versions

    return prompt_versions, prompt_labels


RESERVED = frozenset({"file"})  # `file` names the prompt file as it is now, in the CLI


def check_label(label: str, *, where: str | None = None) -> str:
    if label in RESERVED:
        raise UserError(f"'{label}' cannot be a label: it means the prompt file as it is now", where=where,
                        hint="choose another name, e.g. production or staging")
    if not LABEL.fullmatch(label or ""):
        raise UserError(f"invalid label {label!r}", where=where,
                        hint="a label starts with a letter and has letters, digits, '_', '.' or '-' (e.g. production)")
    return label


def _unknown(what: str, ref: str, prompt: str, choices: Iterable[str], *, where: str | None, hint: str,
             plural: str | None = None) -> UserError:
    """"prompt 'x' has no label 'prodution' — did you mean 'production'? (known labels: production)"."""
    known = sorted(set(choices))
    close = did_you_mean(ref, known)
    plural = plural or f"{what}s"
    message = f"prompt '{prompt}' has no {what} '{ref}'"
    if close:
        message += " — did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
    message += f" (known {plural}: {', '.join(known)})" if known else f" (it has no {plural} yet)"
    return UserError(message, where=where, hint=hint)


def _contains_secret(content: Any) -> bool:
    if isinstance(content, str):
        return scrub_secrets(content) != content
    if isinstance(content, dict):
        return any(_contains_secret(v) for v in content.values())
    if isinstance(content, list):
        return any(_contains_secret(v) for v in content)
    return False


def check_storable(prompt: Prompt) -> tuple[dict[str, Any], str | None]:
    """(content, file text) to store for `prompt`; a UserError when either looks like it holds a secret."""
    content = prompt.content()
    source_text = _source_text(prompt)
    if _contains_secret(content) or (source_text and _contains_secret(source_text)):
        raise UserError(f"prompt '{prompt.name}' looks like it contains a secret (an API key or password); "
                        "it was not stored", where=prompt.path,
                        hint="remove the secret from the prompt file; prompts are stored and shown in full")
    return content, source_text


class PromptVersions:
    """Versions and labels of the prompts in one store."""

    def __init__(self, store: StoreLike):
        self.store = store
        self.versions_table, self.labels_table = _tables(store)

    # ---------------------------------------------------------------- versions
    def record(self, prompt: Prompt, *, now: float | None = None) -> bool:
        """Store `prompt`'s version unless it is there already; True when it was new."""
        vt = self.versions_table
        with self.store.engine.connect() as conn:
            found = conn.execute(select(vt.c.id).where(vt.c.name == prompt.name, vt.c.version == prompt.version))
            if found.first() is not None:
                return False
        content, source_text = check_storable(prompt)
        row = {"name": prompt.name, "version": prompt.version, "content": content,
               "description": prompt.description or None, "path": prompt.path, "source_text": source_text,
               "created_at": time.time() if now is None else now}
        try:
            with self.store.engine.begin() as conn:
                conn.execute(insert(vt).values(**row))
        except IntegrityError:  # recorded by another process in the meantime
            return False
        return True

    def versions(self, name: str | None = None) -> list[StoredVersion]:
        """Stored versions (of `name`, or of every prompt), newest first."""
        vt = self.versions_table
        query = select(vt).order_by(vt.c.created_at.desc(), vt.c.id.desc())
        if name is not None:
            query = query.where(vt.c.name == name)
        with self.store.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [StoredVersion(r["name"], r["version"], dict(r["content"]), r["description"] or "", r["path"],
                              r["source_text"], r["created_at"]) for r in rows]

    def names(self) -> list[str]:
        vt = self.versions_table
        with self.store.engine.connect() as conn:
            return sorted(conn.execute(select(vt.c.name).distinct()).scalars())

    def get(self, name: str, version: str, *, where: str | None = None) -> StoredVersion:
        """The stored version `version` (or a unique prefix of it) of prompt `name`."""
        stored = self.versions(name)
        exact = [v for v in stored if v.version == version]
        if exact:
            return exact[0]
        matches = [v for v in stored if len(version) >= MIN_PREFIX and v.version.startswith(version)]
        if len(matches) == 1:
            return matches[0]
        if not stored:
            raise UserError(f"prompt '{name}' has no stored versions", where=where,
                            hint=f"record the current file with `flywheel prompts register`; stored prompts: "
                                 f"{', '.join(self.names()) or 'none'}")
        if len(matches) > 1:
            raise UserError(f"version prefix '{version}' of prompt '{name}' is ambiguous", where=where,
                            hint=f"it matches {', '.join(v.version for v in matches)}; give more characters")
        short = len(version) < MIN_PREFIX and any(v.version.startswith(version) for v in stored)
        raise _unknown("version", version, name, [v.version for v in stored], where=where,
                       hint=f"a version prefix needs at least {MIN_PREFIX} characters" if short
                       else "`flywheel prompts list` shows the versions and labels")

    # ---------------------------------------------------------------- labels
    def _events(self, name: str | None = None) -> list[dict[str, Any]]:
        lt = self.labels_table
        query = select(lt).order_by(lt.c.id)
        if name is not None:
            query = query.where(lt.c.name == name)
        with self.store.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    @staticmethod
    def _stacks(events: Iterable[dict[str, Any]]) -> dict[tuple[str, str], list[str]]:
        """(name, label) → the versions it pointed at, oldest first; the last one is current."""
        stacks: dict[tuple[str, str], list[str]] = {}
        for e in events:
            stack = stacks.setdefault((e["name"], e["label"]), [])
            if e["action"] == "rollback":
                if stack:
                    stack.pop()
                if not stack or stack[-1] != e["version"]:
                    stack.append(e["version"])
            else:
                stack.append(e["version"])
        return stacks

    def labels(self, name: str | None = None) -> dict[str, dict[str, str]]:
        """prompt name → {label: version it points at now}."""
        out: dict[str, dict[str, str]] = {}
        for (prompt, label), stack in sorted(self._stacks(self._events(name)).items()):
            if stack:
                out.setdefault(prompt, {})[label] = stack[-1]
        return out

    def history(self, name: str, label: str) -> list[dict[str, Any]]:
        return [e for e in self._events(name) if e["label"] == label]

    def label_version(self, name: str, label: str, *, where: str | None = None) -> str:
        """The version `label` of prompt `name` points at; an unknown label lists the known ones."""
        current = self.labels(name).get(name, {})
        if label not in current:
            raise _unknown("label", label, name, current, where=where,
                           hint=f"set it with `flywheel prompts label {name} VERSION --as {label}`")
        return current[label]

    def resolve(self, name: str, ref: str, *, where: str | None = None) -> str:
        """A label, a version or a unique version prefix → the full version."""
        current = self.labels(name).get(name, {})
        if ref in current:
            return current[ref]
        stored = self.versions(name)
        if any(v.version == ref or (len(ref) >= MIN_PREFIX and v.version.startswith(ref)) for v in stored):
            return self.get(name, ref, where=where).version
        choices = [*current, *(v.version for v in stored)]
        if not choices:
            raise UserError(f"prompt '{name}' has no stored versions or labels", where=where,
                            hint="record the current file with `flywheel prompts register`")
        short = len(ref) < MIN_PREFIX and any(v.version.startswith(ref) for v in stored)
        raise _unknown("version or label", ref, name, choices, where=where, plural="versions and labels",
                       hint=f"a version prefix needs at least {MIN_PREFIX} characters" if short
                       else "`flywheel prompts list` shows the versions and labels")

    def set_label(self, name: str, ref: str, label: str, *, actor: str | None = None,
                  now: float | None = None) -> tuple[str | None, str]:
        """Point `label` at the version `ref` names; returns (previous version or None, new version)."""
        check_label(label)
        version = self.resolve(name, ref)
        previous = self.labels(name).get(name, {}).get(label)
        if previous != version:  # re-setting it is no move: a rollback must still go to the version before
            self._append(name, label, version, "set", actor, now)
        return previous, version

    def rollback(self, name: str, label: str = "production", *, actor: str | None = None,
                 now: float | None = None) -> tuple[str, str]:
        """Move `label` back to the version it pointed at before its last move; returns (from, to)."""
        stack = self._stacks(self._events(name)).get((name, label), [])
        if not stack:
            self.label_version(name, label)  # raises: unknown label, with the known ones
        if len(stack) < 2:
            raise UserError(f"label '{label}' of prompt '{name}' has no earlier version to roll back to",
                            hint=f"it has only ever pointed at {stack[-1]}; set another version with "
                                 f"`flywheel prompts label {name} VERSION --as {label}`")
        self._append(name, label, stack[-2], "rollback", actor, now)
        return stack[-1], stack[-2]

    def _append(self, name: str, label: str, version: str, action: str, actor: str | None,
                now: float | None) -> None:
        with self.store.engine.begin() as conn:
            conn.execute(insert(self.labels_table).values(
                name=name, label=label, version=version, action=action, actor=actor,
                created_at=time.time() if now is None else now))

    # ---------------------------------------------------------------- loading
    def load(self, name: str, *, label: str | None = None, version: str | None = None,
             where: str | None = None) -> Prompt:
        """The stored prompt `name` at `label` (or `version`)."""
        if label is not None:
            version = self.label_version(name, label, where=where)
        if version is None:
            raise UserError(f"say which version of prompt '{name}' to load", hint="pass label=… or version=…")
        return self.get(name, version, where=where).prompt(label=label)


def _source_text(prompt: Prompt) -> str | None:
    """The text of the file the prompt came from, when the file still holds this version (it may have been
    edited since it was loaded)."""
    if not prompt.path or prompt.label is not None:
        return None
    from flywheel.prompts.registry import load_prompt_file

    try:
        text = Path(prompt.path).read_text(encoding="utf-8")
        return text if load_prompt_file(prompt.path).version == prompt.version else None
    except (OSError, UnicodeDecodeError, UserError):
        return None
