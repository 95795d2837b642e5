"""A sentence-transformers model folder on disk (`retrieval: {embedder: local, embedder_model: DIR}`): what it
holds, checked once with a clear UserError for each mistake, and its weights as float32 NumPy arrays.

Read from the folder (nothing is downloaded, torch is not needed):
- config.json: `model_type` bert (BERT, incl. Chinese BERT; multilingual-e5, paraphrase-multilingual-MiniLM)
  or xlm-roberta / roberta (position ids start at padding_idx + 1); exact `gelu` activation.
- weights: model.safetensors (F32/F16/BF16) or pytorch_model.bin (read by torch_weights.py, never unpickled
  blindly); key prefixes `bert.` / `roberta.` / none.
- tokenizer: tokenizer.json (WordPiece after BertNormalizer runs in wordpiece.py; any other kind — XLM-R's
  Unigram — through the `tokenizers` package), or vocab.txt + tokenizer_config.json (`do_lower_case` …).
- modules.json: Transformer → Pooling → Normalize (optional); pooling from 1_Pooling/config.json: mean
  (mean_sqrt_len gives the same direction, so the same vectors once normalised) or cls. No modules.json: mean
  pooling, as sentence-transformers does. Vectors are always L2-normalised (dot product = cosine).
- max_seq_length: sentence_bert_config.json, else min(tokenizer model_max_length, positions of the model).
- prompts: config_sentence_transformers.json `prompts` — `query` before queries, `document` (or `passage`,
  `doc`, `corpus`) before passages; `default_prompt_name` for the side that has none.

Languages (`languages_from_vocabulary`): `retrieval.embedder_languages` when given; else read from the
vocabulary, counting the tokens by the script of their first letter. Five or more scripts with ≥ 1000 tokens
each: a multilingual vocabulary (XLM-R, mBERT), every language (None). Otherwise the script with the most tokens
and any other with at least half as many: Han → zh, ja; kana → ja; Hangul → ko; Latin → the Latin-script
languages (flywheel.text.language.LATIN, as for MiniLM); Cyrillic → ru, uk; Arabic, Hebrew, Greek, Devanagari,
Thai → ar, he, el, hi, th. So a Chinese BERT vocabulary (14,644 Han tokens, 3,805 Latin) covers zh and ja, and
an English one (27,662 Latin, 488 Han) the Latin-script languages.

The embedder's name, which keys the vector cache and the HNSW partition, is the folder's name + a hash of the
weights file and of what changes the vectors (pooling, prompts, max_seq_length), so switching models or
settings never mixes vectors.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np

from flywheel.errors import UserError
from flywheel.text.language import LATIN

ARCHITECTURES = {"bert": ("BertModel", "BertForMaskedLM", "BertForPreTraining"),
                 "xlm-roberta": ("XLMRobertaModel", "XLMRobertaForMaskedLM"),
                 "roberta": ("RobertaModel", "RobertaForMaskedLM")}
SUPPORTED = "BERT (model_type bert: BertModel …) and XLM-R/RoBERTa (xlm-roberta, roberta)"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
PREFIXES = ("bert.", "roberta.", "model.")
DOCUMENT_PROMPTS = ("document", "passage", "doc", "corpus")
INSTALL_TOKENIZERS = "pip install tokenizers"
_HINT = "embedder_model is a sentence-transformers model folder (config.json, model.safetensors, tokenizer.json)"
_SCRIPT_RANGES = {
    "han": ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0xF900, 0xFAFF), (0x20000, 0x2CEAF)),
    "kana": ((0x3040, 0x30FF),),
    "hangul": ((0xAC00, 0xD7AF), (0x1100, 0x11FF), (0x3130, 0x318F)),
    "latin": ((0x41, 0x5A), (0x61, 0x7A), (0xC0, 0x24F)),
    "cyrillic": ((0x400, 0x4FF),),
    "arabic": ((0x600, 0x6FF),), "hebrew": ((0x590, 0x5FF),), "greek": ((0x370, 0x3FF),),
    "devanagari": ((0x900, 0x97F),), "thai": ((0xE00, 0xE7F),),
}
_SCRIPT_LANGUAGES: dict[str, tuple[str, ...]] = {
    "han": ("zh", "ja"), "kana": ("ja",), "hangul": ("ko",), "latin": tuple(LATIN), "cyrillic": ("ru", "uk"),
    "arabic": ("ar",), "hebrew": ("he",), "greek": ("el",), "devanagari": ("hi",), "thai": ("th",),
}
MULTILINGUAL_SCRIPTS = 5  # scripts with at least SCRIPT_TOKENS tokens each
SCRIPT_TOKENS = 1000


@dataclass
class ModelFolder:
    path: Path  # the folder given (resolved)
    transformer_dir: Path  # where config.json, the weights and the tokenizer are (modules.json's Transformer)
    config: dict
    model_type: str  # bert | xlm-roberta | roberta
    weights: Path
    pooling: str  # mean | cls
    max_seq_length: int
    query_prompt: str = ""
    document_prompt: str = ""
    languages: frozenset[str] | None = None
    languages_from: str = "the vocabulary"  # or "embedder_languages"
    name: str = ""
    vocabulary: list[str] = field(default_factory=list, repr=False)

    @property
    def position_offset(self) -> int:
        """XLM-R/RoBERTa number positions from padding_idx + 1 (the padding row and the one before stay unused)."""
        return int(self.config.get("pad_token_id", 1)) + 1 if self.model_type != "bert" else 0

    @property
    def dim(self) -> int:
        return int(self.config["hidden_size"])

    def tokenizer(self) -> Any:
        return load_tokenizer(self.transformer_dir)

    def read_weights(self) -> dict[str, np.ndarray]:
        return read_encoder_weights(self.weights, int(self.config["num_hidden_layers"]))

    def summary(self) -> str:
        langs = ", ".join(sorted(self.languages)) if self.languages is not None else "every language"
        return (f"{self.name} ({self.path}; {self.model_type}, {self.pooling} pooling, {self.max_seq_length} "
                f"tokens; languages: {langs}, from {self.languages_from})")


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path}: {exc}", hint="restore the file from the model's repository") from None


def open_model_folder(raw: str | Path, languages: list[str] | None = None, where: str | None = None
                      ) -> ModelFolder:
    """Check the folder `raw` (`~` expanded; relative paths are relative to the working directory here: the
    config loader anchors them to flywheel.yaml's folder first) and describe it; UserError on each mistake."""
    path = Path(raw).expanduser()
    if not path.exists():
        raise UserError(f"embedder model folder {path} does not exist", where=where, hint=_HINT)
    if not path.is_dir():
        raise UserError(f"embedder model {path} is not a folder", where=where, hint=_HINT)
    path = path.resolve()
    base = path
    modules = _json(path / "modules.json") if (path / "modules.json").is_file() else None
    pooling, pooling_dir = "mean", None
    if modules is not None:
        for module in modules:
            kind = str(module.get("type", "")).rsplit(".", 1)[-1]
            where_module = path / str(module.get("path", ""))
            if kind == "Transformer":
                base = where_module
            elif kind == "Pooling":
                pooling_dir = where_module
            elif kind != "Normalize":
                raise UserError(f"{path}/modules.json has a `{module.get('type')}` module; flywheel runs "
                                "Transformer → Pooling → Normalize only", where=where,
                                hint="use a model without Dense or other extra layers")
    if not (base / "config.json").is_file():
        raise UserError(f"{base} has no config.json: not a Hugging Face model folder", where=where, hint=_HINT)
    config = _json(base / "config.json")
    model_type = str(config.get("model_type", ""))
    archs = [str(a) for a in config.get("architectures") or []]
    if model_type not in ARCHITECTURES or (archs and not set(archs) & set(ARCHITECTURES[model_type])):
        found = ", ".join(archs) or model_type or "no model_type"
        raise UserError(f"{base}/config.json describes a {found} model; the local embedder runs {SUPPORTED}",
                        where=where, hint="pick a BERT or XLM-R sentence-transformers model (bge-small-zh, "
                                          "multilingual-e5-small, paraphrase-multilingual-MiniLM-L12-v2 …), "
                                          "or serve this one behind an OpenAI-compatible embeddings endpoint")
    act = config.get("hidden_act", "gelu")
    if act != "gelu" or config.get("position_embedding_type", "absolute") != "absolute":
        raise UserError(f"{base}/config.json: hidden_act {act!r} / position_embedding_type "
                        f"{config.get('position_embedding_type')!r}; the local embedder runs gelu with absolute "
                        "positions", where=where, hint="serve this model behind an OpenAI-compatible endpoint")
    weights = next((base / n for n in WEIGHT_FILES if (base / n).is_file()), None)
    if weights is None:
        raise UserError(f"{base} has no weights file ({' or '.join(WEIGHT_FILES)})", where=where,
                        hint="download the model's weights into the folder (a sharded model is not supported)")
    if pooling_dir is not None:
        pooling = _pooling(pooling_dir, where)
    bert_cfg = _json(base / "sentence_bert_config.json") if (base / "sentence_bert_config.json").is_file() else {}
    tok_cfg = _json(base / "tokenizer_config.json") if (base / "tokenizer_config.json").is_file() else {}
    offset = int(config.get("pad_token_id", 1)) + 1 if model_type != "bert" else 0
    positions = int(config.get("max_position_embeddings", 512)) - offset
    longest = int(bert_cfg.get("max_seq_length") or min(int(tok_cfg.get("model_max_length") or positions),
                                                        positions))
    st_cfg = path / "config_sentence_transformers.json"
    prompts = (_json(st_cfg).get("prompts") or {}) if st_cfg.is_file() else {}
    default = prompts.get(_json(st_cfg).get("default_prompt_name") or "", "") if st_cfg.is_file() else ""
    query = str(prompts.get("query", default) or "")
    document = str(next((prompts[k] for k in DOCUMENT_PROMPTS if k in prompts), default) or "")
    folder = ModelFolder(path=path, transformer_dir=base, config=config, model_type=model_type, weights=weights,
                         pooling=pooling, max_seq_length=min(longest, positions), query_prompt=query,
                         document_prompt=document)
    folder.vocabulary = vocabulary(base)
    if languages:
        folder.languages, folder.languages_from = frozenset(languages), "embedder_languages"
    else:
        folder.languages = languages_from_vocabulary(folder.vocabulary)
    folder.name = model_name(folder)
    return folder


def _pooling(folder: Path, where: str | None) -> str:
    cfg = _json(folder / "config.json") if (folder / "config.json").is_file() else {"pooling_mode_mean_tokens": True}
    on = sorted(k.removeprefix("pooling_mode_") for k, v in cfg.items() if k.startswith("pooling_mode_") and v is True)
    if isinstance(cfg.get("pooling_mode"), str):
        on = [cfg["pooling_mode"]]
    if on == ["cls_token"] or on == ["cls"]:
        return "cls"
    if on in (["mean_tokens"], ["mean_sqrt_len_tokens"], ["mean"]):
        return "mean"  # mean_sqrt_len: the mean times √n, the same direction once L2-normalised
    if cfg.get("include_prompt") is False:
        on.append("include_prompt: false")
    raise UserError(f"{folder}/config.json pools with {', '.join(on) or 'nothing'}; the local embedder pools "
                    "with mean or cls (one of them)", where=where, hint="use a model with mean or CLS pooling")


def vocabulary(folder: Path) -> list[str]:
    """The tokens of the folder's tokenizer (tokenizer.json's model vocabulary, else vocab.txt)."""
    if (folder / "tokenizer.json").is_file():
        vocab = (_json(folder / "tokenizer.json").get("model") or {}).get("vocab") or {}
        return list(vocab) if isinstance(vocab, dict) else [str(v[0]) for v in vocab]
    if (folder / "vocab.txt").is_file():
        return (folder / "vocab.txt").read_text(encoding="utf-8").splitlines()
    return []


def _script(c: str) -> str | None:
    cp = ord(c)
    return next((s for s, ranges in _SCRIPT_RANGES.items() if any(lo <= cp <= hi for lo, hi in ranges)), None)


def languages_from_vocabulary(tokens: list[str]) -> frozenset[str] | None:
    """The languages a vocabulary covers (module docstring); None: multilingual (every language)."""
    counts: dict[str, int] = {}
    for token in tokens:
        word = token.removeprefix("##").lstrip("▁Ġ")
        letter = next((c for c in word if c.isalpha()), None)
        script = _script(letter) if letter else None
        if script:
            counts[script] = counts.get(script, 0) + 1
    if not counts or sum(n >= SCRIPT_TOKENS for n in counts.values()) >= MULTILINGUAL_SCRIPTS:
        return None
    most = max(counts.values())
    return frozenset(lang for s, n in counts.items() if 2 * n >= most for lang in _SCRIPT_LANGUAGES[s])


def model_name(folder: ModelFolder) -> str:
    """folder name + 10 hex digits of a hash of the weights and of the settings that change the vectors."""
    digest = hashlib.blake2b(digest_size=5)
    with folder.weights.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    digest.update(json.dumps([folder.pooling, folder.max_seq_length, folder.query_prompt, folder.document_prompt,
                              folder.model_type]).encode())
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", folder.path.name) or "model"
    return f"{stem}-{digest.hexdigest()}"


def read_encoder_weights(path: Path, layers: int) -> dict[str, np.ndarray]:
    """The encoder's tensors as float32, keys without a `bert.`/`roberta.` prefix; UserError when one is missing."""
    if path.suffix == ".safetensors":
        from flywheel.retrieval.minilm import read_safetensors

        try:
            raw = read_safetensors(path)
        except (OSError, ValueError, KeyError) as exc:
            raise UserError(f"cannot read {path}: {exc}", hint="download the weights file again") from None
    else:
        from flywheel.retrieval.torch_weights import read_torch_state_dict

        raw = read_torch_state_dict(path)
    out: dict[str, np.ndarray] = {}
    for key, value in raw.items():
        bare = next((key[len(p):] for p in PREFIXES if key.startswith(p)), key)
        if bare.startswith(("embeddings.", "encoder.")):
            out[bare] = np.asarray(value, dtype=np.float32)
    needed = ["embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
              "embeddings.token_type_embeddings.weight", "embeddings.LayerNorm.weight",
              f"encoder.layer.{layers - 1}.output.LayerNorm.bias"]
    missing = [k for k in needed if k not in out]
    if missing:
        raise UserError(f"{path} lacks {missing[0]} (and {len(missing) - 1} more) of a BERT encoder",
                        hint="check config.json matches the weights (num_hidden_layers, model_type)")
    return out


class HFTokenizer:
    """The `tokenizers` package behind wordpiece.WordPiece's interface (encode / encode_batch: ids, offsets).
    Stateless per call (truncation is applied to each encoding, not set on the shared tokenizer): thread-safe."""

    def __init__(self, path: Path):
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(path))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.specials = self.tokenizer.num_special_tokens_to_add(False)

    def encode(self, text: str, add_special_tokens: bool = True, max_length: int | None = None) -> Any:
        return self.encode_batch([text], add_special_tokens, max_length)[0]

    def encode_batch(self, texts: list[str], add_special_tokens: bool = True, max_length: int | None = None
                     ) -> list[Any]:
        """`max_length` counts the special tokens, which truncation keeps (as sentence-transformers does)."""
        encodings = self.tokenizer.encode_batch(texts, add_special_tokens=False)
        out = []
        for enc in encodings:
            if max_length is not None:
                enc.truncate(max(0, max_length - (self.specials if add_special_tokens else 0)))
            out.append(self.tokenizer.post_process(enc) if add_special_tokens else enc)
        return out


