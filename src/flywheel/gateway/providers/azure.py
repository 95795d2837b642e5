"""Azure OpenAI: the openai_compat provider with Azure's URLs and credentials.

Two endpoint styles, told apart by `base_url`:

- classic: `https://RESOURCE.openai.azure.com` → `POST {base_url}/openai/deployments/{model}/chat/completions
  ?api-version={api_version}` (`model:` is the deployment name; `api_version:` defaults to `DEFAULT_API_VERSION`,
  the newest GA version of the dated API);
- v1: `https://RESOURCE.openai.azure.com/openai/v1` → `POST {base_url}/chat/completions` with the deployment as
  `model` in the body; no `api-version` unless the alias sets one (`preview` turns on preview features).

Without `base_url` the endpoint comes from AZURE_OPENAI_ENDPOINT (classic style).

Credentials (`azure_credential`): `api_key_env` names the variable; without it AZURE_OPENAI_API_KEY, then
AZURE_OPENAI_AD_TOKEN (the openai SDK's own variables), which are only sent to Azure hosts (`*.azure.com`,
`*.azure.us`, `*.azure.cn`) so an alias pointed elsewhere cannot leak them. A Microsoft Entra ID access token
(a JWT, `eyJ…`) goes as `Authorization: Bearer`; anything else is an API key and goes as `api-key` — except to a
v1 endpoint, which takes either as a bearer token (the `OpenAI` client's way, as Microsoft's v1 examples show).

Everything else is openai_compat's: the body (the deployment name as `model`, `params`, tools, `response_format`,
`n`, `stream_options.include_usage`), decoding, streaming and the error mapping. Every call goes through the
official SDK (`AzureOpenAI` for the classic style, `OpenAI` for v1); Azure's latency dwarfs the SDK's ~1 ms of
client CPU, so the pooled fast path of openai_compat is not used. A prompt refused by Azure's content filter
(HTTP 400, `code: content_filter`) fails as a client error that says so; an answer cut by the filter keeps
`finish_reason: "content_filter"`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flywheel.config import ModelAlias
from flywheel.gateway.providers.base import ProviderError, ProviderResponse
from flywheel.gateway.providers.openai_compat import OpenAICompatProvider
from flywheel.gateway.providers.sdk_errors import short, to_provider_error
from flywheel.types import ChatRequest

DEFAULT_API_VERSION = "2024-10-21"  # the newest GA version of the dated data-plane API
KEY_ENV = "AZURE_OPENAI_API_KEY"
TOKEN_ENV = "AZURE_OPENAI_AD_TOKEN"
ENDPOINT_ENV = "AZURE_OPENAI_ENDPOINT"
AZURE_HOSTS = (".azure.com", ".azure.us", ".azure.cn")  # public, US Government and China clouds
_JWT = re.compile(r"^eyJ[\w-]*\.[\w-]+\.[\w-]*$")


@dataclass(frozen=True)
class AzureCredential:
    secret: str
    bearer: bool  # True: a Microsoft Entra ID token (Authorization: Bearer); False: an API key (api-key)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"} if self.bearer else {"api-key": self.secret}

    def __repr__(self) -> str:  # never the secret
        return f"AzureCredential(bearer={self.bearer})"


@dataclass(frozen=True)
class AzureEndpoint:
    base_url: str  # what the SDK client's paths hang off: …/openai/deployments/{model} or …/openai/v1
    api_version: str | None  # the api-version query parameter; None for a v1 endpoint without one
    v1: bool


def azure_endpoint(alias: ModelAlias) -> AzureEndpoint:
    base = (alias.base_url or os.environ.get(ENDPOINT_ENV) or "").rstrip("/")
    if not base:
        raise ProviderError(f"Azure alias for deployment '{alias.model}' has no endpoint: set `base_url: "
                            f"https://RESOURCE.openai.azure.com` on it (or {ENDPOINT_ENV})", kind="config")
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        raise ProviderError(f"Azure base_url {base!r} is not an http(s) URL without a query string; use "
                            "https://RESOURCE.openai.azure.com or …/openai/v1", kind="config")
    path = parts.path.rstrip("/")
    if path.endswith("/openai/v1"):
        return AzureEndpoint(base, alias.api_version, True)
    if path.endswith("/openai"):  # the SDK's azure_endpoint with /openai already on
        base = base[: -len("/openai")]
    return AzureEndpoint(f"{base}/openai/deployments/{alias.model}", alias.api_version or DEFAULT_API_VERSION, False)


def azure_credential(alias: ModelAlias, endpoint_url: str) -> AzureCredential:
    """The secret from `api_key_env`, else AZURE_OPENAI_API_KEY / AZURE_OPENAI_AD_TOKEN for an Azure host."""
    if alias.api_key_env:
        secret = os.environ.get(alias.api_key_env)
        if not secret:
            raise ProviderError(f"environment variable {alias.api_key_env} (api_key_env of Azure deployment "
                                f"'{alias.model}') is not set", kind="config")
        return AzureCredential(secret, bool(_JWT.match(secret)))
    host = (urlsplit(endpoint_url).hostname or "").lower()
    if host.endswith(AZURE_HOSTS):
        for env in (KEY_ENV, TOKEN_ENV):
            secret = os.environ.get(env)
            if secret:
                return AzureCredential(secret, bool(_JWT.match(secret)))
        missing = f"neither {KEY_ENV} nor {TOKEN_ENV} is set"
    else:
        missing = (f"{host} is not an Azure host, so {KEY_ENV} / {TOKEN_ENV} are not sent there; name the "
                   "variable with `api_key_env:`")
    raise ProviderError(f"no credential for Azure deployment '{alias.model}': {missing}", kind="config")


class AzureProvider(OpenAICompatProvider):
    name = "azure"
    key_env = KEY_ENV

    def __init__(self, alias: ModelAlias):
        self.endpoint = azure_endpoint(alias)
        self.credential = azure_credential(alias, self.endpoint.base_url)
        super().__init__(alias)
        self._key = self.credential.secret  # SdkProvider's key lookup does not know Azure's variables

    def _lean_headers(self, alias: ModelAlias) -> dict[str, str] | None:
        return None  # every call through the SDK (see the module docstring)

    def _sdk_class(self, is_async: bool) -> type:
        import openai

        if self.endpoint.v1:
            return openai.AsyncOpenAI if is_async else openai.OpenAI
        return openai.AsyncAzureOpenAI if is_async else openai.AzureOpenAI

    def _new_client(self, cls: type) -> Any:
        query = {"api-version": self.endpoint.api_version} if self.endpoint.api_version else None
        common: dict[str, Any] = {"base_url": self.endpoint.base_url, "max_retries": 0,
                                  "timeout": self.alias.timeout}
        cred = self.credential
        if self.endpoint.v1:  # the OpenAI client, as Microsoft's v1 examples use it: key or token as a bearer
            return cls(api_key=cred.secret, default_query=query, **common)
        secret = {"azure_ad_token": cred.secret} if cred.bearer else {"api_key": cred.secret}
        return cls(api_version=self.endpoint.api_version, **secret, **common)

    # -- Azure's content filter: a refused prompt is a 400 whose error code says so
    def chat(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> ProviderResponse:
        try:
            return super().chat(alias, request, timeout)
        except ProviderError as err:
            raise content_filtered(err) from err.__cause__

    async def achat(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> ProviderResponse:
        try:
            return await super().achat(alias, request, timeout)
        except ProviderError as err:
            raise content_filtered(err) from err.__cause__

    def _open(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> Any:
        try:
            return super()._open(alias, request, timeout)
        except Exception as exc:
            raise _filtered_exc(exc) from exc

    async def _aopen(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> Any:
        try:
            return await super()._aopen(alias, request, timeout)
        except Exception as exc:
            raise _filtered_exc(exc) from exc


def _filtered_exc(exc: Exception) -> ProviderError:
    return content_filtered(to_provider_error(exc), exc)


def content_filtered(err: ProviderError, exc: BaseException | None = None) -> ProviderError:
    """`err` reworded when Azure's content filter refused the prompt (400, `code: content_filter`)."""
    if err.status != 400:
        return err
    exc = exc or err.__cause__
    body = getattr(exc, "body", None)
    code = body.get("code") if isinstance(body, dict) else None
    if code != "content_filter" and "content_filter" not in err.message and "content management policy" \
            not in err.message:
        return err
    err.kind = "client"
    err.retryable = False
    err.message = short(f"Azure content filter refused the prompt: {err.message}")
    err.args = (err.message,)
    return err
