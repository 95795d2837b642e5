"""The fake LLM server's HTTP/1.1 layer: blocking sockets, one thread per connection, keep-alive.

A thread per connection with plain blocking ``recv``/``sendall`` costs the fewest thread hand-offs per
request (measured faster than an asyncio loop when the client runs in the same process). Every wait
(latency, hangs, stream pauses) is ``stopping.wait(t)``, so ``stop()`` wakes them all at once and shuts
every connection down. The scripting state (rules, faults, recorded requests) lives on the FakeLLM.

Besides the OpenAI (`/v1/…`) and Anthropic (`/v1/messages`) routes it answers Azure OpenAI's
(`/openai/deployments/{deployment}/chat/completions?api-version=…` and `…/embeddings`, and the v1 style
`/openai/v1/chat/completions`, `/openai/v1/embeddings`, `/openai/v1/models`; the OpenAI wire, the key in an
`api-key` header or as a bearer token) and Bedrock Runtime's Converse and ConverseStream
(`/model/{id}/converse[-stream]`, fake_llm_bedrock.py). Requests on those routes are recorded with `auth` (the
scheme that carried the credential: `api-key`, `bearer`, `sigv4` or None), and `api_version` (Azure) or `region`
(Bedrock, from a SigV4 scope) — never the credential itself.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

from flywheel.testing import fake_llm_anthropic as anthropic
from flywheel.testing import fake_llm_bedrock as bedrock
from flywheel.testing import fake_llm_wire as wire

if TYPE_CHECKING:
    from flywheel.testing.fake_llm import FakeLLM, FaultPlan

REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           413: "Payload Too Large",
           429: "Too Many Requests", 431: "Request Header Fields Too Large", 500: "Internal Server Error",
           502: "Bad Gateway", 503: "Service Unavailable", 529: "Overloaded"}
ROUTES = {("POST", "/v1/chat/completions"): "chat", ("POST", "/v1/messages"): "messages",
          ("POST", "/v1/embeddings"): "embeddings", ("GET", "/v1/models"): "models"}
_AZURE_ROUTES = {"chat/completions": "chat", "embeddings": "embeddings", "models": "models"}
_AZURE_DEPLOYMENT = re.compile(r"/openai/deployments/([^/]+)/(chat/completions|embeddings)")
_AZURE_V1 = re.compile(r"/openai/v1/(chat/completions|embeddings|models)")
_BEDROCK = re.compile(r"/model/([^/]+)/(converse|converse-stream)")
_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
                429: "rate_limit_error", 500: "server_error"}
_ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
                    429: "rate_limit_error", 529: "overloaded_error"}
MAX_HEAD = 256 * 1024
MAX_BODY = 64 * 1024 * 1024
log = logging.getLogger("flywheel.testing.fake_llm")


class BadRequest(Exception):
    """The bytes on the wire are not a request we can frame; answered with 400/413/431 and a close."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class ServerThread:
    """Owns the listening socket, the accept thread and one thread per open connection."""

    def __init__(self, llm: FakeLLM, host: str, port: int):
        self.llm = llm
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.create_server((host, port), family=family, backlog=512)
        self.port: int = self.sock.getsockname()[1]
        self.stopping = threading.Event()
        self.open: set[socket.socket] = set()
        self.connections = 0  # accepted so far (keep-alive tests read it)
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._accept_loop, name=f"fake-llm:{self.port}", daemon=True)
        self.thread.start()

    def _accept_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                if self.stopping.is_set():
                    return
                self.stopping.wait(0.01)  # e.g. out of file descriptors: try again shortly
                continue
            if self.stopping.is_set():
                conn.close()
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self.open.add(conn)
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), name=f"fake-llm:{self.port}:conn",
                             daemon=True).start()

    def stop(self) -> None:
        """Wake every sleeper, shut every connection and the listener; returns in milliseconds."""
        self.stopping.set()
        for action in (lambda: self.sock.shutdown(socket.SHUT_RDWR), self.sock.close):
            try:
                action()
            except OSError:
                pass
        with self._lock:
            conns = list(self.open)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.thread.join(1)

    def _serve(self, conn: socket.socket) -> None:
        reader = RequestReader(conn)
        try:
            keep = True
            while keep and not self.stopping.is_set():
                try:
                    request = reader.read()
                except BadRequest as exc:
                    payload = wire.openai_error(str(exc), "invalid_request_error")
                    conn.sendall(response(exc.status, wire.dumps(payload), keep=False))
                    return
                if request is None:
                    return
                exchange = Exchange(self, conn, *request)
                try:
                    keep = exchange.run()
                except OSError:
                    return
                except Exception as exc:  # a bug here must reach the client as a readable 500, not a hang-up
                    log.exception("fake_llm failed on %s %s", request[0], request[1])
                    keep = exchange.error(500, f"fake_llm internal error: {type(exc).__name__}: {exc}")
        except OSError:
            pass
        finally:
            with self._lock:
                self.open.discard(conn)
            conn.close()


