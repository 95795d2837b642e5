"""Indirect prompt injection: instructions addressed to an AI, planted in retrieved documents.

A retrieved source (a web page, an e-mail, a table, a code file, a licence) is cut into units —
its lines and sentences — and each unit is scored by a small linear model trained for this job
(`models/injection_sources.json`, fitted by `scripts/train_injection_sources.py`) on text normalised
like the prompt model's (`injection_normalise.deobfuscate`: homoglyphs, leetspeak, spelt-out words): word 1-2-grams
(Latin script) and character bigrams (Chinese), TF-IDF weighted, plus rule features for what a
planted instruction does — addresses an AI ("AI assistant, …", "note to the language model"),
overrides its instructions, tells it what to reply, sends data somewhere, talks about "the user"
and "your reply". A source is flagged when its highest-scoring unit passes the threshold, so one
planted sentence in a long page is not diluted by the rest, and licence terms or e-mails telling
their human reader what to do are not mistaken for it. Scoring is pure Python, about 1 ms per KB.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from collections import Counter
from itertools import pairwise
from pathlib import Path
from typing import Any

from flywheel.checks.injection_normalise import deobfuscate, other_script_chars

SOURCES_MODEL_PATH = Path(__file__).parent / "models" / "injection_sources.json"
FORMAT = "flywheel-injection-sources-v1"
MAX_SOURCE_CHARS = 200_000  # per source; the rest is not scanned
UNIT_CHARS = 400  # a longer line or sentence is cut into pieces of about this size

# lines, table cells, HTML element tags (not comments: text hides in those), sentences
# (NFKC has turned "！？；" into "!?;": after those a Chinese sentence starts with no space)
_UNIT = re.compile(r"\n+|\s*\|\s*|\s*</?[a-z][a-z0-9]*(?:\s[^<>]{0,300})?/?>\s*|(?<=[.!?])\s+(?=\S)|(?<=。)|"
                   r"(?<=[!?;])(?=[\u3400-\u4dbf\u4e00-\u9fff])")
_SPACES = re.compile(r"\s+")
_WORD = re.compile(r"[a-z][a-z']*")
_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]+")
_HAS_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")

_AI = (r"(?:ai|a\.i\.|assistants?|language models?|llms?|chat ?bots?|bots?|agents?|copilot|gpt|models?|"
       r"summari[sz]ers?|automated (?:readers?|systems?|tools?))")
# Rules over a normalised (lower-case) unit. Each is evidence, not proof: the model weighs them.
RULES: dict[str, re.Pattern[str]] = {
    "address_ai": re.compile(
        rf"(?:^|[\[(<#*\-\s])(?:(?:note|message|instructions?|directive|attention|important|dear|hey|hi)\s+)?"
        rf"(?:(?:to|for)\s+)?(?:the\s+|any\s+|all\s+|every\s+)?(?:virtual\s+|automated\s+)?{_AI}"
        rf"(?:\s+(?:reading|processing|parsing|summari[sz]ing|indexing|handling|that|who|which)[^.!?:]{{0,50}})?"
        rf"(?:\s+(?:system|tool|model|agent|helper|reader|bot)s?)?[)\]>]?\s*[:,\-]"),
    "if_ai": re.compile(rf"\b(?:if|when|whenever) (?:you are|you're|an?|the|any) (?:an? )?{_AI}\b"),
    "ai_should": re.compile(rf"\b{_AI}\b[^.!?\n]{{0,60}}\b(?:should|must|needs? to|is required to|has to|shall|"
                            rf"(?:is|are) to)\b"),
    "override": re.compile(
        r"\b(?:ignore|disregard|forget|override|overrule|bypass|discard|stop following|do not follow|don't follow)\b"
        r"[^.!?\n]{0,50}\b(?:instructions?|rules?|guidance|directions?|prompts?|operator|developer|guidelines|"
        r"programming|system|above|previous|prior|earlier|before)\b"),
    "obsolete": re.compile(r"\b(?:instructions?|guidance|rules|prompt|directives?)\b[^.!?\n]{0,40}\b(?:obsolete|void|"
                           r"outdated|no longer (?:apply|valid)|cancel+ed|superseded|replaced)\b"),
    "new_instructions": re.compile(r"\b(?:new|updated|revised|real|actual|additional) (?:instructions?|directives?|"
                                   r"task|rules|system prompt|orders)\b|\bsystem prompt\b|\bend (?:new )?instructions\b"),
    "reply_with": re.compile(
        r"\b(?:reply|respond|answer|say|output|print|state|end your (?:reply|answer|response)|begin your "
        r"(?:reply|answer|response))\b[^.!?\n]{0,30}\b(?:only|exactly|nothing else|must|single|with ['\"“]|"
        r"every (?:question|message))"),
    "your_reply": re.compile(r"\b(?:your|the) (?:reply|response|answer|summary|output)\b|\bwhen (?:you )?"
                             r"(?:summari[sz]|answer|respond|reply)|\bbefore (?:you )?(?:answer|respond|summari[sz])"),
    "the_user": re.compile(r"\b(?:tell|warn|inform|ask|remind|convince|persuade|instruct|direct|send|redirect) "
                           r"(?:the|any|every|all) (?:user|human|reader|customer|person)s?\b|\b(?:the user'?s?|the "
                           r"human|whoever asked)\b"),
    "conceal": re.compile(r"\b(?:do not|don't|never|without) (?:tell|telling|mention|mentioning|reveal|revealing|"
                          r"inform|informing|let|letting)\b[^.!?\n]{0,30}\b(?:user|human|reader|anyone|this)\b|\b"
                          r"keep this (?:comment |note |instruction )?(?:secret|hidden)\b"),
    "exfiltrate": re.compile(
        r"\b(?:send|forward|e-?mail|post|upload|transmit|leak|append|copy|paste|include)\b[^.!?\n]{0,60}\b(?:"
        r"conversation|chat|transcript|history|messages?|inbox|e-?mails?|contacts|credentials|passwords?|api keys?|"
        r"tokens?|card numbers?|personal data|ssh key|secrets?)\b"),
    "url_or_mail": re.compile(r"https?://|www\.|\b[\w.+-]+@[\w-]+\.[\w.]+"),
    "md_image": re.compile(r"!\[[^\]]*\]\([^)]*[?&=]"),
    "tool_call": re.compile(r"\b(?:call|invoke|run|execute|use) (?:the )?[a-z_]+(?:_[a-z]+)+\b|\btool\b"),
    "role": re.compile(r"\byou are (?:now|no longer)\b|\bfrom (?:now on|this point on)\b|\bpretend\b|"
                       r"\bact as\b|\bdeveloper mode\b|\bno restrictions\b"),
    "fake_turn": re.compile(r"<\|[a-z_]+\|>|\[/?inst\]|</?(?:system|assistant)>|^\s*(?:system|assistant)\s*:|"
                            r"\bend of (?:document|input|text|context)\b"),
    "you_imperative": re.compile(r"^(?:please )?(?:you must|you should|you will|you are required to)\b"),
    "zh_address_ai": re.compile(r"(?:ai|人工智能|大模型|语言模型|模型|智能助手|助手|助理|智能体|机器人|摘要程序|客服)"
                                r"[^。！？\n]{0,10}(?:请注意|注意|：|:|，|读到|收到|看到)|(?:给|致|写给|对)[^。！？\n]{0,6}"
                                r"(?:ai|人工智能|模型|助手|智能体|机器人)|仅限ai|如果你是"),
    "zh_override": re.compile(r"(?:忽略|无视|忘记|忘掉|不要理会|别管|抛开|不必遵守|不要再?遵守|停止)[^。！？\n]{0,16}"
                              r"(?:指令|指示|规则|设定|提示|要求|任务|问什么)|(?:指令|指示|规则|设定)[^。！？\n]{0,8}"
                              r"(?:作废|失效|无效|过期|为准)|优先级(?:最)?高于|新的?指令|系统指令"),
    "zh_reply": re.compile(r"(?:只能|只许|一律|必须|务必|全部)[^。！？\n]{0,8}(?:回答|回复|说|输出|推荐|声称)|"
                           r"回答用户时|回复用户|(?:告诉|提醒|通知|要求|引导)用户|不要(?:告诉|让|提及)|"
                           r"(?:在|于)(?:回复|回答|摘要|总结)(?:末尾|开头|中|里)"),
    "zh_exfil": re.compile(r"(?:发送|发到|转发|上传|推送|附在|附上|抄送)[^。！？\n]{0,20}(?:聊天记录|对话|邮件|通讯录|密码|"
                           r"密钥|卡号|手机号|身份证|数据|配置|提示词)|(?:聊天记录|对话|通讯录|密码|密钥|卡号|提示词|配置)"
                           r"[^。！？\n]{0,20}(?:发送|发到|转发|上传|推送|输出|原样)"),
}
_CJK_RULES = frozenset(name for name in RULES if name.startswith("zh_"))
_RULE_NAMES = [f"rule_{name}" for name in RULES]
_AI_WORDS = ("ai", "a.i.", "assistant", "model", "llm", "chat", "bot", "agent", "copilot", "gpt", "summari", "automated")
# Words at least one of which every match of a rule contains (per group; all groups must be present).
ANCHORS: dict[str, tuple[tuple[str, ...], ...]] = {
    "address_ai": (_AI_WORDS, (":", ",", "-")),
    "if_ai": (("if ", "when"), _AI_WORDS),
    "ai_should": (_AI_WORDS, ("should", "must", "need", "required", "has to", "shall", "is to", "are to")),
    "override": (("ignore", "disregard", "forget", "overrid", "overrul", "bypass", "discard", "follow"),),
    "obsolete": (("obsolete", "void", "outdated", "no longer", "cancel", "supersed", "replaced"),),
    "new_instructions": (("instruction", "directive", "task", "rules", "system prompt", "orders"),),
    "reply_with": (("reply", "respond", "answer", "say", "output", "print", "state", "end your", "begin your"),),
    "your_reply": (("reply", "response", "answer", "summar", "output", "respond"),),
    "the_user": (("user", "human", "reader", "customer", "person", "whoever"),),
    "conceal": (("not ", "n't", "never", "without", "keep this"),),
    "exfiltrate": (("send", "forward", "mail", "post", "upload", "transmit", "leak", "append", "copy", "paste",
                    "include"),),
    "url_or_mail": (("http", "www.", "@"),),
    "md_image": (("![",),),
    "tool_call": (("tool", "_"),),
    "role": (("you are", "from now", "from this point", "pretend", "act as", "developer mode", "no restrictions"),),
    "fake_turn": (("<|", "inst]", "system", "assistant", "end of"),),
    "you_imperative": (("you must", "you should", "you will", "you are required"),),
    "zh_address_ai": (("ai", "人工智能", "模型", "助手", "助理", "智能体", "机器人", "摘要程序", "客服", "如果你是"),),
    "zh_override": (("忽略", "无视", "忘记", "忘掉", "理会", "别管", "抛开", "遵守", "停止", "指令", "指示", "规则",
                     "设定", "优先级"),),
    "zh_reply": (("只能", "只许", "一律", "必须", "务必", "全部", "回答", "回复", "用户", "不要", "摘要", "总结"),),
    "zh_exfil": (("发送", "发到", "转发", "上传", "推送", "附在", "附上", "抄送", "输出", "原样"),),
}
_ANCHOR_SETS = {name: [frozenset(g) for g in groups] for name, groups in ANCHORS.items()}
_RULE_ORDER = tuple(RULES)


# The one normaliser of both injection models (full-width, zero-width, diacritics, homoglyphs, spelt-out
# words, leetspeak undone; lower case; line breaks kept: they separate units).
normalise = deobfuscate


def units(text: str) -> list[str]:
    """The lines, table cells, HTML elements and sentences of a normalised text, whitespace collapsed, long
    ones cut."""
    out = []
    for piece in _UNIT.split(text):
        piece = _SPACES.sub(" ", piece).strip()
        while len(piece) > UNIT_CHARS:
            cut = piece.rfind(" ", UNIT_CHARS // 2, UNIT_CHARS)
            cut = cut if cut > 0 else UNIT_CHARS
            out.append(piece[:cut])
            piece = piece[cut:].strip()
        if len(piece) >= 4:
            out.append(piece)
    return out


def tokens(unit: str) -> Counter[str]:
    """Latin word 1-2-grams and Chinese character bigrams of one normalised unit."""
    words = _WORD.findall(unit)
    grams: Counter[str] = Counter(words)
    grams.update(f"{a} {b}" for a, b in pairwise(words))
    if _HAS_CJK.search(unit):
        for run in _CJK_RUN.findall(unit):
            grams.update(run[i:i + 2] for i in range(max(len(run) - 1, 1)))
    return grams


def _anchor_index() -> tuple[re.Pattern[str], dict[str, frozenset[str]], dict[str, tuple[str, ...]]]:
    words = sorted({a for groups in ANCHORS.values() for group in groups for a in group}, key=len, reverse=True)
    # a match stands for every anchor it contains ("summari" also counts as "summar") ...
    covers = {w: frozenset(a for a in words if a in w) for w in words}
    # ... and makes candidates of the rules whose first anchor group holds one of those
    enables = {w: tuple(name for name in RULES if covers[w] & _ANCHOR_SETS[name][0]) for w in words}
    return re.compile("|".join(re.escape(w) for w in words)), covers, enables


_ANCHOR_RX, _COVERS, _ENABLES = _anchor_index()


def rule_hits(unit: str) -> list[str]:
    """The rules that match a normalised unit, in RULES order. A rule's regex runs only when the unit holds
    one of its anchor words from each group (one combined search finds them), which keeps scanning fast."""
    matched = set(_ANCHOR_RX.findall(unit))
    if not matched:
        return []
    found: set[str] = set()
    candidates: set[str] = set()
    for m in matched:
        found |= _COVERS[m]
        candidates.update(_ENABLES[m])
    cjk = None
    hits = []
    for name in _RULE_ORDER:
        if name not in candidates:
            continue
        groups = _ANCHOR_SETS[name]
        if len(groups) > 1 and any(found.isdisjoint(g) for g in groups[1:]):
            continue
        if name in _CJK_RULES:
            cjk = bool(_HAS_CJK.search(unit)) if cjk is None else cjk
            if not cjk:
                continue
        if RULES[name].search(unit):
            hits.append(name)
    return hits


def _readable_len(unit: str) -> int:
    """The unit's length less its words in a script the model has no tokens for (Greek, Thai, ...): those add
    no evidence, and a long Thai sentence is no more an instruction than a short one."""
    return len(unit) - other_script_chars(unit)[0]


def dense(unit: str) -> dict[str, float]:
    """Rule hits (0/1), the unit's length (log-scaled to 0..1) and whether it is Chinese."""
    feats = dict.fromkeys(_RULE_NAMES, 0.0)
    for name in rule_hits(unit):
        feats[f"rule_{name}"] = 1.0
    feats["len"] = min(math.log1p(_readable_len(unit)) / 6.0, 1.0)
    feats["cjk"] = 1.0 if _HAS_CJK.search(unit) else 0.0
    return feats


