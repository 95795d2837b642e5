"""Synthetic chunks with random (uniform or clustered) unit vectors, written straight into an index: for scale
measurements (`flywheel bench scale`: a million 384-d vectors) and tests, where real text and a real embedder
would only cost time. Rows are real `chunks` / `embeddings` rows, so search runs its ordinary code path over
them."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np

from flywheel.retrieval.index.base import Index
from flywheel.types import content_hash

MODEL = "synthetic-384"


def unit_vectors(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.standard_normal((n, dim), dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v


def clustered_vectors(rng: np.random.Generator, n: int, dim: int, centres: np.ndarray, basis: np.ndarray,
                      spread: float = 0.25, jitter: float = 0.01) -> np.ndarray:
    """Unit vectors from a Gaussian mixture: a random centre of `centres`, plus `spread` along the low-dimensional
    `basis` (rows: directions, shared by all clusters), plus a little isotropic `jitter`. Real embeddings cluster
    by topic and lie near a low-dimensional manifold; uniform random unit vectors have no neighbourhood structure
    at all and are the worst case of every approximate index. `mixture(rng, dim)` makes centres and basis."""
    pick = rng.integers(0, len(centres), n)
    low = rng.standard_normal((n, basis.shape[0]), dtype=np.float32)
    v = centres[pick] + spread * (low @ basis) + jitter * rng.standard_normal((n, dim), dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v


def mixture(rng: np.random.Generator, dim: int, n_centres: int = 2000, intrinsic: int = 16) -> tuple[np.ndarray,
                                                                                                      np.ndarray]:
    """(centres, basis) for `clustered_vectors`: unit centres and an `intrinsic`-dimensional orthonormal basis."""
    centres = unit_vectors(rng, n_centres, dim)
    basis = np.linalg.qr(rng.standard_normal((dim, intrinsic)))[0].T.astype(np.float32)
    return centres, basis


def chunk_row(tenant: str, source: str, ordinal: int, text: str) -> dict:
    key = f"{tenant}\x00{source}\x00{ordinal}\x00{text}"
    return {"id": content_hash("synthetic", key), "doc_id": content_hash("doc", tenant, source), "tenant": tenant,
            "source": source, "ordinal": ordinal, "location": None, "title": None, "text": text, "tokens": text,
            "n_tokens": len(text.split()), "lang": "en", "embed_hash": content_hash(key), "metadata": None,
            "created_at": time.time()}


def add_chunks(index: Index, tenant: str, source: str, vectors: np.ndarray, *, start: int = 0,
               model: str = MODEL, batch: int = 20000) -> list[dict]:
    """Write len(vectors) chunks of `source` (ordinals start …) with their vectors. Returns the rows."""
    return list(_written(index, tenant, source, vectors, len(vectors), start, model, batch))


def add_chunks_without_vectors(index: Index, tenant: str, source: str, count: int, start: int = 0) -> list[dict]:
    """Chunks only, their vectors left for later (as the embed stage finds them); `add_vectors` adds them."""
    return list(_written(index, tenant, source, None, count, start, MODEL, 20000))


def add_vectors(index: Index, rows: list[dict], vectors: np.ndarray, model: str = MODEL) -> None:
    by_tenant: dict[str, dict[str, np.ndarray]] = {}
    for r, v in zip(rows, vectors, strict=True):
        by_tenant.setdefault(r["tenant"], {})[r["embed_hash"]] = v
    index.prepare_tenants(by_tenant)
    with index.transaction() as conn:
        for tenant, mine in by_tenant.items():
            index.put_embeddings(conn, model, mine, tenant)


def _written(index: Index, tenant: str, source: str, vectors: np.ndarray | None, count: int, start: int,
             model: str, batch: int) -> Iterator[dict]:
    for lo in range(0, count, batch):
        rows = [chunk_row(tenant, source, start + i, f"chunk {start + i} of {source}")
                for i in range(lo, min(count, lo + batch))]
        with index.transaction() as conn:
            if vectors is not None:
                index.put_embeddings(conn, model, {r["embed_hash"]: vectors[lo + j] for j, r in enumerate(rows)},
                                     tenant)
            index.insert_chunks(conn, rows)
        yield from rows
