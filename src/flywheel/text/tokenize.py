"""Words and keyword tokens, CJK aware, the same for indexing, querying and matching answers to questions.

`segment` cuts Chinese (and Japanese kana) runs into words with jieba, initialised once per process, quietly.
(rjieba is 15x faster but not token-identical: 1 of 25,920 cmrc2018 runs differs, which would change what an
existing index matches; measured 2026-12.) `tokenize` gives the keyword tokens BM25 indexes: NFKC, lower case,
traditional Chinese characters folded to simplified, jieba words for CJK runs, word characters elsewhere,
stopwords dropped unless asked to keep them. `stem` is the one English stemmer (Snowball English, i.e. Porter2, as
Lucene's EnglishAnalyzer, bm25s and Pyserini use): the keyword index stems its word tokens with it
(flywheel.retrieval.tokenize) and the extractive model its question and source words, so both conflate the same
forms (rules → rule, refunded → refund, configuration → configur).

The fold (`fold_traditional`: OpenCC's TSCharacters table, one character to one, traditional_chars.py) makes
發票怎麼開 and 发票怎么开 the same tokens, index and query alike, so each finds the other; it is applied to
the CJK runs before jieba (which segments simplified text better) and only to keyword tokens: `normalize` (cache
keys, the injection model's features) and the text itself (display, citations, answers) keep the characters as
written. It is symmetric, so Japanese kanji (國 and 国 both become 国) still match their own text.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import unicodedata
from types import ModuleType

from flywheel.text.stopwords import STOPWORDS
from flywheel.text.traditional_chars import PAIRS

# Han (incl. extension A and compatibility ideographs) and Japanese kana: written without spaces.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(rf"([{_CJK}]+)|([^\W_{_CJK}]+)")
_HAS_CJK = re.compile(rf"[{_CJK}]")
_WORD = re.compile(r"[^\W_]+")  # what _TOKEN's second group finds in text without CJK
MAX_TOKEN_CHARS = 64  # longer "words" are hashes, base64 or URLs: noise for BM25
_CACHED_RUN_CHARS = 200  # longer CJK runs are segmented every time (rarely repeated, big to keep)
_FOLD = str.maketrans(PAIRS[0::2], PAIRS[1::2])  # every pair lies in _CJK's ranges: runs keep their bounds

_jieba: ModuleType | None = None
_jieba_lock = threading.Lock()
JIEBA_LOADS = 0  # how many times this process initialised jieba: must stay at most 1


def _segmenter() -> ModuleType:
    """jieba, initialised once and quietly (it logs its dictionary loading at INFO by default)."""
    global _jieba, JIEBA_LOADS
    if _jieba is None:
        with _jieba_lock:
            if _jieba is None:
                import jieba

                jieba.setLogLevel(logging.WARNING)
                logging.getLogger("jieba").setLevel(logging.WARNING)
                jieba.initialize()
                JIEBA_LOADS += 1
                _jieba = jieba
    return _jieba


def segment(text: str) -> list[str]:
    """jieba's words of `text` (HMM on for unknown words), whitespace-only pieces left out."""
    return [w for w in _segmenter().lcut(text, HMM=True) if w.strip()]


def in_dictionary(word: str) -> bool:
    """Whether jieba's dictionary has `word` as a word of its own (a word its HMM made up for characters the
    dictionary cut one by one, a name or two characters glued together, has not; nor a mere prefix of a word)."""
    return _segmenter().dt.FREQ.get(word, 0) > 0


def fold_traditional(text: str) -> str:
    """`text` with traditional Chinese characters replaced by their simplified forms (發票 → 发票), one
    character for one, everything else unchanged."""
    return text.translate(_FOLD)


@functools.lru_cache(maxsize=8192)
def _segment_run(run: str, fold: bool) -> tuple[str, ...]:
    """`segment` of one CJK run (folded to simplified first with `fold`), remembered: a chunk's title and
    heading path, and the sentences it shares with the chunk before it (overlap), are the same runs again
    (jieba's dictionary never changes in-process)."""
    return tuple(segment(run.translate(_FOLD) if fold else run))