def load_tokenizer(folder: Path) -> Any:
    """WordPiece (wordpiece.py) when it reproduces the folder's tokenizer, else the `tokenizers` package."""
    from flywheel.retrieval.wordpiece import Normalizer, WordPiece, runs_here

    tok_json = folder / "tokenizer.json"
    if tok_json.is_file():
        if runs_here(_json(tok_json)):
            return WordPiece(tok_json)
        if find_spec("tokenizers") is None:
            kind = (_json(tok_json).get("model") or {}).get("type", "unknown")
            raise UserError(f"{tok_json} is a {kind} tokenizer, which needs the `tokenizers` package",
                            hint=INSTALL_TOKENIZERS)
        return HFTokenizer(tok_json)
    if (folder / "vocab.txt").is_file():
        cfg = _json(folder / "tokenizer_config.json") if (folder / "tokenizer_config.json").is_file() else {}
        vocab = {token: i for i, token in enumerate(vocabulary(folder))}
        if not {"[CLS]", "[SEP]", "[UNK]"} <= set(vocab):
            raise UserError(f"{folder}/vocab.txt has no [CLS]/[SEP]/[UNK]: not a BERT WordPiece vocabulary",
                            hint="add the model's tokenizer.json to the folder")
        return WordPiece(vocab=vocab, normalizer=Normalizer(
            handle_chinese_chars=bool(cfg.get("tokenize_chinese_chars", True)),
            strip_accents=cfg.get("strip_accents"), lowercase=bool(cfg.get("do_lower_case", True))))
    raise UserError(f"{folder} has no tokenizer (tokenizer.json or vocab.txt)",
                    hint="copy the model's tokenizer.json into the folder")
