"""`flywheel ingest PATH --ray ADDRESS|auto`: loading, chunking and embedding run as Ray tasks on a cluster;
the driver (the `flywheel ingest` process) writes what they return to the store.

- Work is split by file: the driver finds the files, skips the unchanged ones (same hash and settings, as a
  plain ingest does) and sends the rest in groups to tasks. A task loads, chunks and (with an embedder)
  embeds its files and returns the rows; it never opens the store, so any store works, SQLite included.
- Writes are the plain ingest's (Ingestor.write_rows): content-hash ids, a file marked complete only by its
  last transaction. A killed run resumes; a retried task or a second run adds nothing twice.
- Plain Ray tasks (ray core), not Ray Data: per-file work is already coarse, and the `ray` extra stays the
  core package. On a cluster with GPUs, one actor per GPU embeds (ray_embed.py) and the tasks load and chunk.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from flywheel.config import ModelAlias, RetrievalConfig
from flywheel.errors import UserError
from flywheel.retrieval.embed import embedding_text
from flywheel.retrieval.embedders import Embedder, build_embedder
from flywheel.retrieval.index.base import Index
from flywheel.retrieval.ingest import Ingestor, IngestSummary, source_name
from flywheel.retrieval.loaders import LoadOptions, Skip, load_file, loader_for, too_large
from flywheel.text.install import pip_install

log = logging.getLogger("flywheel.retrieval")
FILES_PER_TASK = 8
CONNECT_TIMEOUT_S = 3.0

_worker_embedder: dict[str, Embedder | None] = {}


def connect(address: str) -> Any:
    """ray.init for `address` (host:port of a running cluster's head, or `auto`); UserError when there is no
    Ray or no cluster answering there, after at most CONNECT_TIMEOUT_S for a host:port."""
    try:
        import ray
    except ImportError as exc:
        raise UserError("--ray needs the ray package", hint=pip_install("ray")) from exc
    if address != "auto":
        host, sep, port = address.rpartition(":")
        if not sep or not host.strip("[]").strip() or not port.isdigit() or not 0 < int(port) < 65536:
            raise UserError(f"bad --ray address {address!r}: expected HOST:PORT of the cluster's head, or auto",
                            hint="the address `ray start --head` printed (its --port, default 6379)")
        try:
            socket.create_connection((host.strip("[]"), int(port)), CONNECT_TIMEOUT_S).close()
        except OSError as exc:
            raise UserError(f"no Ray cluster answers at {address}: {exc.strerror or exc}",
                            hint="start one with `ray start --head`, or check the address and port") from exc
    if ray.is_initialized():
        return ray
    try:
        ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise UserError(f"cannot join the Ray cluster at {address}: {str(exc).splitlines()[0]}",
                        hint="start one with `ray start --head`, or pass its HOST:PORT") from exc
    return ray


def prepare_files(rconfig: RetrievalConfig, models: dict[str, ModelAlias], options: LoadOptions,
                  root: str | None, tenant: str, files: list[tuple[str, str]], embed: bool) -> list[dict]:
    """A task's work: load, chunk (and embed) `files` [(path, source)] exactly as a plain ingest would."""
    key = repr((rconfig.embedder, rconfig.embedder_model, str(rconfig.model_folder()),
                rconfig.embedder_languages))
    if key not in _worker_embedder:  # one embedder per worker process, loaded by its first task
        _worker_embedder[key] = build_embedder(rconfig, models)
    embedder = _worker_embedder[key]
    ingestor = Ingestor(cast(Index, None), embedder, rconfig, options, Path(root) if root else None)
    out = []
    for raw, source in files:
        path = Path(raw)
        result: dict[str, Any] = {"source": source}
        try:
            loader_for(path)
            size = path.stat().st_size
            if size > options.max_bytes:
                raise Skip(too_large(size, options))
            loaded = load_file(path, source=source, tenant=tenant, options=options)
        except (Skip, OSError) as exc:
            result["skip"] = str(exc) if isinstance(exc, Skip) else f"cannot read: {exc.strerror or exc}"
            out.append(result)
            continue
        summary = IngestSummary()
        batches = [ingestor._prepare(b, tenant, summary) for b in ingestor._batches(loaded.docs)]
        vectors: dict[str, Any] = {}
        if embed and embedder is not None:
            texts = _texts_to_embed(embedder, batches)
            if texts:
                vectors = dict(zip(texts, embedder.embed(list(texts.values())), strict=True))
        out.append({**result, "skip": None, "size": size, "n_docs": len(loaded.docs), "batches": batches,
                    "vectors": vectors, "warnings": loaded.warnings, "dropped": loaded.dropped,
                    "not_embedded": summary.not_embedded})
    return out


def ray_ingest(ingestor: Ingestor, paths: Sequence[str | Path], tenant: str, address: str, sync: bool,
               rconfig: RetrievalConfig, models: dict[str, ModelAlias], options: LoadOptions) -> IngestSummary:
    """Ingest `paths` with the loading, chunking and embedding on the Ray cluster at `address` (what
    `Ingestor.run` does in one process, `ingestor.shard` included). On a cluster with GPUs the embedding runs
    in GPU actors (ray_embed.py) when one of them can use its GPU (`embed_actors`)."""
    from flywheel.retrieval.embed import embed_pending, waiting_count
    from flywheel.retrieval.ingest import in_shard
    from flywheel.retrieval.retriever import check_tenant

    check_tenant(tenant)
    ray = connect(address)
    started = time.perf_counter()
    summary = IngestSummary()
    roots = [Path(p) for p in paths]
    for p in roots:
        if not p.exists():
            raise UserError(f"no such file or folder: {p}", hint="check the path passed to `flywheel ingest`")
    files = [f for f in dict.fromkeys(f for p in roots for f in ingestor._walk(p, summary))
             if in_shard(source_name(f, ingestor.root), ingestor.shard)]
    seen = {source_name(f, ingestor.root) for f in files}
    todo: list[tuple[str, str]] = []
    hashes: dict[str, tuple[str, bool, bool]] = {}  # source -> (file hash, had a state, resumable)
    for path in files:
        source = source_name(path, ingestor.root)
        summary.files += 1
        state = ingestor.index.file_state(tenant, source)
        try:
            file_hash = hashlib.sha256(path.read_bytes()).hexdigest() if path.stat().st_size else ""
        except OSError:
            file_hash = ""
        same = bool(state and state["file_hash"] == file_hash and state["settings"] == ingestor.settings)
        if same and state and state["status"] == "complete":
            summary.unchanged += 1
            continue
        hashes[source] = (file_hash, bool(state), same)
        todo.append((str(path.resolve()), source))
    task = ray.remote(prepare_files).options(max_retries=3)
    embed = ingestor.embed and ingestor.embedder is not None
    actors = embed_actors(ray, rconfig, models) if embed and todo else []
    root = str(ingestor.root) if ingestor.root else None
    pending = [task.remote(rconfig, models, options, root, tenant, todo[i:i + FILES_PER_TASK], embed and not actors)
               for i in range(0, len(todo), FILES_PER_TASK)]
    try:
        with ingestor.writes.open():  # files share transactions, as in a plain ingest (not one commit per file)
            _collect(ray, ingestor, pending, actors, tenant, hashes, summary)
    finally:
        for actor in actors:  # frees their GPUs for the next ingest
            ray.kill(actor)
    if sync:
        ingestor._sync(roots, seen, tenant, summary)
    ingestor.index.refresh_languages(tenant)
    ingestor.index.invalidate(tenant)
    summary.keyword_seconds = round(time.perf_counter() - started, 3)
    if ingestor.embedder is not None and ingestor.embed:  # leftovers of earlier runs (--no-embed, killed)
        summary.embedded += embed_pending(ingestor.index, ingestor.embedder, tenant).embedded
    elif ingestor.embedder is not None:
        summary.embed_waiting = waiting_count(ingestor.index, ingestor.embedder, tenant)
    summary.seconds = round(time.perf_counter() - started, 3)
    return summary


def _collect(ray: Any, ingestor: Ingestor, pending: list[Any], actors: list[Any], tenant: str,
             hashes: dict[str, tuple[str, bool, bool]], summary: IngestSummary) -> None:
    """Write each file as its task returns it; with GPU actors, first send its texts to one (round robin) and
    write it when its vectors come back."""
    embedding: dict[Any, tuple[dict, list[str]]] = {}  # an actor's embed call -> (its file's result, text hashes)
    turn = 0
    while pending or embedding:
        (ref,), _ = ray.wait([*pending, *embedding], num_returns=1)
        if ref in embedding:
            result, keys = embedding.pop(ref)
            result["vectors"] = dict(zip(keys, ray.get(ref), strict=True))
            _write(ingestor, result, tenant, hashes[result["source"]], summary)
            continue
        pending.remove(ref)
        for result in ray.get(ref):
            texts = _texts_to_embed(ingestor.embedder, result["batches"]) if actors and result["skip"] is None else {}
            if texts:
                call = actors[turn % len(actors)].embed.remote(list(texts.values()))
                turn += 1
                embedding[call] = (result, list(texts))
            else:
                _write(ingestor, result, tenant, hashes[result["source"]], summary)


def embed_actors(ray: Any, rconfig: RetrievalConfig, models: dict[str, ModelAlias], force: bool | None = None
                 ) -> list[Any]:
    """The GPU actors to embed with: none without GPUs, or (unless `force`) when none of them can use its GPU
    (then the tasks embed on the workers' CPUs, as on a cluster without GPUs, and a warning says why)."""
    from flywheel.retrieval.ray_embed import start_actors

    if force is False:
        return []
    actors, wheres = start_actors(ray, rconfig, models)
    if actors and not force and all(w.startswith("cpu:") for w in wheres):
        log.warning("ray ingest: the cluster's GPUs are not used for embedding (%s); embedding on the workers' "
                    "CPUs", wheres[0].removeprefix("cpu: "))
        for actor in actors:
            ray.kill(actor)
        return []
    return actors


def _texts_to_embed(embedder: Embedder | None, batches: list[list[dict]]) -> dict[str, str]:
    """{text hash: text to embed} of a file's prepared rows (what prepare_files embeds itself without GPU
    actors)."""
    if embedder is None:
        return {}
    return {r["embed_hash"]: embedding_text(r["title"], r["location"], r["text"])
            for rows in batches for r in rows if embedder.covers(r["lang"])}


def _write(ingestor: Ingestor, result: dict, tenant: str, planned: tuple[str, bool, bool],
           summary: IngestSummary) -> None:
    source = result["source"]
    file_hash, had_state, resumable = planned
    if result["skip"] is not None:
        summary.skipped.append((source, result["skip"]))
        if had_state:
            with ingestor.index.transaction() as conn:
                summary.chunks_removed += ingestor.index.delete_source(conn, tenant, source, forget=True)
        return
    summary.warnings.extend((source, w) for w in result["warnings"])
    for kind, count in result["dropped"].items():
        summary.boilerplate[kind] = summary.boilerplate.get(kind, 0) + count
    for lang, count in result["not_embedded"].items():
        summary.not_embedded[lang] = summary.not_embedded.get(lang, 0) + count
    before = summary.embedded
    ingestor.write_rows(result["batches"], source, tenant, file_hash, result["size"], result["n_docs"],
                        replace=had_state and not resumable, summary=summary, progress=lambda: None,
                        vectors=result["vectors"])
    summary.embedded = before + len(result["vectors"])
    summary.indexed += 1