def normalize(text: str) -> str:
    return unicodedata.normalize("NFKC", text).lower()


def fold_for_search(text: str) -> str:
    """`text` as substring search compares it (trace search: `traces.search_text` and the words looked for):
    `normalize` (NFKC: full-width ＡＰＩ１２３ and an ideographic space become API123 and a space; lower case,
    non-ASCII letters too), then `fold_traditional` (發票 → 发票)."""
    return fold_traditional(normalize(text))


def tokenize(text: str, *, keep_stopwords: bool = False, fold: bool = True) -> list[str]:
    """Keyword tokens of `text`: CJK runs folded to simplified characters (unless not `fold`: features of
    models trained before the fold) and segmented into words, other words whole, lower-cased, NFKC; common
    English and Chinese function words dropped unless `keep_stopwords`."""
    text = normalize(text)
    out: list[str] = []
    if _HAS_CJK.search(text) is None:  # the common case, in one pass
        out = [w for w in _WORD.findall(text) if len(w) <= MAX_TOKEN_CHARS]
    else:
        for cjk, word in _TOKEN.findall(text):
            if cjk:
                if len(cjk) <= _CACHED_RUN_CHARS:
                    out.extend(_segment_run(cjk, fold))
                else:
                    out.extend(segment(cjk.translate(_FOLD) if fold else cjk))
            elif len(word) <= MAX_TOKEN_CHARS:
                out.append(word)
    if not keep_stopwords:
        out = [t for t in out if t not in STOPWORDS]
    return out


_stemmers = threading.local()  # a Snowball stemmer keeps its state on the object: one per thread


@functools.lru_cache(maxsize=1 << 17)  # the pure-Python stemmer takes ~50-100 µs a word; a corpus repeats its words
def stem(word: str) -> str:
    """The Snowball English (Porter2) stem of a lower-case word of ASCII letters (rules → rule, refunded → refund,
    policies → polici); any other token (with a digit, `_`, another script) is returned as it is.

    Snowball keeps the s of a plural without a vowel before it (llms, pdfs, sdks): a word of four or more letters
    without a vowel before its final s is an acronym's plural here, and loses it (llms → llm; dns, gps and nfs,
    three letters, keep theirs). Known gap, kept because the keyword index's tokens (TOKENIZER_VERSION) are built
    with it: "alias" is "alia" while "aliases" is "alias"."""
    if not (word.isascii() and word.isalpha()):
        return word
    if is_acronym_plural(word):
        word = word[:-1]
    stemmer = getattr(_stemmers, "english", None)
    if stemmer is None:
        import snowballstemmer

        stemmer = _stemmers.english = snowballstemmer.stemmer("english")
    return str(stemmer.stemWord(word))


_VOWELS = frozenset("aeiouy")


def is_acronym_plural(word: str) -> bool:
    """Whether a lower-case word of ASCII letters is an acronym's plural by its letters: four or more, no vowel
    before a final s (llms, pdfs, rpms). Not dns, gps or nfs (three letters: the s is the acronym's), nor a final
    ps, whose s is a unit's or a protocol's (mbps, https, ftps)."""
    return (len(word) >= 4 and word[-1] == "s" and word[-2] not in "sp"
            and not _VOWELS.intersection(word[:-1]))


# An acronym's plural as written: two or more capitals and a lower-case s (LLMs, GPUs, VMs), a word of its own:
# in a name (docs/LLMs.md, LLMs_config, a->LLMs, as flywheel.retrieval.tokenize tells names) it stays as written.
_ACRONYM_PLURAL = re.compile(r"(?<![A-Za-z0-9_./:>])([A-Z]{2,})s(?![A-Za-z0-9_]|[./][A-Za-z0-9]|::|->)")


def singular_acronyms(text: str) -> str:
    """`text`, NFKC, with each acronym's plural written as the acronym (LLMs → LLM, GPUs → GPU): Snowball keeps
    the s of llms and gpus, and once lower-cased gpus cannot be told from a word. For the keyword tokens only:
    the text itself, and the features of trained models, keep the words as written."""
    return _ACRONYM_PLURAL.sub(r"\1", unicodedata.normalize("NFKC", text))
