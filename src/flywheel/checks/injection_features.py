"""Features of the prompt-injection model, shared by training (scripts/train_injection.py) and scoring.

Three blocks, all computed in pure Python so that scoring needs neither scikit-learn nor numpy:
- character 2-4-grams of the normalised text (TF-IDF, sublinear tf, L2-normalised): catch wording,
  misspellings, Chinese (no word boundaries needed), special tokens and symbol floods;
- word 1-2-grams of Latin-script words (TF-IDF, L2-normalised);
- dense heuristics: rule families (instruction override, output forcing, prompt extraction, role
  play, fake delimiters, authority claims, encodings, text addressed to an AI; English and Chinese),
  and shape statistics (symbol and non-ASCII ratios, token repetition, runs), each scaled to 0..1.

`normalise` undoes spelling tricks first, for training and scoring alike, with the normaliser the sources
model uses too (`injection_normalise.deobfuscate`): full-width letters (NFKC), zero-width characters,
diacritics, Cyrillic and Greek look-alikes of Latin letters (`іgnоre`), words spelt out letter by letter
(`i g n o r e`, `I-g-n-o-r-e`), Chinese spelt out character by character (`忽 略 之 前`) and leetspeak
(`1gn0r3 a11 pr3v10us`).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from itertools import pairwise

from flywheel.checks.injection_normalise import deobfuscate, other_script_chars

MAX_CHARS = 4000  # longer text: the first 3000 and the last 1000 characters are scored
CHAR_NGRAMS = (2, 4)
_SPACES = re.compile(r"\s+")
_WORD = re.compile(r"[a-z][a-z0-9']*|\d+")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")


def normalise(text: str) -> str:
    """`injection_normalise.deobfuscate`, whitespace collapsed, long text cut."""
    text = _SPACES.sub(" ", deobfuscate(text)).strip()
    if len(text) > MAX_CHARS:
        text = text[:3000] + " " + text[-1000:]
    return text


def char_ngrams(norm: str) -> Counter[str]:
    padded = f" {norm} "
    lo, hi = CHAR_NGRAMS
    grams: Counter[str] = Counter()
    for n in range(lo, hi + 1):
        grams.update(padded[i:i + n] for i in range(len(padded) - n + 1))
    return grams


def word_ngrams(norm: str) -> Counter[str]:
    words = _WORD.findall(norm)
    grams: Counter[str] = Counter(words)
    grams.update(f"{a} {b}" for a, b in pairwise(words))
    return grams


# Rule families. Each is a regex over the normalised text; a hit is strong evidence but not proof
# ("ignore the warning" is benign), so the model weighs them together with everything else.
RULES: dict[str, re.Pattern[str]] = {
    "override": re.compile(
        r"\b(?:ignore|disregard|forget|skip|override|bypass|discard|abandon|erase|cancel|never mind|stop following|"
        r"do not follow|don't follow)\b[^.!?\n]{0,40}\b(?:instructions?|rules?|directions?|prompts?|context|guidelines|"
        r"programming|constraints?|everything above|above|before|previous|prior|earlier|preceding|said)\b"),
    "zh_override": re.compile(
        r"(?:忽略|无视|忘记|忘掉|跳过|不要?再?遵守|不必遵守|不用管|别管|不要理会|不用理|抛开|撇开|丢弃|丢掉|放弃|覆盖|取消|停止执行|"
        r"别再执行|别听|清空)[^。！？\n]{0,20}(?:指令|指示|规则|设定|提示|限制|约束|要求|内容|规定|命令|任务|策略|身份)|"
        r"(?:指令|命令|提示词|规则|设定|限制|约束)[^。！？\n]{0,8}(?:作废|失效|不算数?|过期|无效|撤销|是假的|不再适用)"),
    "force_output": re.compile(
        r"\b(?:say|respond with|reply (?:only )?with|output|print|answer|type|write|begin (?:your )?(?:reply|response)"
        r" with|start (?:your )?(?:reply|response) with|end your reply with)\b[^.!?\n]{0,30}"
        r"\"?'?(?:access granted|i have been pwned|pwned|hacked|authorized|unlocked|granted)"),
    "zh_force_output": re.compile(r"(?:回复|输出|说|回答|开头)[^。！？\n]{0,10}(?:访问已授权|已通过验证|密码正确|攻破|权限已开启|登录成功|"
                                  r"access granted)"),
    "extract": re.compile(
        r"\b(?:repeat|print|reveal|show|output|dump|display|list|tell me|give me|share|disclose|leak|summari[sz]e|"
        r"translate|format|convert|rewrite|encode|spell|write)\b[^.!?\n]{0,40}\b(?:(?:system |initial |hidden |"
        r"original |secret |full )?(?:prompt|instructions?|rules|password|passcode|access code|secret(?: code)?|"
        r"configuration|pre-?prompt)|(?:text|words|everything) above)\b"),
    "zh_extract": re.compile(
        r"(?:输出|重复|复述|告诉|列出|显示|展示|翻译|写出|贴出|打印|发给|说出|念出|公开|泄露|透露|总结|编码)[^。！？\n]{0,20}"
        r"(?:系统提示|提示词|初始|隐藏|指令|密码|口令|访问码|设定|规则|配置|秘密|保密)|"
        r"(?:系统提示|提示词|初始设定|隐藏指令|内部配置|密码|口令|秘密)[^。！？\n]{0,16}(?:输出|写出|贴出|打印|告诉我|念出|复述|发给我)"),
    "roleplay": re.compile(
        r"\b(?:you are now|from now on|pretend (?:to be|you are)|act as|roleplay|role-play|you are no longer|your new role|"
        r"developer mode|debug mode|maintenance mode|jailbreak|dan\b|do anything now|no restrictions|unrestricted|"
        r"evil ai|switch to)\b"),
    "zh_roleplay": re.compile(r"从现在(?:开始|起)你|你现在(?:是|叫)|扮演|假装你|假设你(?:没有|是)|设想你是|(?:开发者|调试|维护|无约束|"
                              r"上帝|越狱|管理员|自由|测试)模式|越狱|没有任何限制|不受(?:任何)?(?:限制|约束)|你不再是|新身份"),
    "delimiter": re.compile(
        r"(?:<\|[a-z_]+\|>|\[/?inst\]|</?(?:system|user|admin|prompt)>|#{3,}|={3,}|-{5,}|%{3,}|\bend of (?:user )?"
        r"(?:input|text|document|prompt)\b|\bsystem(?: message)?:|\bassistant:|\bhuman:|\bnew instructions?\b|"
        r"\buser input ends\b|\bsystem override\b)"),
    "zh_delimiter": re.compile(r"【系统|系统通知|系统提示：|系统：|<系统>|用户输入结束|文本结束|管理员覆盖|开发者的新指令|可信管理员"),
    "authority": re.compile(
        r"\b(?:i am (?:the|your) (?:developer|admin|administrator|creator|owner)|as your creator|security audit|"
        r"i command you|you are required to|you must (?:now )?(?:comply|obey)|password (?:was|has been) changed|"
        r"correct password entered|new session|previous session)\b"),
    "zh_authority": re.compile(r"我是(?:这个|你的|平台的?|公司的?)?(?:开发者|管理员|运维|负责人|创造者|老板|架构师)|我命令你|安全审计|"
                               r"渗透测试|作为你的创造者|你必须服从|无条件(?:执行|服从|满足)|密码已被|新会话|上一个会话|规则已?更新"),
    "to_ai": re.compile(
        r"\b(?:ai (?:assistants?|models?|agents?)|language models?|llms?|chatbot|if you are an ai|assistant,)\b"
        r"[^.!?\n]{0,60}\b(?:ignore|must|should|forget|stop|disregard|instead|include|reveal|call)\b"),
    "zh_to_ai": re.compile(r"(?:AI助手|语言模型|AI模型|AI系统|智能体|机器人|聊天机器人|助手|模型|AI)[^。！？\n]{0,12}"
                           r"(?:忽略|必须|应当|应该|停止|无视|别再?|不要|请|要求)|(?:给|致|对)AI"),
    "encoding": re.compile(r"\b(?:base64|rot13|backwards|reversed?|pig latin|hex(?:adecimal)?|binary|decode)\b"),
    "secret_talk": re.compile(r"\b(?:password|passcode|access code|secret code|pass phrase)\b|密码|口令|访问码"),
}
_SPECIAL = re.compile(r"[^\w\s]", re.UNICODE)


def dense(raw: str, norm: str) -> dict[str, float]:
    """Rule hits and shape statistics, each in 0..1."""
    feats = {f"rule_{name}": 1.0 if rx.search(norm) else 0.0 for name, rx in RULES.items()}
    n = max(len(norm), 1)
    tokens = norm.split()
    cjk = len(_CJK.findall(norm))
    native, marks = other_script_chars(norm)
    # Non-ASCII characters other than Chinese and words in one non-Latin script: symbols, emoji, look-alikes.
    non_ascii = sum(1 for c in norm if ord(c) > 127) - cjk - native
    # The length of what the model reads: words in a script it has no n-grams for add no evidence.
    feats["len"] = min(math.log1p(max(len(raw) - native, 0)) / 9.0, 1.0)
    feats["symbols"] = (len(_SPECIAL.findall(norm)) - marks) / n  # a vowel sign (Hindi, Thai) is no symbol
    feats["non_ascii"] = max(non_ascii, 0) / n
    feats["cjk"] = cjk / n
    if len(tokens) >= 8:
        top = Counter(tokens).most_common(1)[0][1]
        feats["repeat_top"] = top / len(tokens)
        feats["repeat_unique"] = 1.0 - len(set(tokens)) / len(tokens)
    else:
        feats["repeat_top"] = feats["repeat_unique"] = 0.0
    run = best = 1
    for a, b in pairwise(norm):
        run = run + 1 if a == b else 1
        best = max(best, run)
    feats["char_run"] = min(best / 20.0, 1.0)
    feats["lines"] = min(raw.count("\n") / 10.0, 1.0)
    feats["quotes"] = min((norm.count('"') + norm.count("“") + norm.count("「")) / 6.0, 1.0)
    return feats


def rule_hits(text: str) -> list[str]:
    """The rule families that match a text (for explanations in check results)."""
    norm = normalise(text)
    return [name for name, rx in RULES.items() if rx.search(norm)]
