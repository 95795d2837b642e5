"""The BERT WordPiece tokenizer of all-MiniLM-L6-v2 in plain Python, read from its tokenizer.json: the same ids
and offsets as Hugging Face `tokenizers` (BertNormalizer → BertPreTokenizer → WordPiece, special tokens matched
verbatim first; tests/test_retrieval_wordpiece.py compares them on thousands of texts when `tokenizers` is
installed). It replaces that package so the `local` extra does not pull huggingface_hub, hf-xet, fsspec …
(37 MB of a light install). Cost: ~1 µs per character, small next to the model's ~20 ms per chunk.

Normalisation follows the Rust BertNormalizer order, character by character (so every token maps back to
its characters in the original text): drop NUL, U+FFFD and control characters (tab/CR/LF become spaces, as do
other space separators); space out CJK ideographs (one token each, as BERT's basic tokenizer does); NFD and
drop non-spacing marks; lowercase — each step as the tokenizer.json's `normalizer` options say (Chinese BERT
vocabularies keep case and accents: `lowercase: false`). A folder with only vocab.txt takes them from
tokenizer_config.json (model_folder.py).
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path

_WORDS = re.compile(r"\S+")  # after normalisation the only spaces left are ' ' (and U+2028/2029, also split)
_CJK = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
        (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


@dataclass
class Encoding:
    ids: list[int]
    offsets: list[tuple[int, int]]  # (start, end) character offsets of each token in the original text


@dataclass(frozen=True)
class Normalizer:
    """BertNormalizer's options (tokenizer.json `normalizer`; tokenizer_config.json for a vocab.txt folder).
    `strip_accents` None follows `lowercase`, as in `tokenizers`."""

    clean_text: bool = True
    handle_chinese_chars: bool = True
    strip_accents: bool | None = None
    lowercase: bool = True


def _normalize_char(c: str, options: Normalizer = Normalizer()) -> str:
    cp = ord(c)
    if options.clean_text:
        if cp == 0 or cp == 0xFFFD:
            return ""
        if c in "\t\n\r" or unicodedata.category(c) == "Zs":
            return " "
        category = unicodedata.category(c)
        if category.startswith("C") and category != "Cn":  # unassigned code points stay, as in `tokenizers`
            return ""
    if options.handle_chinese_chars and any(lo <= cp <= hi for lo, hi in _CJK):
        return f" {c} "
    out = c
    if options.lowercase if options.strip_accents is None else options.strip_accents:
        out = "".join(d for d in unicodedata.normalize("NFD", c) if unicodedata.category(d) != "Mn")
    return "".join(ch.lower() for ch in out) if options.lowercase else out


@lru_cache(maxsize=4096)
def _is_punctuation(c: str) -> bool:
    cp = ord(c)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(c).startswith("P")


def runs_here(spec: dict) -> bool:
    """Whether this module reproduces the tokenizer.json `spec`: WordPiece after BertNormalizer (or none) and
    BertPreTokenizer, [CLS] … [SEP] around the text. Others (XLM-R's Unigram …) need the `tokenizers` package."""
    normalizer = spec.get("normalizer") or {"type": "BertNormalizer"}
    pre = spec.get("pre_tokenizer") or {}
    return ((spec.get("model") or {}).get("type") == "WordPiece" and normalizer.get("type") == "BertNormalizer"
            and pre.get("type") == "BertPreTokenizer"
            and {"[CLS]", "[SEP]"} <= {t.get("content") for t in spec.get("added_tokens", [])})


class WordPiece:
    """`tokenizer.json` of a BERT WordPiece model (runs_here), or `vocab` + `normalizer` for a vocab.txt folder."""

    def __init__(self, tokenizer_json: Path | None = None, *, vocab: dict[str, int] | None = None,
                 normalizer: Normalizer | None = None, unk_token: str = "[UNK]",
                 special_tokens: tuple[str, ...] = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")):
        if tokenizer_json is not None:
            spec = json.loads(tokenizer_json.read_text(encoding="utf-8"))
            model = spec["model"]
            self.vocab: dict[str, int] = model["vocab"]
            self.unk = self.vocab[model["unk_token"]]
            self.prefix = model.get("continuing_subword_prefix", "##")
            self.max_chars = int(model.get("max_input_chars_per_word", 100))
            self.special = {t["content"]: int(t["id"]) for t in spec.get("added_tokens", [])}
            options = {k: v for k, v in (spec.get("normalizer") or {}).items() if k in Normalizer.__annotations__}
            normalizer = Normalizer(**options)
        else:
            assert vocab is not None, "a tokenizer.json or a vocabulary"
            self.vocab = vocab
            self.unk = vocab[unk_token]
            self.prefix, self.max_chars = "##", 100
            self.special = {t: vocab[t] for t in special_tokens if t in vocab}
        self.normalizer = normalizer or Normalizer()
        self._special_rx = re.compile("|".join(re.escape(s) for s in sorted(self.special, key=len, reverse=True)))
        self.cls, self.sep = self.special["[CLS]"], self.special["[SEP]"]
        self._normalize = lru_cache(maxsize=4096)(partial(_normalize_char, options=self.normalizer))

    def encode(self, text: str, add_special_tokens: bool = True, max_length: int | None = None) -> Encoding:
        """Ids and offsets; `max_length` truncates (special tokens included) like `enable_truncation`."""
        ids: list[int] = []
        offsets: list[tuple[int, int]] = []
        pos = 0
        for m in self._special_rx.finditer(text) if self.special else ():
            self._encode_plain(text, pos, m.start(), ids, offsets)
            ids.append(self.special[m.group()])
            offsets.append((m.start(), m.end()))
            pos = m.end()
        self._encode_plain(text, pos, len(text), ids, offsets)
        if add_special_tokens:
            if max_length is not None:
                keep = max(0, max_length - 2)
                ids, offsets = ids[:keep], offsets[:keep]
            ids = [self.cls, *ids, self.sep]
            offsets = [(0, 0), *offsets, (0, 0)]
        elif max_length is not None:
            ids, offsets = ids[:max_length], offsets[:max_length]
        return Encoding(ids, offsets)

    def encode_batch(self, texts: list[str], add_special_tokens: bool = True, max_length: int | None = None
                     ) -> list[Encoding]:
        return [self.encode(t, add_special_tokens, max_length) for t in texts]

    def _encode_plain(self, text: str, start: int, end: int, ids: list[int], offsets: list[tuple[int, int]]
                      ) -> None:
        normalize = self._normalize
        parts = [normalize(c) for c in text[start:end]]
        norm = "".join(parts)
        if len(norm) == end - start and all(len(part) == 1 for part in parts):  # most text: the identity
            origin: list[int] | range = range(start, end)
        else:
            origin = [start + i for i, part in enumerate(parts) for _ in part]
        for m in _WORDS.finditer(norm):
            word = m.group()
            if word.isalnum():  # no punctuation inside: the common case, no per-character check
                self._word(word, origin, m.start(), ids, offsets)
                continue
            run = m.start()
            for k in range(m.start(), m.end()):
                if _is_punctuation(norm[k]):
                    if run < k:
                        self._word(norm[run:k], origin, run, ids, offsets)
                    self._word(norm[k], origin, k, ids, offsets)
                    run = k + 1
            if run < m.end():
                self._word(norm[run:m.end()], origin, run, ids, offsets)

    def _word(self, text: str, origin: list[int] | range, at: int, ids: list[int],
              offsets: list[tuple[int, int]]) -> None:
        """WordPiece of one pre-token: `text` is norm[at:at + len(text)]; greedy longest match first."""
        whole = (origin[at], origin[at + len(text) - 1] + 1)
        token = self.vocab.get(text)
        if token is not None:  # most words are in the vocabulary whole
            ids.append(token)
            offsets.append(whole)
            return
        if len(text) > self.max_chars:
            ids.append(self.unk)
            offsets.append(whole)
            return
        pieces: list[tuple[int, int, int]] = []  # (id, start, end) in `text`
        begin = 0
        while begin < len(text):
            end = len(text)
            found = None
            while begin < end:
                piece = text[begin:end] if begin == 0 else self.prefix + text[begin:end]
                if piece in self.vocab:
                    found = self.vocab[piece]
                    break
                end -= 1
            if found is None:
                ids.append(self.unk)
                offsets.append(whole)
                return
            pieces.append((found, begin, end))
            begin = end
        for token, b, e in pieces:
            ids.append(token)
            offsets.append((origin[at + b], origin[at + e - 1] + 1))
