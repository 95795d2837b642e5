"""Did the model decline to answer? ("I don't know", "the sources do not cover this", "无法回答" …)

    declined("The sources do not cover this question, so I cannot answer it from them.")  # True
    declined("提供的资料没有涵盖这个问题，无法据此回答。")                                  # True
    declined("Set `version:` on the alias [1]. I don't know of another way.")              # False

An answer is a refusal when its opening sentence says it cannot answer (in English or Chinese) and it cites
no source, or when it is one of the app's own no-answer messages. An answer that says what it cannot cover
but answers the rest with citations is an answer, not a refusal. Used for `Answer.refusal = model_declined`,
so a false refusal by the model is counted as a refusal and shows up in evals.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from flywheel.text import split_sentences

_EN = re.compile(
    r"\b(?:"
    r"i (?:really |simply )?(?:do not|don't|dont|cannot|can't|can not) (?:know|say|tell|answer|determine|find|help|match)"
    r"|i(?:'m| am) (?:not sure|unable|not able|sorry)"
    r"|(?:unable|not able) to (?:answer|determine|find|help)"
    r"|i have no (?:information|knowledge|idea)"
    r"|no (?:relevant )?(?:information|answer|sources?) (?:is |was |were |are )?(?:available|given|provided|found)"
    r"|(?:there is|there's) no (?:information|mention|answer)"
    r"|(?:the |these |provided |given |available |retrieved )*(?:sources?|documents?|documentation|context|passages?"
    r"|excerpts?|materials?|texts?) (?:do not|don't|does not|doesn't|did not|didn't|cannot|can't) "
    r"(?:cover|contain|mention|say|state|provide|include|address|specify|describe|answer|explain|discuss)"
    r"|(?:sources?|documents?|context|information) (?:is|are) (?:insufficient|not sufficient|not enough)"
    r"|not (?:covered|mentioned|addressed|found|specified) in the (?:provided |given )?"
    r"(?:sources?|documents?|context|passages?)"
    r"|(?:sorry|apologies),? (?:but )?i (?:can't|cannot|can not|am unable)"
    r")", re.IGNORECASE)
_ZH = re.compile(
    r"不知道|不清楚|无法(?:回答|确定|判断|得知|找到|提供|据此|跨语言匹配)|不能(?:回答|确定)|没有(?:找到)?(?:相关|足够)?(?:的)?(?:信息|内容|资料|答案)"
    r"|(?:资料|文档|来源|材料|上下文|内容)(?:中)?(?:没有|并未|未|不)(?:涵盖|提及|提到|包含|涉及|说明|给出)"
    r"|(?:没有|未)(?:涵盖|提及|提到|涉及)|(?:资料|信息)不足|没有提供(?:任何)?资料|抱歉，?我(?:无法|不能)")
_CITATION = re.compile(r"\[\d+(?:\s*[,，、]\s*\d+)*\]")


def declined(text: str, own: Iterable[str] = ()) -> bool:
    """Whether `text` is the model declining to answer; `own` are the app's no-answer messages."""
    answer = (text or "").strip()
    if not answer:
        return True
    if any(msg and msg.strip() and msg.strip() in answer for msg in own):
        return True
    if _CITATION.search(answer):
        return False
    first = next(iter(split_sentences(answer)), answer)
    return bool(_EN.search(first) or _ZH.search(first))
