"""Reading a multiple-choice answer: from the first answer token's log-probabilities, or from the generated text.

The question goes out with its options lettered A, B, C … (`choice_question`). An option is read from the
log-probabilities only when the alternatives carry it: the option whose spellings (" B", "B", "(B", " b", "Ｂ",
the whole text of a one-token choice) add up to more probability than any other first token. A model that
starts "The answer is C" has "The" as its likeliest first token; a stray " A" among the alternatives is noise,
not its answer, so such a case is read from the text instead (`chosen_by_text`) and says so.

Both readings fold Unicode compatibility forms first (NFKC: full-width "Ａ", "（B）" read as "A", "(B)").
"""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Any

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
MAX_CHOICES = len(LETTERS)
MC_INSTRUCTION = "Answer with the letter of the right choice."

_OPEN, _CLOSE = r"[\s*(\[]*", r"[*)\]]*"
_TOKEN_LETTER = re.compile(rf"^(?:(?i:option|answer|choice)|选项|答案)?{_OPEN}([A-Za-z]){_CLOSE}[.:：,、]?$")
_LEADING = re.compile(r"^[\s*(\[{\"'「『【<#>-]*$")  # tokens before the answer proper: "(", "**", "\n"


def choice_question(question: str, choices: list[str]) -> str:
    """The question with its options lettered A, B, C … (lm-evaluation-harness style)."""
    options = "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(choices))
    return f"{question}\n\n{options}\n\n{MC_INSTRUCTION}"


def _folded(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def _bare(text: str) -> str:
    """A choice or answer without case, surrounding spaces and punctuation, for exact comparison."""
    return re.sub(r"^[\W_]+|[\W_]+$", "", _folded(text).casefold())


def option_of_token(token: str, choices: list[str]) -> int | None:
    """The option one token spells: a letter in range (" B", "(B", "b.", "Ｂ", "选项B"), or a choice's whole text."""
    folded = _folded(token).strip()
    said = _TOKEN_LETTER.match(folded)
    if said:
        index = LETTERS.index(said.group(1).upper())
        if index < len(choices):
            return index
    bare = _bare(folded)
    matches = [i for i, c in enumerate(choices) if bare and _bare(c) == bare]
    return matches[0] if len(matches) == 1 else None


def first_token_alternatives(tokens: list[dict[str, Any]] | None) -> dict[str, float] | None:
    """token -> logprob of the first answer token and its alternatives (`ChatResult.logprobs`), when present.
    Leading tokens that are only spaces, brackets or markup ("(", "**", "\\n") are passed over: in "(B)" the
    answer is the second token."""
    for entry in tokens or []:
        if not isinstance(entry, dict) or "token" not in entry:
            return None
        if _LEADING.match(_folded(str(entry["token"]))):
            continue
        options = [entry, *(entry.get("top_logprobs") or [])]
        found = {str(o["token"]): float(o["logprob"]) for o in options if "token" in o and "logprob" in o}
        return found or None
    return None


def chosen_by_logprobs(top: dict[str, float], choices: list[str]) -> int | None:
    """The option that is the likeliest first token (its spellings' probabilities summed), or None when some
    other token (a word, a bracket) is likelier: then the alternatives do not carry the answer."""
    mass = [0.0] * len(choices)
    other = 0.0
    for token, logprob in top.items():
        index = option_of_token(token, choices)
        if index is None:
            other = max(other, math.exp(logprob))
        else:
            mass[index] += math.exp(logprob)
    best = max(range(len(choices)), key=mass.__getitem__)
    return best if mass[best] > other else None


def _letter_patterns(n: int) -> tuple[re.Pattern[str], re.Pattern[str]]:
    upper, lower = LETTERS[:n], LETTERS[:n].lower()
    # an upper-case letter may be followed by . ) : , ; a lower-case one only by . ) or the end ("a city" is no A)
    letter = rf"(?:{_OPEN}([{upper}])(?=\s*$|[*)\].:：,、;])|{_OPEN}([{lower}])(?=\s*$|[*)\].]))"
    phrase = re.compile(
        rf"(?:(?i:answer|choice|option)|答案|选项|选择|选)\s*(?:(?i:is)|是|为|应该是|应选)?\s*[:：]?\s*"
        rf"(?:[*(\[]*([{upper}])[*)\]]*(?![A-Za-z])|{letter})"
    )
    return re.compile(rf"^{letter}"), phrase


def _letter(match: re.Match[str] | None) -> str | None:
    if match is None:
        return None
    return next(g for g in match.groups() if g is not None).upper()


def _names(choice: str, text: str) -> bool:
    """Whether `text` (folded, case-folded) mentions the choice as a whole word (CJK text has no word edges)."""
    c = _folded(choice).casefold().strip()
    if not c:
        return False
    head = r"(?<![A-Za-z0-9])" if c[0].isascii() and c[0].isalnum() else ""
    tail = r"(?![A-Za-z0-9])" if c[-1].isascii() and c[-1].isalnum() else ""
    return re.search(f"{head}{re.escape(c)}{tail}", text) is not None


def chosen_by_text(text: str, choices: list[str]) -> int | None:
    """The option a generated answer names: a phrase naming a letter ("The answer is B", "答案：B", "选项Ｂ"), a
    leading letter ("B", "(B)", "b)", "**B**. Rome"), else the choice the answer is, or the one choice whose text
    it mentions; None when it names none or several."""
    folded = _folded(text)
    leading, phrase = _letter_patterns(len(choices))
    letter = _letter(phrase.search(folded)) or _letter(leading.match(folded))
    if letter is not None:
        return LETTERS.index(letter)
    exact = [i for i, c in enumerate(choices) if _bare(c) and _bare(c) == _bare(folded)]
    if exact:
        return exact[0]
    lowered = folded.casefold()
    found = [i for i, c in enumerate(choices) if _names(c, lowered)]
    return found[0] if len(found) == 1 else None
