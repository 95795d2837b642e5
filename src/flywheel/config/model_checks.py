"""Checks of model aliases that depend on the provider (and, for cloud endpoints, on the environment), made when
flywheel.yaml loads so a mistake is reported at the alias's file:line rather than on its first call."""

from __future__ import annotations

import os
from pathlib import Path

from flywheel.config.models import Config
from flywheel.config.yaml_io import where
from flywheel.errors import ConfigError

# alias fields that only one provider reads: set on another, they would be silently ignored
_ONLY_FOR = {"api_version": "azure", "region": "bedrock"}


def check_models(config: Config, file: Path | str, lines: dict) -> None:
    for name, alias in config.models.items():
        at = ("models", name)
        for field, provider in _ONLY_FOR.items():
            if getattr(alias, field) is not None and alias.provider != provider:
                raise ConfigError(f"model '{name}': `{field}:` applies to provider {provider}, not "
                                  f"{alias.provider}", where=where(file, lines, (*at, field)),
                                  hint=f"remove `{field}:`, or set `provider: {provider}`")
        if alias.provider == "bedrock" and not (alias.region or alias.base_url or os.environ.get("AWS_REGION")
                                                or os.environ.get("AWS_DEFAULT_REGION")):
            raise ConfigError(f"model '{name}' (provider bedrock) has no AWS region",
                              where=where(file, lines, at),
                              hint="set `region: us-east-1` (your Bedrock region) on the alias, or AWS_REGION")
        if alias.provider == "azure" and not (alias.base_url or os.environ.get("AZURE_OPENAI_ENDPOINT")):
            raise ConfigError(f"model '{name}' (provider azure) has no endpoint", where=where(file, lines, at),
                              hint="set `base_url: https://RESOURCE.openai.azure.com` on the alias "
                                   "(or AZURE_OPENAI_ENDPOINT)")
