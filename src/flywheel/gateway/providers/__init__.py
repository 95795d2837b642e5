"""Provider registry: provider name → factory building one provider per model alias.

Built-in providers are registered as "module:attribute" strings and imported on first use, so
importing the gateway never imports the openai / anthropic SDKs (or the extractive model) until an
alias needs them. Other layers add providers with `register(name, factory)`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from flywheel.errors import UserError
from flywheel.gateway.providers.base import (
    BaseProvider,
    Provider,
    ProviderError,
    ProviderResponse,
    estimate_tokens,
    request_messages,
)

Factory = Callable[[Any], Provider]  # factory(alias: ModelAlias) -> Provider

_FACTORIES: dict[str, Factory | str] = {
    "openai_compat": "flywheel.gateway.providers.openai_compat:OpenAICompatProvider",
    "anthropic": "flywheel.gateway.providers.anthropic:AnthropicProvider",
    "extractive": "flywheel.gateway.providers.extractive:ExtractiveProvider",
}


def register(name: str, factory: Factory | str) -> None:
    """Register (or replace) the factory for a provider name; a "module:attr" string is imported lazily."""
    _FACTORIES[name] = factory


def names() -> list[str]:
    return sorted(_FACTORIES)


def resolve_factory(name: str, factories: dict[str, Factory | str] | None = None) -> Factory:
    """The factory for `name`, importing it on first use (and remembering the import)."""
    table = factories if factories is not None else _FACTORIES
    entry = table.get(name, _FACTORIES.get(name))
    if entry is None:
        known = sorted(set(_FACTORIES) | set(table))
        raise UserError(f"unknown model provider '{name}'; known providers: {', '.join(known)}",
                        hint="set `provider:` on the alias to one of those, or register yours with "
                             "Gateway.register_provider(name, factory)")
    if isinstance(entry, str):
        module_name, _, attr = entry.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            raise UserError(f"provider '{name}' is not available: {exc}",
                            hint="install the package it needs (pip install -e '.[…]')") from None
        entry = getattr(module, attr)
        table[name] = entry
    return entry


__all__ = ["BaseProvider", "Factory", "Provider", "ProviderError", "ProviderResponse", "estimate_tokens",
           "names", "register", "request_messages", "resolve_factory"]
