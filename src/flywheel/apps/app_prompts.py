"""`prompt:` of each app in flywheel.yaml, checked when the runtime is built (before any app runs, like the
guards; in the apps layer because the prompt registry is above the config): it names a prompt (`docs_qa`) or a prompt
file (`prompts/support.yaml`), never the prompt's text. A name that no prompt has (or prose written there) is a
ConfigError with file:line and the known prompt names, with a hint on where free text goes, instead of an app that
fails on its first request (docs_qa) or silently serves without the text (chat, which has no prompt file). A file
path is checked when the app is built, as before."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from flywheel.errors import ConfigError
from flywheel.registry import unknown_name

if TYPE_CHECKING:
    from flywheel.config import Project

PROMPT_KINDS = frozenset({"docs_qa"})  # built-in kinds that read `prompt:`; plugin kinds check their own
OTHER_KINDS = frozenset({"chat", "sql_qa", "summarize"})  # built-in kinds with no prompt file
_SENTENCE = re.compile(r"[.!?,;:…。！？，；：]")
_CJK_SENTENCE = re.compile(r"[。！？，；：]")
_SHOWN = 60  # characters of a long value shown in the message


def looks_like_prose(value: str) -> bool:
    """Whether `value` reads as prompt text rather than a prompt name or path: a line break, Chinese sentence
    punctuation, or several words with sentence punctuation (`You are ACME support. Be brief.`)."""
    text = value.strip()
    if "\n" in text or _CJK_SENTENCE.search(text):
        return True
    words = text.split()
    return len(words) >= 2 and (bool(_SENTENCE.search(text)) or len(words) >= 4)


def _shown(value: str) -> str:
    flat = " ".join(value.split())
    return flat if len(flat) <= _SHOWN else flat[:_SHOWN - 1] + "…"


def _prose_hint(name: str, kind: str) -> str:
    if kind == "chat":
        return ("`prompt:` takes a prompt name or a prompt file path, not the prompt's text; a chat app's system "
                "message goes under `options:`, e.g. `options: {system: \"You are …\"}`, with no `prompt:`")
    return ("`prompt:` takes a prompt name or a prompt file path, not the prompt's text: put the text in the "
            f"`system:` of a prompt file (copy prompts/docs_qa.yaml, which `flywheel init` writes, to "
            f"prompts/{name}.yaml and keep its template with {{{{sources}}}} and {{{{question}}}}), then set "
            f"`prompt: prompts/{name}.yaml`")


def check_app_prompts(project: Project) -> None:
    """Every app's explicit `prompt:` resolves to a prompt its kind reads (see the module docstring)."""
    from flywheel.prompts.registry import PromptRegistry, _looks_like_path

    registry = PromptRegistry(Path(project.root))
    for name, app in project.config.apps.items():
        ref = app.prompt
        if ref is None or app.kind not in PROMPT_KINDS | OTHER_KINDS:
            continue
        at = project.where("apps", name, "prompt")
        prose = looks_like_prose(ref)
        # A file path is checked when the app is built (file:line too), so commands that need no app keep working
        # while prompts/ is being written; a name pinned to a label is served from the store, maybe with no file.
        pinned = isinstance(app.options.get("prompt_label"), str)
        if app.kind in PROMPT_KINDS and not prose and (_looks_like_path(ref) or pinned):
            continue
        if app.kind in OTHER_KINDS - {"chat"}:
            raise ConfigError(f"app '{name}' is a {app.kind} app, which does not use `prompt:` ('{_shown(ref)}' would "
                              "be ignored)", where=at, hint=f"remove `prompt:`; {app.kind} apps write their own prompts")
        system_hint = "a chat app's system message goes under `options: {system: \"…\"}`; remove `prompt:`"
        try:
            registry.path_of(ref, where=at)  # a name that no prompt has: ConfigError listing the known prompts
        except ConfigError as exc:
            if prose:
                raise unknown_name("prompt", _shown(ref), registry.names(), where=at, error=ConfigError,
                                   used_by=f"app '{name}'", hint=_prose_hint(name, app.kind)) from None
            if app.kind == "chat":
                raise ConfigError(exc.message, where=at, hint=f"chat apps use no prompt file: {system_hint}") from None
            raise
        if app.kind == "chat":
            raise ConfigError(f"app '{name}' is a chat app, which does not use `prompt:` ('{ref}' would be ignored)",
                              where=at, hint=system_hint)
