"""The one normaliser of both prompt-injection models (the prompt model and the retrieved-sources model),
for training and scoring alike: it undoes the ways people hide words from a detector.

In order:
1. NFKC: full-width letters, digits and spaces become ASCII (`ｉｇｎｏｒｅ`), ligatures split;
2. zero-width characters dropped (zero-width spaces and joiners, direction marks, soft hyphens);
3. diacritics on Latin letters dropped (`ìgnörè` → `ignore`); marks on other scripts stay (Russian `й`,
   Greek `ά`, Vietnamese loses its tones, which the models never needed);
4. homoglyphs folded: Cyrillic and Greek letters that Unicode's confusables list (UTS #39, confusables.txt)
   gives as look-alikes of one Latin letter (`і` → `i`, `о` → `o`, `Α` → `A`), but only in a word that
   also holds letters of another script (Latin, Chinese) and no other Cyrillic or Greek letter, or a word of
   look-alikes only next to a Latin or Chinese word and to no Cyrillic or Greek one. Russian and Greek text
   is left alone;
5. lower case; words and Chinese spelt out (`i g n o r e`, `I-g-n-o-r-e`, `忽 略 之 前`) joined;
6. leetspeak folded (`1gn0r3` → `ignore`, `p@ssw0rd` → `password`): digits 0 1 3 4 5 7 and `@ $`
   between letters. A token is folded when its digits sit between letters (`pr0mpt`, `1gn0r3`) and what it
   becomes looks like a word; once a text holds such a token, also tokens with digits at one end
   (`a11` → `all`, `7h3` → `the`). Never folded: numbers, versions, dates, times, prices, ordinals and
   units (`3.12`, `2024-01-02`, `10:30`, `$5`, `3rd`, `10kg`), tokens joined to others by `_ . - / :`
   (`x86_64`, `v1.2.3`, file names, e-mail addresses, URLs), tokens with the digits 2 6 8 9 (`b2b`, `h264`,
   `i18n`), hashes and hex numbers (`3f5a1c0`), identifiers with a digit only at one end (`python3`, `md5`,
   `a100`) unless the text is in leetspeak, and tokens that would start with three consonants (`gpt4o`,
   `rtx4070ti`). Codes alternating letters and those digits (`a7b3c5`) may be folded: harmless, they never
   become attack words.

Line breaks are kept (the sources model cuts a text at them); `injection_features.normalise` also
collapses whitespace and cuts long text.
"""

from __future__ import annotations

import functools
import re
import unicodedata

# Derived from Unicode's confusables.txt (UTS #39, version 12.1): the Cyrillic and Greek letters whose
# prototype is a single Latin letter and that NFKC leaves as they are; capital I-like letters map to `I`
# (the file's prototype is `l`, which is also the prototype of `I` itself).
CONFUSABLES: dict[str, str] = {
    # Cyrillic
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T",
    "У": "Y", "Х": "X", "Ь": "b", "Ѕ": "S", "І": "I", "Ј": "J", "Ѵ": "V", "Ү": "Y", "Ӏ": "I", "Ԍ": "G",
    "Ԝ": "W", "а": "a", "г": "r", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "ѕ": "s",
    "і": "i", "ј": "j", "ѡ": "w", "ѵ": "v", "ү": "y", "һ": "h", "ҽ": "e", "ӏ": "i", "ԁ": "d", "ԛ": "q",
    "ԝ": "w", "ꙇ": "i",
    # Greek
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O",
    "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X", "Ϳ": "J", "Ϝ": "F", "Ϻ": "M", "α": "a", "γ": "y", "ι": "i",
    "ν": "v", "ο": "o", "ρ": "p", "ς": "c", "σ": "o", "υ": "u", "ϳ": "j", "ᴦ": "r",
}
_CONFUSABLE_TABLE = str.maketrans(CONFUSABLES)
# Letters confusables.txt does not give as Latin look-alikes but that stand in for one inside a Latin word
# (`ignorε`, `aпd`, `τhe`): folded only in a word that also holds Latin letters, never in Greek or Russian.
_NEAR_LATIN = {"ε": "e", "η": "n", "κ": "k", "τ": "t", "χ": "x", "ω": "w", "к": "k", "м": "m", "п": "n",
               "т": "t", "ш": "w"}
