"""Model gateway (layer 2): aliases → pinned models, retries, fallback, streaming, cost, one span per attempt."""

from flywheel.gateway.gateway import Gateway, StreamBrokenError
from flywheel.gateway.providers.base import BaseProvider, Provider, ProviderError, ProviderResponse
from flywheel.gateway.retry import RetryPolicy

__all__ = ["BaseProvider", "Gateway", "Provider", "ProviderError", "ProviderResponse", "RetryPolicy",
           "StreamBrokenError"]
