"""Provider registry: provider name → factory building one provider per model alias.

Built-in providers are registered as "module:attribute" strings and imported on first use, so
importing the gateway never imports the openai / anthropic SDKs (or the extractive model) until an
alias needs them. Other layers add providers with `register(name, factory)`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flywheel.gateway.providers.base import (
    BaseProvider,
    Provider,
    ProviderError,
    ProviderResponse,
    estimate_tokens,
    request_messages,
)
from flywheel.registry import Registry, import_object, signature_problem, unknown_name

Factory = Callable[[Any], Provider]  # factory(alias: ModelAlias) -> Provider

PROVIDERS: Registry[Factory] = Registry(
    "model provider", group="flywheel.providers",
    hint="set `provider:` on the alias to one of those, or register yours (docs/plugins.md)",
    validate=lambda factory: signature_problem(factory, "factory(alias)", None))
PROVIDERS.register("openai_compat", "flywheel.gateway.providers.openai_compat:OpenAICompatProvider")
PROVIDERS.register("anthropic", "flywheel.gateway.providers.anthropic:AnthropicProvider")
PROVIDERS.register("azure", "flywheel.gateway.providers.azure:AzureProvider")
PROVIDERS.register("bedrock", "flywheel.gateway.providers.bedrock:BedrockProvider")
PROVIDERS.register("extractive", "flywheel.gateway.providers.extractive:ExtractiveProvider")
PROVIDERS.register("transformers", "flywheel.gateway.providers.transformers_local:TransformersProvider")


def register(name: str, factory: Factory | str) -> None:
    """Register (or replace) the factory for a provider name; a "module:attr" string is imported lazily."""
    PROVIDERS.register(name, factory, replace=True)


def names() -> list[str]:
    return PROVIDERS.names()


def resolve_factory(name: str, factories: dict[str, Factory | str] | None = None) -> Factory:
    """The factory for `name`: a gateway's own `factories` first (imported on first use and remembered there),
    then the registry (built-ins and `flywheel.providers` plugins)."""
    factories = factories if factories is not None else {}
    entry = factories.get(name)
    if entry is None:
        if name not in PROVIDERS:
            PROVIDERS.load_plugins()
        if name not in PROVIDERS and factories:
            raise unknown_name("model provider", name, {*PROVIDERS.names(), *factories}, hint=PROVIDERS.hint)
        return PROVIDERS.get(name)
    if isinstance(entry, str):
        entry = import_object(entry, what=f"provider '{name}'")
        factories[name] = entry
    return entry


__all__ = ["PROVIDERS", "BaseProvider", "Factory", "Provider", "ProviderError", "ProviderResponse",
           "estimate_tokens", "names", "register", "request_messages", "resolve_factory"]