_MIXED_TABLE = str.maketrans({**_NEAR_LATIN, **CONFUSABLES})
# zero-width spaces and joiners, direction marks, word joiners, BOM, soft hyphen, Mongolian vowel separator,
# combining grapheme joiner
_ZERO_WIDTH = re.compile(r"[\u00ad\u034f\u180e\u200b-\u200f\u2060-\u2064\ufeff]")
_LATIN_MARKED = re.compile(r"[\u00c0-\u024f\u1e00-\u1eff]|[A-Za-z][\u0300-\u036f]")
_COMBINING_AFTER_LATIN = re.compile(r"(?<=[A-Za-z])[\u0300-\u036f]+")
_CYR_GREEK = re.compile(r"[\u0370-\u03ff\u0400-\u052f\u1d26\ua640-\ua69f]")
_LETTERS = re.compile(r"[^\W\d_]+")
_LATIN = re.compile(r"[A-Za-z]")
_CJK_CHAR = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
# a character outside Latin, Chinese and common punctuation: only then can a word be in another script
_OTHER_SCRIPT = re.compile(r"[^\x00-\u024f\u2000-\u206f\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef]")

_SEP_CLASS = r"\-_.·•・*/|~+\u2010-\u2015"
_CJK_CLASS = r"\u3400-\u4dbf\u4e00-\u9fff"
# Three or more single characters, each followed by the same run of spaces: "i g n o r e", "忽 略 之 前",
# "a i 助 理". A different gap ("i g n o r e   a l l") ends the word; a line break is never a separator.
_SPELT_SPACED = re.compile(r"(?<!\S)\S(?P<sep>[^\S\n]+)(?:\S(?P=sep))+\S(?!\S)")
# Three or more single letters, Chinese characters or punctuation marks (not digits: "1.2.3" is a version
# and "2024-01-02" a date), each followed by the same visible separator: "i-g-n-o-r-e", "忽-略-之-前", "A - B - C".
_UNIT = rf"[^\s\d{_SEP_CLASS}]"
_NOT_UNIT = rf"[^\s{_SEP_CLASS}]"
_SPELT_SYMBOL = re.compile(rf"(?<!{_NOT_UNIT}){_UNIT}(?P<sep>[^\S\n]?[{_SEP_CLASS}][^\S\n]?)"
                           rf"(?:{_UNIT}(?P=sep))+{_UNIT}(?!{_NOT_UNIT})")
# Chinese is written without spaces: a space between two Chinese characters (or a Chinese character and
# Chinese punctuation, which NFKC has made ASCII) carries nothing and only hides the words.
_CJK_SPACE = re.compile(rf"(?<=[{_CJK_CLASS}])[^\S\n]+(?=[{_CJK_CLASS}])")
_CJK_PUNCT_SPACE = re.compile(rf"(?<=[{_CJK_CLASS}])[^\S\n]*([,!?;:、。])[^\S\n]*(?=[{_CJK_CLASS}])")

# A leetspeak candidate: letters, digits, `@` and `$` (not first), not glued to an identifier, number, path,
# address or URL by `_ . - / : @ $ # % & + = \` (a full stop, comma or colon ending a sentence is fine).
# Only tokens that mix letters with digits or symbols are matched (the lookahead): the others never fold.
_LEET_TOKEN = re.compile(r"(?<![0-9a-z_.\-/\\:@$#%&+=~^*])(?=[a-z0-9@$]*?(?:[a-z][0-9@$]|[0-9@$][a-z]))"
                         r"[a-z0-9][a-z0-9@$]*(?![0-9a-z_\-/\\@$#%&+=~^*]|[.,:][0-9a-z])")