class RequestReader:
    """Frames HTTP/1.1 requests (Content-Length or chunked bodies) from a blocking socket."""

    def __init__(self, conn: socket.socket):
        self.conn = conn
        self.buf = bytearray()

    def _fill(self) -> bool:
        data = self.conn.recv(65536)
        if not data:
            return False
        self.buf += data
        return True

    def _until(self, sep: bytes, limit: int) -> bytes | None:
        start = 0
        while (end := self.buf.find(sep, start)) < 0:
            if len(self.buf) > limit:
                raise BadRequest(431, "request headers too large")
            start = max(0, len(self.buf) - len(sep) + 1)
            if not self._fill():
                return None
        out = bytes(self.buf[:end])
        del self.buf[:end + len(sep)]
        return out

    def _exactly(self, n: int) -> bytes | None:
        while len(self.buf) < n:
            if not self._fill():
                return None
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read(self) -> tuple[str, str, dict[str, str], bytes, bool] | None:
        """(method, path, headers, body, keep_alive), or None when the client closed the connection."""
        head = self._until(b"\r\n\r\n", MAX_HEAD)
        if head is None:
            return None
        lines = head.decode("latin-1").split("\r\n")
        request_line = lines[0].split(" ")
        if len(request_line) != 3:
            raise BadRequest(400, "malformed request line")
        method, target, version = request_line
        headers: dict[str, str] = {}
        for line in lines[1:]:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = self._chunked()
        else:
            try:
                length = int(headers.get("content-length") or 0)
            except ValueError:
                raise BadRequest(400, "malformed Content-Length") from None
            if not 0 <= length <= MAX_BODY:
                raise BadRequest(413, f"Content-Length {length} is out of range")
            body = self._exactly(length) if length else b""
        if body is None:
            return None
        connection = headers.get("connection", "").lower()
        keep = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
        return method, target, headers, body, keep

    def _chunked(self) -> bytes | None:
        parts: list[bytes] = []
        while True:
            line = self._until(b"\r\n", MAX_HEAD)
            if line is None:
                return None
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise BadRequest(400, "malformed chunk size") from None
            if size == 0:
                while self._until(b"\r\n", MAX_HEAD) not in (b"", None):  # trailers
                    pass
                return b"".join(parts)
            if sum(map(len, parts)) + size > MAX_BODY:
                raise BadRequest(413, "body too large")
            chunk = self._exactly(size + 2)
            if chunk is None:
                return None
            parts.append(chunk[:-2])


