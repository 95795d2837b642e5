"""AWS Bedrock Runtime through the Converse API: `POST {endpoint}/model/{model}/converse` and, for streams,
`/converse-stream` (AWS event-stream framing, aws_eventstream.py). Request and answer shapes: bedrock_wire.py.

Endpoint: `base_url`, else `https://bedrock-runtime.{region}.amazonaws.com`; the region is `region:` on the
alias, else AWS_REGION, else AWS_DEFAULT_REGION. `model:` is a model id, an inference profile id
(`us.anthropic.claude-…`) or an ARN.

Credentials, first found (`bedrock_auth`):

1. `api_key_env: VAR` → the Bedrock API key in VAR, sent as `Authorization: Bearer`;
2. AWS_BEARER_TOKEN_BEDROCK → the same, only to AWS hosts (`*.amazonaws.com`, `*.amazonaws.com.cn`, `*.api.aws`),
   so an alias pointed elsewhere cannot leak it;
3. AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN) → SigV4 (aws_sigv4.py: the secret never
   leaves the process, so SigV4 goes to any base_url);
4. with botocore installed (flywheel's `bedrock` extra): its credential chain (profiles, SSO, container
   and instance roles), refreshed as it expires → SigV4.

HTTP goes through httpx (proxies from the environment honoured): one sync client per alias, one async client
per alias and event loop, as the SDK-backed providers keep theirs (this class reuses `SdkProvider`'s client
cache, error mapping and stream loop). Failures are classified like every provider's: 429 (ThrottlingException)
and 5xx retryable, 4xx not, with Bedrock's error type in the message; exceptions inside a stream
(`throttlingException` …) map to the same statuses.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import flywheel
from flywheel.config import ModelAlias
from flywheel.gateway.providers.aws_eventstream import EventStreamDecoder
from flywheel.gateway.providers.aws_sigv4 import AwsCredentials, sign_v4
from flywheel.gateway.providers.base import ProviderError, ProviderResponse
from flywheel.gateway.providers.bedrock_wire import ConverseFold, converse_body, error_message, parse_converse
from flywheel.gateway.providers.sdk import SdkProvider
from flywheel.gateway.retry import parse_retry_after
from flywheel.types import ChatRequest

if TYPE_CHECKING:
    import httpx

TOKEN_ENV = "AWS_BEARER_TOKEN_BEDROCK"
AWS_HOSTS = (".amazonaws.com", ".amazonaws.com.cn", ".api.aws")
SERVICE = "bedrock"  # the SigV4 signing name of bedrock-runtime


def bedrock_region(alias: ModelAlias) -> str | None:
    return alias.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None


class BearerAuth:
    def __init__(self, token: str):
        self._token = token

    def headers(self, method: str, url: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
        return {**headers, "authorization": f"Bearer {self._token}"}

    def __repr__(self) -> str:
        return "BearerAuth(…)"


class SigV4Auth:
    """Signs each request; `credentials` is static, or botocore's (refreshable) credentials object."""

    def __init__(self, credentials: AwsCredentials | Any, region: str):
        self._credentials = credentials
        self.region = region

    def current(self) -> AwsCredentials:
        creds = self._credentials
        if isinstance(creds, AwsCredentials):
            return creds
        frozen = creds.get_frozen_credentials()  # botocore: refreshes temporary credentials when due
        return AwsCredentials(frozen.access_key, frozen.secret_key, frozen.token)

    def headers(self, method: str, url: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
        return sign_v4(method, url, headers, body, self.current(), region=self.region, service=SERVICE)

    def __repr__(self) -> str:
        return f"SigV4Auth(region={self.region!r})"


def bedrock_auth(alias: ModelAlias, endpoint: str, region: str | None) -> BearerAuth | SigV4Auth:
    """The credentials for this alias (see the module docstring for the order)."""
    if alias.api_key_env:
        token = os.environ.get(alias.api_key_env)
        if not token:
            raise ProviderError(f"environment variable {alias.api_key_env} (api_key_env of Bedrock model "
                                f"'{alias.model}') is not set", kind="config")
        return BearerAuth(token)
    host = (urlsplit(endpoint).hostname or "").lower()
    if os.environ.get(TOKEN_ENV) and host.endswith(AWS_HOSTS):
        return BearerAuth(os.environ[TOKEN_ENV])
    creds: AwsCredentials | Any = None
    if os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY"):
        creds = AwsCredentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"],
                               os.environ.get("AWS_SESSION_TOKEN") or None)
    else:
        try:
            import botocore.session
        except ImportError:
            pass
        else:
            creds = botocore.session.get_session().get_credentials()
    if creds is None:
        raise ProviderError(f"no AWS credentials for Bedrock model '{alias.model}': set {TOKEN_ENV} (a Bedrock "
                            "API key), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or name the key's variable "
                            "with `api_key_env:`; with botocore installed, AWS profiles and roles work too",
                            kind="config")
    if not region:
        raise ProviderError(f"Bedrock model '{alias.model}' needs a region to sign requests with AWS "
                            "credentials: set `region:` on the alias (or AWS_REGION)", kind="config")
    return SigV4Auth(creds, region)