class SourcesModel:
    """The portable model: token table (token -> [idf, weight]), dense weights, intercept, threshold."""

    def __init__(self, data: dict[str, Any]):
        if data.get("format") != FORMAT:
            raise ValueError(f"not a flywheel sources injection model (format {data.get('format')!r})")
        self.tokens: dict[str, list[float]] = data["tokens"]
        self.dense: dict[str, float] = data["dense"]
        self.intercept = float(data["intercept"])
        self.threshold = float(data["threshold"])
        self.sources: dict[str, int] = data.get("sources", {})
        blob = json.dumps([self.intercept, self.threshold, len(self.tokens), self.dense], sort_keys=True)
        self.version = hashlib.sha256(blob.encode()).hexdigest()[:12]

    @classmethod
    def load(cls, path: str | Path = SOURCES_MODEL_PATH) -> SourcesModel:
        with open(path, encoding="utf-8") as fh:
            return cls(json.load(fh))

    def score_unit(self, unit: str) -> float:
        """Probability-like score in 0..1 that one normalised unit is an instruction planted for an AI."""
        num = sq = 0.0
        table = self.tokens
        for gram, n in tokens(unit).items():
            entry = table.get(gram)
            if entry is None:
                continue
            w = (1.0 + math.log(n)) * entry[0]
            num += w * entry[1]
            sq += w * w
        z = self.intercept + (num / math.sqrt(sq) if sq else 0.0)
        d = self.dense
        z += sum(d.get(f"rule_{name}", 0.0) for name in rule_hits(unit))
        z += d.get("len", 0.0) * min(math.log1p(_readable_len(unit)) / 6.0, 1.0)
        if _HAS_CJK.search(unit):
            z += d.get("cjk", 0.0)
        return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))

    def scores(self, text: str) -> list[tuple[float, str]]:
        """(score, unit) for every unit of a raw text."""
        return [(self.score_unit(u), u) for u in units(normalise(text[:MAX_SOURCE_CHARS]))]

    def score(self, text: str) -> float:
        """The highest unit score of a raw text (0 for empty text)."""
        return max((s for s, _ in self.scores(text)), default=0.0)


@functools.lru_cache(maxsize=4)
def sources_model(path: str = str(SOURCES_MODEL_PATH)) -> SourcesModel:
    return SourcesModel.load(path)