def response(status: int, body: bytes, *, content_type: str = "application/json", keep: bool = True,
             headers: dict[str, str] | None = None, length: int | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}",
             f"Content-Type: {content_type}",
             f"Content-Length: {len(body) if length is None else length}"]
    if not keep:
        lines.append("Connection: close")
    for key, value in (headers or {}).items():
        lines.append(f"{key}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Exchange:
    """One request/response on a connection. `run()` returns whether the connection stays open."""

    def __init__(self, server: ServerThread, conn: socket.socket, method: str, target: str,
                 headers: dict[str, str], raw: bytes, keep: bool):
        self.llm: FakeLLM = server.llm
        self.stopping = server.stopping
        path, _, self.query = target.partition("?")
        self.conn, self.method, self.path, self.target = conn, method, path, target
        self.headers, self.raw, self.keep = headers, raw, keep
        self.route = ROUTES.get((method, path))
        self.dialect = "anthropic" if path == "/v1/messages" else "openai"  # or azure, bedrock
        self.model_in_path: str | None = None  # an Azure deployment or a Bedrock model id
        self.streaming_path = False  # Bedrock's /converse-stream
        if self.route is None:
            self._cloud_route()
        self.anthropic = self.dialect == "anthropic"
        self.body: dict[str, Any] = {}
        self.converse: dict[str, Any] = {}  # a Bedrock request as sent (self.body is its chat view)

    def _cloud_route(self) -> None:
        if m := _AZURE_DEPLOYMENT.fullmatch(self.path):
            self.route = _AZURE_ROUTES[m[2]] if self.method == "POST" else None
            self.dialect, self.model_in_path = "azure", unquote(m[1])
        elif m := _AZURE_V1.fullmatch(self.path):
            self.route = _AZURE_ROUTES[m[1]] if self.method == ("GET" if m[1] == "models" else "POST") else None
            self.dialect = "azure"
        elif m := _BEDROCK.fullmatch(self.path):
            self.route = "converse" if self.method == "POST" else None
            self.dialect, self.model_in_path = "bedrock", unquote(m[1])
            self.streaming_path = m[2] == "converse-stream"

    def run(self) -> bool:
        if self.raw:
            try:
                parsed = json.loads(self.raw)
            except (ValueError, UnicodeDecodeError) as exc:
                self.llm._record({"path": self.path, "invalid_body": self.raw.decode("utf-8", "replace")})
                return self.error(400, f"request body is not valid JSON: {exc}")
            if not isinstance(parsed, dict):
                self.llm._record({"path": self.path, "invalid_body": self.raw.decode("utf-8", "replace")})
                return self.error(400, "request body must be a JSON object")
            self.body = parsed
        self.llm._record({**self.body, "path": self.path, **self._cloud_record()})
        if self.route is None:
            return self.error(404, f"unknown endpoint {self.method} {self.path}", code="unknown_url")
        if not self.authorised():
            if self.dialect == "bedrock":
                return self.error(403, "The security token included in the request is invalid.")
            return self.error(401, "invalid API key", code="invalid_api_key")
        if self.route == "models":
            return self.send(200, wire.dumps(wire.models_list(self.llm._model_names())))
        problem = self.validate()
        if problem:
            return self.error(400, problem)
        if self.dialect == "bedrock":
            self.converse = self.body
            self.body = bedrock.chat_view(self.converse, self.model_in_path or "")
            if self.streaming_path:
                self.body["stream"] = True
        elif self.model_in_path is not None and "model" not in self.body:
            self.body["model"] = self.model_in_path  # Azure: the deployment names the model
        model = self.body.get("model")
        plan = self.llm._take_fault(model if isinstance(model, str) else None, self.body)
        if plan is not None:
            if not self.sleep(self.llm.latency):
                return False
            if plan.fault.value != "hang":
                return self.fault(plan)
            if not self.sleep(plan.seconds):  # then answer normally, like a very slow server
                return False
        return self.answer()

    def _cloud_record(self) -> dict[str, Any]:
        """What an Azure or Bedrock request is recorded with besides its body: never the credential itself (an
        Anthropic one: its `anthropic-beta` header, when sent)."""
        if self.anthropic and "anthropic-beta" in self.headers:
            return {"anthropic_beta": self.headers["anthropic-beta"]}
        if self.dialect not in ("azure", "bedrock"):
            return {}
        auth = self.headers.get("authorization", "")
        scheme = ("sigv4" if auth.startswith("AWS4-HMAC-SHA256 ") else "bearer" if auth.startswith("Bearer ")
                  else "api-key" if "api-key" in self.headers else None)
        if self.dialect == "bedrock":
            return {"auth": scheme, "region": bedrock.sigv4_region(self.headers), "model_id": self.model_in_path}
        version = parse_qs(self.query).get("api-version")
        return {"auth": scheme, "api_version": version[0] if version else None}

    def sleep(self, seconds: float) -> bool:
        """Wait; False when the server is stopping or the client hung up meanwhile (nothing left to do)."""
        if seconds <= 0:
            return True
        if self.stopping.wait(seconds):
            return False
        try:
            return self.conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
        except BlockingIOError:
            return True
        except OSError:
            return False

    def authorised(self) -> bool:
        key = self.llm.api_key
        if not key:
            return True
        bearer = self.headers.get("authorization") == f"Bearer {key}"
        if self.dialect == "azure":
            return bearer or self.headers.get("api-key") == key
        if self.dialect == "bedrock":
            return bearer or bedrock.sigv4_valid(self.method, self.target, self.headers, self.raw, key)
        return bearer or self.headers.get("x-api-key") == key

    def validate(self) -> str | None:
        if self.route == "embeddings":
            return None if "input" in self.body else "'input' is required"
        if self.dialect == "bedrock":
            return bedrock.validate(self.body)
        if self.dialect == "azure" and self.model_in_path is not None and "api-version" not in parse_qs(self.query):
            return "the api-version query parameter is required"
        messages = self.body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "'messages' must be a non-empty list"
        if not isinstance(self.body.get("model", self.model_in_path), str):
            return "'model' is required"
        if self.anthropic and not isinstance(self.body.get("max_tokens"), int):
            return "'max_tokens' is required"
        return anthropic.validate(self.body) if self.anthropic else None

    def _frames(self, text: wire.Answer) -> list[bytes]:
        if self.dialect == "bedrock":
            return bedrock.converse_stream(self.body, text)
        return (anthropic.stream if self.anthropic else wire.openai_chat_stream)(self.body, text)

    def _payload(self, text: wire.Answer) -> dict[str, Any]:
        if self.dialect == "bedrock":
            return bedrock.converse_response(self.body, text)
        return (anthropic.message if self.anthropic else wire.openai_chat)(self.body, text)

    def answer(self) -> bool:
        if self.route == "embeddings":
            if self.model_in_path is not None and "model" not in self.body:
                self.body["model"] = self.model_in_path
            try:
                payload = wire.embeddings_response(self.body)
            except ValueError as exc:
                return self.error(400, str(exc))
            return self.sleep(self.llm.latency) and self.send(200, wire.dumps(payload))
        single = self.anthropic or self.dialect == "bedrock"
        try:
            text, delay = self.llm._reply(self.body, 1 if single else wire.choice_count(self.body))
        except Exception as exc:  # noqa: BLE001 - a user's reply callable failed; tell the client why
            return self.error(500, f"fake_llm reply callable raised {type(exc).__name__}: {exc}")
        if not self.sleep(delay):
            return False
        if self.body.get("stream"):
            return self.stream(self._frames(text))
        return self.send(200, wire.dumps(self._payload(text)))

    def fault(self, plan: FaultPlan) -> bool:
        kind = plan.fault.value
        if kind == "rate_limit":
            after = f"{plan.retry_after:g}"
            return self.error(429, "rate limit exceeded (injected by fake_llm)", code="rate_limit_exceeded",
                              headers={"Retry-After": after, "retry-after-ms": str(int(plan.retry_after * 1000))})
        if kind == "server_error":
            return self.error(plan.status, plan.message or "internal server error (injected by fake_llm)",
                              code="server_error")
        if kind == "drop":
            return False  # the caller closes the socket without a byte of response
        if kind == "invalid_json":
            if self.body.get("stream"):
                if self.dialect == "bedrock":
                    frame = bedrock.encode_message({":event-type": "contentBlockDelta", ":message-type": "event"},
                                                   b'{"delta": not json')
                    return self._send_frames([frame], True)
                frame = b"event: message_start\n" if self.anthropic else b""
                frame += b'data: {"id": "broken", not json\n\n'
                return self._send_frames([frame] + ([] if self.anthropic else [b"data: [DONE]\n\n"]), True)
            return self.send(200, b'{"id": "chatcmpl-broken", "choices": [ <html>not json')
        # truncated_stream: the answer cut off mid-way, then the socket closes
        text, _ = self.llm._reply_safe(self.body)
        if self.body.get("stream"):
            frames = self._frames(text)
            self._send_frames(frames[:max(1, len(frames) // 2)], terminate=False)
        else:
            body = wire.dumps(self._payload(text))
            self.conn.sendall(response(200, body[:len(body) // 2], length=len(body)))
        return False

    # ------------------------------------------------------------------ writing

    def send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> bool:
        self.conn.sendall(response(status, body, keep=self.keep, headers=headers))
        return self.keep

    def error(self, status: int, message: str, *, code: str | None = None,
              headers: dict[str, str] | None = None) -> bool:
        if self.dialect == "bedrock":
            body, more = bedrock.error(status, message)
            return self.send(status, body, {**more, **(headers or {})})
        if self.anthropic:
            payload = wire.anthropic_error(message, _ANTHROPIC_TYPES.get(status, "api_error"))
        else:
            payload = wire.openai_error(message, _ERROR_TYPES.get(status, "server_error"), code)
        return self.send(status, wire.dumps(payload), headers)

    def _stream_head(self) -> bytes:
        kind = "application/vnd.amazon.eventstream" if self.dialect == "bedrock" else "text/event-stream; charset=utf-8"
        lines = ["HTTP/1.1 200 OK", f"Content-Type: {kind}", "Cache-Control: no-cache", "Transfer-Encoding: chunked"]
        if not self.keep:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _send_frames(self, frames: list[bytes], terminate: bool) -> bool:
        out = [self._stream_head(), *(b"%x\r\n%s\r\n" % (len(f), f) for f in frames)]
        if terminate:
            out.append(b"0\r\n\r\n")
        self.conn.sendall(b"".join(out))
        return self.keep and terminate

    def stream(self, frames: list[bytes]) -> bool:
        pause = self.llm.chunk_latency
        if pause <= 0:
            return self._send_frames(frames, terminate=True)
        self.conn.sendall(self._stream_head())
        for frame in frames:
            if not self.sleep(pause):
                return False
            self.conn.sendall(b"%x\r\n%s\r\n" % (len(frame), frame))
        self.conn.sendall(b"0\r\n\r\n")
        return self.keep
