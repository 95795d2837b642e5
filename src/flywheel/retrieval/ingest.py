"""Ingest: files → loaders → chunks → keyword index, one file at a time, resumable; then the embed stage.

- Searchable first, embedded after: chunks and their keyword index are written first (the corpus answers
  keyword queries as soon as a file's transaction commits); vectors come after, from the embed stage
  (embed.py: run by `ingest(embed=True)`, the default, or later by `flywheel embed` / the server's worker).

- Unchanged files (same content hash, same chunking settings and embedder) are skipped without being parsed.
- A changed file's chunks are replaced; with `sync=True`, files that disappeared from an ingested folder lose
  their chunks.
- Writes are transactions of up to BATCH_CHUNKS chunks; a small file is replaced in one transaction, which
  consecutive small files share (committed once it holds BATCH_CHUNKS chunks or is GROUP_SECONDS old: one
  commit, and one FTS5 segment, per file made commits most of the keyword ingest's time). A file is marked
  `complete` only by its last transaction, so after a crash (`kill -9`) the next run resumes it: its documents
  already written are kept and skipped (chunk ids are content hashes and unique: no duplicates); the files of
  an uncommitted shared transaction are simply indexed again.
- A file that cannot be used is skipped with a reason; the run goes on.
"""

from __future__ import annotations

import errno
import hashlib
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Connection

from flywheel.config import Config, RetrievalConfig
from flywheel.errors import UserError
from flywheel.retrieval.chunking import Chunker
from flywheel.retrieval.embed import EmbedProgress, embed_pending, embedding_text, waiting_count
from flywheel.retrieval.embedders import Embedder, build_embedder
from flywheel.retrieval.index.base import Index
from flywheel.retrieval.loaders import LoadOptions, Skip, load_file, loader_for, too_large, walk
from flywheel.retrieval.retriever import check_tenant, open_index
from flywheel.retrieval.tokenize import TOKENIZER_VERSION, keyword_tokens
from flywheel.text import detect_language
from flywheel.text.secrets import scrub_secrets
from flywheel.tracing import tracer
from flywheel.types import Chunk, Document, content_hash

# 2: boilerplate dropped, code blocks whole, line ranges; 3: Big5/Shift-JIS/declared charsets, CR line ends, short
# lines no longer lost as headings (files indexed before are re-read once: their text may differ)
CHUNKER_VERSION = "3"
BATCH_CHUNKS = 256
GROUP_SECONDS = 1.0  # the longest a written file waits for its shared transaction to commit
HEADER_TOKENS = 24  # room left in the embedder's window for the "title > heading" line embedded with a chunk

LINK_OUTSIDE = "symbolic link to outside the ingested folder (pass --follow-links to index what it points to)"
# (files done, files total, current source, chunks so far): called once the files are found (0, n, "", 0), as
# each file starts, and after every batch written, so a caller can show progress from the first second.
Progress = Callable[[int, int, str, int], None]
Shard = tuple[int, int]  # (i, n): this run handles the files whose source hashes to i modulo n


def parse_shard(spec: str) -> Shard:
    """`i/N` with 0 <= i < N, as given to `flywheel ingest --shard`."""
    left, sep, right = spec.partition("/")
    try:
        i, n = int(left), int(right)
    except ValueError:
        i = n = -1
    if not sep or n < 1 or not 0 <= i < n:
        raise UserError(f"bad --shard {spec!r}: expected i/N with 0 <= i < N (e.g. 0/4)",
                        hint="run one `flywheel ingest --shard i/N` per i in 0 … N-1, with the same N")
    return i, n


def in_shard(source: str, shard: Shard | None) -> bool:
    """Files are partitioned by a hash of their source name (the path relative to the project), so every
    machine computes the same partition without talking to the others."""
    if shard is None:
        return True
    i, n = shard
    return int.from_bytes(hashlib.sha256(source.encode("utf-8")).digest()[:8], "big") % n == i


