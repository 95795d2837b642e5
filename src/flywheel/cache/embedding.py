"""The semantic cache's view of an embedder: `embed(texts) -> float32 array`, plus a name.

The cache never builds an embedder itself (retrieval's are a sibling room): whoever builds the cache passes
one in — the Runtime passes retrieval's local MiniLM. The name is part of every semantic scope, so vectors of
two different embedders are never compared.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from flywheel.protocols import Embedder

__all__ = ["Embedder", "HashingEmbedder", "embedder_name", "normalise_rows"]


def normalise_rows(vectors: Any) -> np.ndarray:
    arr = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(arr / norms, dtype=np.float32)


def embedder_name(embedder: Any) -> str:
    for attr in ("name", "model_name"):
        value = getattr(embedder, attr, None)
        if isinstance(value, str) and value:
            return value
    return type(embedder).__qualname__


class HashingEmbedder:
    """Lexical stand-in: each lower-cased word adds a fixed pseudo-random vector. Cosine then tracks word
    overlap. For tests and model-free demos of the cache mechanics, not for real semantic matching."""

    name = "hashing"

    def __init__(self, dim: int = 256):
        self.dim = dim

    def _word(self, word: str) -> np.ndarray:
        import hashlib

        seed = int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(), "little")
        return np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import re

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[i] += self._word(word)
        return normalise_rows(out)
