"""A tiny OpenAI-compatible `/v1/embeddings` server over a local sentence-transformers folder, on 127.0.0.1.

A measurement tool, not product code: it lets `flywheel bench retrieval --sets --config flywheel.yaml` (or any
flywheel project) use an embedding model that flywheel does not ship, through an `openai_compat` alias, exactly
as a user would point flywheel at TEI, vLLM or Ollama:

    python scripts/serve_st_embeddings.py /path/to/model-folder --port 18765 --cache /tmp/emb-cache.sqlite

    # flywheel.yaml
    models:
      zh-embed: {provider: openai_compat, base_url: http://127.0.0.1:18765/v1, model: m3e-small,
                 params: {languages: [zh]}}
    retrieval:
      embedder: zh-embed

Vectors are L2-normalised. With `--cache`, every text's vector is kept in a SQLite file keyed by
(model name, sha1 of the text), so a rerun of a benchmark embeds nothing it has seen. Requests are embedded one
at a time (a lock): the model's own threads use the cores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sqlite3
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np


class Embeddings:
    """The model plus a (model, sha1(text)) -> float32 vector memo, in memory and optionally on disk."""

    def __init__(self, folder: Path, name: str, max_tokens: int, threads: int, cache: Path | None):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(threads)
        self.model = SentenceTransformer(str(folder), device="cpu")
        self.model.max_seq_length = max_tokens
        self.name = name
        self.lock = threading.Lock()
        self.memo: dict[str, np.ndarray] = {}
        self.db: sqlite3.Connection | None = None
        self.computed = 0
        if cache is not None:
            self.db = sqlite3.connect(str(cache), check_same_thread=False)
            self.db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vec BLOB NOT NULL)")
            prefix = f"{name}:"
            for key, blob in self.db.execute("SELECT key, vec FROM vectors"):
                if key.startswith(prefix):
                    self.memo[key] = np.frombuffer(blob, dtype=np.float32)

    def key(self, text: str) -> str:
        return f"{self.name}:{hashlib.sha1(text.encode('utf-8')).hexdigest()}"

    def embed(self, texts: list[str]) -> list[np.ndarray]:
        with self.lock:
            keys = [self.key(t) for t in texts]
            missing = list(dict.fromkeys(k for k in keys if k not in self.memo))
            if missing:
                by_key = dict(zip(keys, texts, strict=True))
                vecs = self.model.encode([by_key[k] for k in missing], batch_size=32, normalize_embeddings=True,
                                         convert_to_numpy=True, show_progress_bar=False).astype(np.float32)
                self.computed += len(missing)
                for k, v in zip(missing, vecs, strict=True):
                    self.memo[k] = v
                if self.db is not None:
                    self.db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)",
                                        [(k, v.tobytes()) for k, v in zip(missing, vecs, strict=True)])
                    self.db.commit()
            return [self.memo[k] for k in keys]


def handler(embeddings: Embeddings) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # quiet: one line per request would flood the terminal
            pass

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.rstrip("/") in ("/v1/models", "/models"):
                self._send(200, {"object": "list", "data": [{"id": embeddings.name, "object": "model"}]})
            elif self.path == "/healthz":
                self._send(200, {"ok": True, "computed": embeddings.computed, "memo": len(embeddings.memo)})
            else:
                self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

        def do_POST(self) -> None:
            if self.path.rstrip("/") not in ("/v1/embeddings", "/embeddings"):
                self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                return
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
                raw = body.get("input")
                texts = [raw] if isinstance(raw, str) else raw
                if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                    raise ValueError("`input` must be a string or a list of strings (token ids are not supported)")
            except (ValueError, json.JSONDecodeError) as exc:
                self._send(400, {"error": {"message": str(exc), "type": "invalid_request_error"}})
                return
            vecs = embeddings.embed(texts)
            tokens = sum(len(t) for t in texts)  # characters: an estimate, only reported
            self._send(200, {"object": "list", "model": embeddings.name,
                             "data": [{"object": "embedding", "index": i, "embedding": v.tolist()}
                                      for i, v in enumerate(vecs)],
                             "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="a sentence-transformers model folder")
    parser.add_argument("--name", default=None, help="the model name served (default: the folder's name)")
    parser.add_argument("--port", type=int, default=18765)
    parser.add_argument("--max-tokens", type=int, default=512, help="truncate inputs to this many model tokens")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--cache", type=Path, default=None, help="SQLite file memoising vectors by text")
    args = parser.parse_args(argv)
    if not args.model.is_dir():
        print(f"error: {args.model} is not a model folder", file=sys.stderr)
        return 2
    name = args.name or args.model.name
    embeddings = Embeddings(args.model, name, args.max_tokens, args.threads, args.cache)
    try:
        server = ThreadingHTTPServer(("127.0.0.1", args.port), handler(embeddings))
    except OSError as exc:
        print(f"error: cannot listen on 127.0.0.1:{args.port} ({exc}); pick another --port", file=sys.stderr)
        return 2
    print(f"serving {name} ({len(embeddings.memo)} cached vectors) on http://127.0.0.1:{args.port}/v1",
          file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