_LEET_MAP = str.maketrans({"0": "o", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"})
_NOT_LEET_DIGIT = re.compile(r"[2689]")
_SEGMENTS = re.compile(r"[a-z]+|[^a-z]+")
# numbers with a unit or an ordinal, hexadecimal, exponents: never leetspeak
_NUMBER_LIKE = re.compile(r"\d*1st|\d*2nd|\d*3rd|0x[0-9a-f]+|\d+e\d+|\d+(?:th|am|pm|[a-z]|kb|mb|gb|tb|km|kg|mg|"
                          r"ms|ns|us|hz|px|pt|em|min|sec|hrs?|yrs?|mph|kph|fps|bit)")
_HEX = re.compile(r"[0-9a-f]+")
_VOWELS = frozenset("aeiouy")
_ONSETS = ("str", "spr", "scr", "spl", "squ", "thr", "chr", "sch", "shr", "phr", "sph")
_CONSONANT_RUN = re.compile(r"[b-df-hj-np-tv-xz]{5}")
_L_BEFORE = frozenset("pbcfgs")  # "p1ease", "c1ass", "exp1ain": a consonant that 'l' often follows


def _join(match: re.Match[str]) -> str:
    return match.group(0).replace(match.group("sep"), "")


def strip_latin_marks(text: str) -> str:
    """Diacritics on Latin letters dropped (`ìgnörè` → `ignore`), every other character as it was."""
    if not _LATIN_MARKED.search(text):
        return text
    return unicodedata.normalize("NFC", _COMBINING_AFTER_LATIN.sub("", unicodedata.normalize("NFD", text)))


# Writing systems whose scripts share words: Japanese mixes Han and kana, Korean Hangul and Han.
_SAME_SYSTEM = {"HIRAGANA": "CJK", "KATAKANA": "CJK", "KATAKANA-HIRAGANA": "CJK", "HANGUL": "CJK"}


@functools.lru_cache(maxsize=8192)
def _script(c: str) -> str:
    """A letter's script from its Unicode name (`α`, GREEK SMALL LETTER ALPHA → GREEK); "" for a mark, which
    takes the script of the letters around it."""
    if not unicodedata.category(c).startswith("L"):
        return ""
    head = unicodedata.name(c, "").split(" ", 1)[0]
    return _SAME_SYSTEM.get(head, head)


def other_script_chars(text: str) -> tuple[int, int]:
    """(letters and marks of the words written wholly in one script other than Latin, Han excepted;
    combining marks anywhere) in a normalised text. Both injection models read Latin and Chinese only: a
    Greek, Russian, Arabic, Hindi, Thai or Korean word is that language, not a disguise, and evidence of
    nothing. A word that mixes Latin letters with another script's (`ignοrε` with Greek letters the
    normaliser could not fold) is not counted: that is a disguise."""
    if not _OTHER_SCRIPT.search(text):
        return 0, 0
    native = marks = 0
    start = -1
    for i, c in enumerate(f"{text} "):
        if unicodedata.category(c)[0] in "LM":
            start = i if start < 0 else start
            continue
        if start >= 0:
            word = text[start:i]
            start = -1
            if not word.isascii():
                scripts = {_script(ch) for ch in word} - {""}
                if len(scripts) == 1 and "LATIN" not in scripts:
                    native += sum(1 for ch in word if not _CJK_CHAR.match(ch))
                marks += sum(1 for ch in word if unicodedata.category(ch)[0] == "M")
    return native, marks


def fold_confusables(text: str) -> str:
    """Cyrillic and Greek look-alikes of Latin letters made Latin inside words that also hold letters of
    another script (`іgnоre` with Cyrillic `і о` → `ignore`, `ignοrε` with a Greek `ο` → `ignorε`, `的АІ` →
    `的AI`; inside a Latin word also `ε η κ τ χ ω к м п т ш`), and in words of look-alikes only (`ЅУЅТЕМ`) next to such a word, a Latin or Chinese one or a
    folded one, and to no Cyrillic or Greek word (`Ѕау ассеѕѕ grаntеd` → `Say access granted`); Russian
    and Greek words stay as they are."""
    if not _CYR_GREEK.search(text):
        return text
    words = list(_LETTERS.finditer(text))
    # per word: 0 no Cyrillic or Greek, 1 look-alikes only, 2 a Cyrillic or Greek word, 3 look-alikes mixed in
    kinds = []
    for m in words:
        word = m.group(0)
        foreign = _CYR_GREEK.findall(word)
        if not foreign:
            kinds.append(0)
        elif _LATIN.search(word):
            kinds.append(3)  # Latin letters make it no Russian or Greek word, whatever else it holds
        elif any(c not in CONFUSABLES for c in foreign):
            kinds.append(2)
        else:
            kinds.append(3 if len(foreign) < len(word) else 1)
    # A word of look-alikes is folded next to a Latin, mixed or already folded word and no Cyrillic or Greek
    # one: folding spreads along a run of such words ("ЅАУ АССЕЅЅ grаntеd") and stops at a real word.
    folded = [kind == 3 for kind in kinds]
    changed = True
    while changed:
        changed = False
        for i, kind in enumerate(kinds):
            if kind != 1 or folded[i]:
                continue
            near = [j for j in (i - 1, i + 1) if 0 <= j < len(words)]
            if any(kinds[j] == 2 for j in near) or not any(kinds[j] == 0 or folded[j] for j in near):
                continue
            folded[i] = changed = True
    out, last = [], 0
    for m, fold in zip(words, folded, strict=True):
        if fold:
            word = m.group(0)
            out += [text[last:m.start()], word.translate(_MIXED_TABLE if _LATIN.search(word) else _CONFUSABLE_TABLE)]
            last = m.end()
    return "".join(out) + text[last:]


def _fold_ones(word: str) -> str:
    """`1` as `l` when doubled (`a11`), between vowels or at the end before `e` (`ru1e`, `tab1e`), or after
    an onset consonant before a vowel (`p1ease`); as `i` otherwise (`1gnore`, `pr3v10us`, `adm1n`)."""
    chars = list(word)
    for i, c in enumerate(chars):
        if c != "1":
            continue
        prev = chars[i - 1] if i else ""
        nxt = chars[i + 1] if i + 1 < len(chars) else ""
        before = chars[i - 2] if i >= 2 else " "
        doubled = prev in ("1", "l") or nxt in ("1", "l")
        between_vowels = prev in _VOWELS and nxt in _VOWELS
        final_le = nxt == "e" and i + 2 == len(chars) and bool(prev)
        onset = prev in _L_BEFORE and nxt in _VOWELS and before not in _VOWELS
        chars[i] = "l" if doubled or between_vowels or final_le or onset else "i"
    return "".join(chars)


def _wordlike(word: str) -> bool:
    if not _VOWELS.intersection(word) or _CONSONANT_RUN.search(word):
        return False
    head = re.match(r"[b-df-hj-np-tv-xz]*", word)
    return not (head and len(head.group(0)) >= 3 and not word.startswith(_ONSETS))


def _leet_kind(token: str) -> int:
    """2: digits between letters (`pr0mpt`), folded anywhere; 1: a digit at one end or a single letter
    (`a11`, `7h3`), folded only in a text that holds a kind-2 token; 0: never."""
    letters = sum(c.isalpha() for c in token)
    subs = len(token) - letters
    if not letters or not subs or _NOT_LEET_DIGIT.search(token) or _NUMBER_LIKE.fullmatch(token):
        return 0
    if len(token) >= 6 and subs >= 2 and _HEX.fullmatch(token):
        return 0  # a hash or hex number: 3f5a1c0
    if subs > letters + 2 or not _wordlike(_fold_ones(token.translate(_LEET_MAP))):
        return 0
    return 2 if letters >= 2 and len(_SEGMENTS.findall(token)) >= 3 else 1


def fold_leetspeak(text: str) -> str:
    """Leetspeak made letters (`1gn0r3 a11 pr3v10us 1nstruct10ns` → `ignore all previous instructions`) in
    lower-case text; numbers, versions, identifiers, codes and Chinese stay as they are."""
    if not re.search(r"[a-z][0-9@$]|[0-9@$][a-z]", text):
        return text
    kinds = {m.group(0): _leet_kind(m.group(0)) for m in _LEET_TOKEN.finditer(text)}
    floor = 1 if 2 in kinds.values() else 2
    if not any(k >= floor for k in kinds.values()):
        return text

    def fold(match: re.Match[str]) -> str:
        token = match.group(0)
        return _fold_ones(token.translate(_LEET_MAP)) if kinds.get(token, 0) >= floor else token

    return _LEET_TOKEN.sub(fold, text)


def deobfuscate(text: str) -> str:
    """NFKC, zero-width characters dropped, Latin diacritics dropped, homoglyphs folded, lower case,
    spelt-out words joined, spaces between Chinese characters removed, leetspeak folded. Line breaks kept."""
    text = _ZERO_WIDTH.sub("", unicodedata.normalize("NFKC", text))
    text = fold_confusables(strip_latin_marks(text)).lower()
    text = _SPELT_SPACED.sub(_join, text)
    text = _SPELT_SYMBOL.sub(_join, text)
    text = _CJK_PUNCT_SPACE.sub(r"\1", text)
    return fold_leetspeak(_CJK_SPACE.sub("", text))