@dataclass
class IngestSummary:
    files: int = 0  # files looked at
    indexed: int = 0  # files (re)indexed in this run
    unchanged: int = 0  # files skipped because nothing changed
    chunks_added: int = 0
    chunks_removed: int = 0
    embedded: int = 0  # vectors computed (the rest came from the cache)
    embed_waiting: int = 0  # chunks left without a vector for the embed stage (`flywheel embed`), after --no-embed
    embedder_backend: str = ""  # how they were computed (local embedder: onnx, torch or numpy)
    removed_files: list[str] = field(default_factory=list)  # by sync
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (source, reason)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    boilerplate: dict[str, int] = field(default_factory=dict)  # page boilerplate lines dropped, by kind
    # chunks left without a vector because the embedder does not cover their language, by language; keyword
    # search still finds them (why: not_embedded_reason)
    not_embedded: dict[str, int] = field(default_factory=dict)
    not_embedded_reason: str = ""
    keyword_seconds: float = 0.0  # until every chunk was written and keyword-searchable
    embed_seconds: float = 0.0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["skipped"] = [{"source": s, "reason": r} for s, r in self.skipped]
        d["warnings"] = [{"source": s, "warning": w} for s, w in self.warnings]
        return d


class SharedTransaction:
    """Write transactions for one run: inside `with writes.open():` consecutive `with writes() as conn:` blocks
    share one transaction, committed by `done` once it holds `chunks` chunks (BATCH_CHUNKS) or is `seconds`
    (GROUP_SECONDS) old, and when `open` ends; an exception rolls the open one back. Outside `open` each block
    is a transaction of its own (as `Index.transaction`)."""

    def __init__(self, index: Index, chunks: int | None = None, seconds: float | None = None):
        self.index, self.chunks, self.seconds = index, chunks, seconds
        self._stack: ExitStack | None = None
        self._conn: Connection | None = None
        self._shared = False
        self._chunks = 0
        self._since = 0.0

    @contextmanager
    def __call__(self) -> Iterator[Connection]:
        if not self._shared:
            with self.index.transaction() as conn:
                yield conn
            return
        if self._conn is None:
            self._stack = ExitStack()
            self._conn = self._stack.enter_context(self.index.transaction())
            self._since = time.perf_counter()
        yield self._conn

    @contextmanager
    def open(self) -> Iterator[None]:
        self._shared = True
        try:
            yield
        except BaseException as exc:
            self._end(exc)
            raise
        else:
            self._end(None)
        finally:
            self._shared = False

    def done(self, chunks: int) -> None:
        """`chunks` rows were written: commit when the shared transaction is full or old enough."""
        if self._conn is None:
            return
        self._chunks += chunks
        limit = BATCH_CHUNKS if self.chunks is None else self.chunks
        seconds = GROUP_SECONDS if self.seconds is None else self.seconds
        if self._chunks >= limit or time.perf_counter() - self._since >= seconds:
            self._end(None)

    def _end(self, exc: BaseException | None) -> None:
        stack, self._stack, self._conn, self._chunks = self._stack, None, None, 0
        if stack is not None:
            if exc is None:
                stack.close()  # commit
            else:
                stack.__exit__(type(exc), exc, exc.__traceback__)  # roll back


def _broken_link(path: Path) -> str:
    try:
        path.resolve(strict=True)
    except RuntimeError:  # (Python < 3.13; later ones raise OSError ELOOP)
        return "symbolic link loop (the link leads back to itself)"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop (the link leads back to itself)"
    return f"broken symbolic link (it points to {os.readlink(path)}, which does not exist)"


def source_name(path: Path, root: Path | None) -> str:
    resolved = path.resolve()
    if root is not None:
        try:
            return resolved.relative_to(root.resolve()).as_posix()
        except ValueError:
            pass
    return resolved.as_posix()