class BedrockProvider(SdkProvider):
    name = "bedrock"
    key_env = TOKEN_ENV
    supports_n = False  # Converse has no `n`: the gateway sends n requests and merges them (choices.py)

    def __init__(self, alias: ModelAlias):
        region = bedrock_region(alias)
        if not alias.base_url and not region:
            raise ProviderError(f"Bedrock model '{alias.model}' has no region: set `region:` on the alias (or "
                                "AWS_REGION)", kind="config")
        self.endpoint = (alias.base_url or f"https://bedrock-runtime.{region}.amazonaws.com").rstrip("/")
        self.auth = bedrock_auth(alias, self.endpoint, region)
        super().__init__(alias)
        self._key = ""  # the credentials are `auth`'s, not SdkProvider's key lookup
        self._user_agent = f"flywheel/{flywheel.__version__}"

    # -- clients: httpx, created by SdkProvider's cache
    def _sdk_class(self, is_async: bool) -> type:
        import httpx

        return httpx.AsyncClient if is_async else httpx.Client

    def _new_client(self, cls: type) -> Any:
        return cls(timeout=self.alias.timeout, follow_redirects=False)

    # -- one request
    def _request(self, alias: ModelAlias, request: ChatRequest, stream: bool) -> tuple[str, dict[str, str], bytes]:
        url = f"{self.endpoint}/model/{quote(alias.model, safe='')}/{'converse-stream' if stream else 'converse'}"
        body = json.dumps(converse_body(alias.params, request), ensure_ascii=False).encode()
        accept = "application/vnd.amazon.eventstream" if stream else "application/json"
        headers = {"content-type": "application/json", "accept": accept}
        headers = self.auth.headers("POST", url, headers, body)
        headers["user-agent"] = self._user_agent  # not signed: clients and proxies may rewrite it
        return url, headers, body

    def _send(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> httpx.Response:
        url, headers, body = self._request(alias, request, False)
        resp = self.client.post(url, content=body, headers=headers, timeout=timeout)
        if resp.status_code >= 300:
            raise status_error(resp)
        return resp

    async def _asend(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> httpx.Response:
        url, headers, body = self._request(alias, request, False)
        resp = await self.aclient().post(url, content=body, headers=headers, timeout=timeout)
        if resp.status_code >= 300:
            raise status_error(resp)
        return resp

    def _decode(self, raw: httpx.Response) -> ProviderResponse:
        return parse_converse(raw.status_code, raw.content, self.alias.model)

    def _open(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> _Events:
        url, headers, body = self._request(alias, request, True)
        client = self.client
        resp = client.send(client.build_request("POST", url, content=body, headers=headers, timeout=timeout),
                           stream=True)
        if resp.status_code >= 300:
            try:
                resp.read()
            finally:
                resp.close()
            raise status_error(resp)
        return _Events(resp)

    async def _aopen(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> _AsyncEvents:
        url, headers, body = self._request(alias, request, True)
        client = self.aclient()
        resp = await client.send(client.build_request("POST", url, content=body, headers=headers,
                                                      timeout=timeout), stream=True)
        if resp.status_code >= 300:
            try:
                await resp.aread()
            finally:
                await resp.aclose()
            raise status_error(resp)
        return _AsyncEvents(resp)

    def _fold(self) -> ConverseFold:
        return ConverseFold()


def status_error(resp: httpx.Response) -> ProviderError:
    return ProviderError.from_status(resp.status_code, error_message(resp.status_code, resp.headers, resp.content),
                                     retry_after=parse_retry_after(resp.headers))


def _garbled(exc: ValueError) -> ProviderError:
    return ProviderError(f"garbled event stream: {exc}", kind="bad_response", retryable=True)


class _Events:
    """The (headers, payload) of each event-stream message of a streaming response; `close()` closes it."""

    def __init__(self, resp: httpx.Response):
        self.resp = resp

    def __iter__(self) -> Iterator[tuple[dict[str, str], bytes]]:
        decoder = EventStreamDecoder()
        for data in self.resp.iter_bytes():
            try:
                yield from decoder.feed(data)
            except ValueError as exc:
                raise _garbled(exc) from exc

    def close(self) -> None:
        self.resp.close()


class _AsyncEvents:
    def __init__(self, resp: httpx.Response):
        self.resp = resp

    async def __aiter__(self) -> AsyncIterator[tuple[dict[str, str], bytes]]:
        decoder = EventStreamDecoder()
        async for data in self.resp.aiter_bytes():
            try:
                for message in decoder.feed(data):
                    yield message
            except ValueError as exc:
                raise _garbled(exc) from exc

    async def close(self) -> None:
        await self.resp.aclose()