class Ingestor:
    def __init__(self, index: Index, embedder: Embedder | None, config: RetrievalConfig,
                 options: LoadOptions | None = None, root: Path | None = None, follow_links: bool = False,
                 embed: bool = True, embed_progress: EmbedProgress | None = None, shard: Shard | None = None):
        self.index = index
        self.shard = shard
        self.embed = embed
        self.embed_progress = embed_progress
        self.follow_links = follow_links
        self.embedder = embedder
        self.options = options or LoadOptions()
        self.root = root
        from flywheel.retrieval.chunking import approximate_tokens, split_by_characters

        size = config.chunk_tokens
        # Documents in a language the embedder doesn't cover are never embedded, so they are chunked at the
        # configured size, not cut to the embedder's window and counted in its tokenizer; so are those it reads
        # as glosses (Chinese with the local MiniLM): its window counts the gloss, not the text, and keyword
        # search and answers keep the passages they had before glosses.
        self.plain_chunker = Chunker(approximate_tokens, split_by_characters, size, config.overlap)
        self.chunker = self.plain_chunker
        if embedder is not None:
            size = max(16, min(size, embedder.max_tokens - 2 - HEADER_TOKENS))
            self.chunker = Chunker(embedder.count_tokens, embedder.hard_split, size, config.overlap)
        self.model = embedder.name if embedder is not None else "none"
        self.writes = SharedTransaction(index)
        self.settings = content_hash(CHUNKER_VERSION, TOKENIZER_VERSION, self.model, str(size), str(config.overlap),
                                     "by-language", str(config.chunk_tokens))

    # ---------------------------------------------------------------- the run

    def run(self, paths: Sequence[str | Path], tenant: str, sync: bool, progress: Progress | None) -> IngestSummary:
        check_tenant(tenant)
        started = time.perf_counter()
        summary = IngestSummary()
        roots = [Path(p) for p in paths]
        for p in roots:
            if not p.exists():
                raise UserError(f"no such file or folder: {p}", hint="check the path passed to `flywheel ingest`")
        files = list(dict.fromkeys(f for p in roots for f in self._walk(p, summary)))
        files = [f for f in files if in_shard(source_name(f, self.root), self.shard)]
        if progress:
            progress(0, len(files), "", 0)
        seen: set[str] = set()
        with self.writes.open():
            for i, path in enumerate(files):
                source = source_name(path, self.root)
                seen.add(source)
                summary.files += 1
                if progress:
                    progress(i, len(files), source, summary.chunks_added)
                with tracer.span("retrieval.ingest_file", kind="tool",
                                 inputs={"source": source, "tenant": tenant}) as sp:
                    status = self._file(path, source, tenant, summary, progress, i, len(files))
                    sp.set(outputs=status)
                if progress:
                    progress(i + 1, len(files), source, summary.chunks_added)
        if sync:
            self._sync(roots, seen, tenant, summary)
        self.index.refresh_languages(tenant)
        self.index.invalidate(tenant)
        summary.keyword_seconds = round(time.perf_counter() - started, 3)
        if self.embedder is not None and self.embed:
            # Also picks up chunks of earlier runs left waiting (--no-embed, a killed embed, another embedder).
            done = embed_pending(self.index, self.embedder, tenant, progress=self.embed_progress)
            summary.embedded, summary.embedder_backend = done.embedded, done.backend
            summary.embed_seconds = done.seconds
        elif self.embedder is not None:
            summary.embed_waiting = waiting_count(self.index, self.embedder, tenant)
        if summary.not_embedded and self.embedder is not None:
            covered = self.embedder.languages_named()
            summary.not_embedded_reason = (f"the embedder {self.model} covers {covered} only; keyword search "
                                           f"finds these chunks (a multilingual embedder would embed them)")
        summary.seconds = round(time.perf_counter() - started, 3)
        return summary

    def _walk(self, root: Path, summary: IngestSummary) -> Iterable[Path]:
        """The files under `root`; without `follow_links`, a symbolic link leading outside `root` (to
        /etc/shadow, ~/.ssh …) is skipped with a reason instead of being read."""
        top = root.resolve()
        base = self.root.absolute() if self.root is not None else None
        unreadable: list[tuple[Path, str]] = []
        for path in walk(root, self.follow_links, unreadable):
            shown = self._shown(path, base)
            if path.is_symlink() and not path.exists():  # (resolving it would fail or name what it points to)
                summary.skipped.append((shown, _broken_link(path)))
                continue
            target = path.resolve()
            if self.follow_links or path == root or target == top or top in target.parents:
                yield path
            else:
                summary.skipped.append((shown, LINK_OUTSIDE))
        summary.skipped.extend((self._shown(folder, base), reason) for folder, reason in unreadable)

    @staticmethod
    def _shown(path: Path, base: Path | None) -> str:
        """How the summary names a file it does not read: like its source (not via the link's target)."""
        link = Path(os.path.normpath(path.absolute()))  # ../docs/a.txt → /home/me/docs/a.txt, as sources are
        return link.relative_to(base).as_posix() if base is not None and base in link.parents else str(link)

    def _file(self, path: Path, source: str, tenant: str, summary: IngestSummary, progress: Progress | None,
              i: int, n: int) -> str:
        state = self.index.file_state(tenant, source)
        try:
            loader_for(path)
            size = path.stat().st_size
            if size > self.options.max_bytes:
                raise Skip(too_large(size, self.options))
            file_hash = hashlib.sha256(path.read_bytes()).hexdigest() if size else ""
            if (state and state["status"] == "complete" and state["file_hash"] == file_hash
                    and state["settings"] == self.settings):
                summary.unchanged += 1
                return "unchanged"
            loaded = load_file(path, source=source, tenant=tenant, options=self.options)
        except (Skip, OSError) as exc:
            reason = str(exc) if isinstance(exc, Skip) else f"cannot read: {exc.strerror or exc}"
            summary.skipped.append((source, reason))
            if state:  # it was indexed before and is unusable now: its old chunks would be stale
                with self.writes() as conn:
                    summary.chunks_removed += self.index.delete_source(conn, tenant, source, forget=True)
                self.writes.done(0)
            return f"skipped: {reason}"
        summary.warnings.extend((source, w) for w in loaded.warnings)
        for kind, count in loaded.dropped.items():
            summary.boilerplate[kind] = summary.boilerplate.get(kind, 0) + count
        resume = bool(state and state["status"] == "partial" and state["file_hash"] == file_hash
                      and state["settings"] == self.settings)
        done = self.index.doc_ids(tenant, source) if resume else set()
        todo = [d for d in loaded.docs if d.id not in done]
        self._write(todo, source, tenant, file_hash, size, len(loaded.docs), replace=bool(state) and not resume,
                    summary=summary,
                    progress=lambda extra=0: progress and progress(i, n, source, summary.chunks_added + extra))
        summary.indexed += 1
        return "resumed" if resume else ("replaced" if state else "added")

    def _write(self, docs: list[Document], source: str, tenant: str, file_hash: str, size: int, n_docs: int, *,
               replace: bool, summary: IngestSummary, progress: Callable[..., Any]) -> None:
        batches = [self._prepare(batch, tenant, summary) for batch in self._batches(docs)]
        self.write_rows(batches, source, tenant, file_hash, size, n_docs, replace=replace, summary=summary,
                        progress=progress)

    def write_rows(self, batches: list[list[dict]], source: str, tenant: str, file_hash: str, size: int,
                   n_docs: int, *, replace: bool, summary: IngestSummary, progress: Callable[..., Any],
                   vectors: dict[str, Any] | None = None) -> None:
        """Write a file's prepared chunk rows, one transaction per batch (`vectors`: embeddings computed
        elsewhere, by embed_hash, written with the first batch)."""
        for b, rows in enumerate(batches or [[]]):
            last = b == max(len(batches), 1) - 1
            state = {"file_hash": file_hash, "settings": self.settings, "size": size, "docs": n_docs,
                     "tokenizer": TOKENIZER_VERSION}
            with self.writes() as conn:
                if b == 0:
                    if replace:
                        summary.chunks_removed += self.index.delete_source(conn, tenant, source)
                    if not last:  # (a file written in one transaction is marked complete at once, below)
                        self.index.set_file_state(conn, tenant, source, status="partial", chunks=0, **state)
                    if vectors and self.embedder is not None:
                        self.index.put_embeddings(conn, self.model, vectors, tenant)
                added = self.index.insert_chunks(conn, rows)  # ids already there (a concurrent run) are skipped
                if last:
                    count = self.index.count_source(conn, tenant, source)
                    self.index.set_file_state(conn, tenant, source, status="complete", chunks=count,
                                              **(state if b == 0 else {}))
            summary.chunks_added += added
            self.writes.done(len(rows))
            progress()

    def _batches(self, docs: list[Document]) -> Iterable[list[tuple[Document, list[Chunk]]]]:
        batch: list[tuple[Document, list[Chunk]]] = []
        size = 0
        for doc in docs:
            language = detect_language(doc.text[:4000])
            windowed = self.embedder is None or (self.embedder.covers(language)
                                                 and language not in self.embedder.glossed)
            chunks = (self.chunker if windowed else self.plain_chunker).chunk(doc)
            batch.append((doc, chunks))
            size += len(chunks)
            if size >= BATCH_CHUNKS:
                yield batch
                batch, size = [], 0
        if batch:
            yield batch

    def _prepare(self, batch: list[tuple[Document, list[Chunk]]], tenant: str, summary: IngestSummary
                 ) -> list[dict]:
        rows: list[dict] = []
        now = time.time()
        scrubbed: dict[str, str] = {}  # titles, headings and metadata repeat from chunk to chunk

        def scrub(value: str) -> str:
            out = scrubbed.get(value)
            if out is None:
                out = scrubbed[value] = scrub_secrets(value)
            return out

        for doc, chunks in batch:
            # A credential in a document is never indexed: anyone who can ask could have it quoted back.
            title = scrub(doc.title) if doc.title else doc.title
            for c in chunks:
                text = scrub_secrets(c.text)
                location = scrub(c.location) if c.location else c.location
                full = embedding_text(title, location, text)
                lang = detect_language(text)
                if self.embedder is not None and not self.embedder.covers(lang):
                    # never embedded (the embed stage skips its language): its vector would be noise that
                    # search skips anyway, and minutes of CPU on a big corpus
                    summary.not_embedded[lang] = summary.not_embedded.get(lang, 0) + 1
                toks = keyword_tokens(full)
                meta = {k: scrub(v) if isinstance(v, str) else v for k, v in (c.metadata or {}).items()}
                rows.append({"id": c.id, "doc_id": c.doc_id, "tenant": tenant, "source": c.source,
                             "ordinal": c.ordinal, "location": location, "title": title, "text": text,
                             "tokens": " ".join(toks), "n_tokens": len(toks), "lang": lang,
                             "embed_hash": content_hash(full), "metadata": meta if c.metadata is not None else None,
                             "created_at": now})
        return rows

    def _sync(self, roots: list[Path], seen: set[str], tenant: str, summary: IngestSummary) -> None:
        folders = [source_name(p, self.root) for p in roots if p.is_dir()]
        prefixes = [name.rstrip("/") + "/" for name in folders if name != "."]
        whole_root = "." in folders  # the root itself: every source named relative to it (not absolute ones)
        files = {source_name(p, self.root) for p in roots if p.is_file()}
        for source in self.index.sources(tenant):
            if source in seen or not in_shard(source, self.shard):  # another shard's file is its business
                continue
            if (any(source.startswith(pre) for pre in prefixes) or source in files
                    or (whole_root and not source.startswith("/"))):
                with self.writes() as conn:
                    summary.chunks_removed += self.index.delete_source(conn, tenant, source, forget=True)
                summary.removed_files.append(source)


def ingest(paths: Sequence[str | Path], store: Any, config: Config | RetrievalConfig, tenant: str = "default",
           sync: bool = False, progress: Progress | None = None, *, embedder: Embedder | None | str = "config",
           options: LoadOptions | None = None, root: str | Path | None = None,
           follow_links: bool = False, embed: bool = True, embed_progress: EmbedProgress | None = None,
           shard: Shard | None = None, ray: str | None = None) -> IngestSummary:
    """Index files and folders into `store` for `tenant`. `config` is the project Config (its `retrieval`
    section and model aliases) or just a RetrievalConfig. `root`: sources are stored relative to it.
    `follow_links`: also index what symbolic links leading outside the ingested folders point to.
    `embed`: run the embed stage once the chunks are written (False: they stay keyword-searchable and wait for
    `flywheel embed` or the server's embed worker; `summary.embed_waiting` says how many).
    `shard`: (i, n) handles only the files of partition i of n (see `in_shard`); the n runs together write
    what one run writes (chunk ids are content hashes, so overlapping or repeated runs add nothing twice).
    `ray`: the address of a Ray cluster (HOST:PORT or auto) to load, chunk and embed on (ray_ingest.py)."""
    rconfig = config.retrieval if isinstance(config, Config) else config
    models = config.models if isinstance(config, Config) else {}
    if embedder == "config":
        embedder = build_embedder(rconfig, models)
    ingestor = Ingestor(open_index(store, rconfig), cast("Embedder | None", embedder), rconfig, options,
                        Path(root) if root else None, follow_links=follow_links, embed=embed,
                        embed_progress=embed_progress, shard=shard)
    with tracer.span("retrieval.ingest", kind="tool", inputs={"paths": [str(p) for p in paths], "tenant": tenant},
                     **{"flywheel.tenant": tenant}) as span:
        if ray is not None:
            from flywheel.retrieval.ray_ingest import ray_ingest

            summary = ray_ingest(ingestor, paths, tenant, ray, sync, rconfig, models, options or LoadOptions())
        else:
            summary = ingestor.run(paths, tenant, sync, progress)
        span.set(outputs={k: v for k, v in summary.to_dict().items() if k not in ("skipped", "warnings")})
    return summary
