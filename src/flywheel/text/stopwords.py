"""Stopword lists, one of each: the function words keyword search drops (`STOPWORDS`), the extra words a
question is phrased with but that carry no content (`QUESTION_WORDS`, for matching answers to questions), and
short per-language marker lists used only to tell Latin-script languages apart (`LANGUAGE_MARKERS`)."""

from __future__ import annotations


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# English: the classic function-word list (BM25 with it: +0.002 nDCG@10 on cmrc2018, and common words no longer
# make every query score the whole corpus).
STOPWORDS_EN = _words("""a about above after again against all am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further had has have having he
her here hers herself him himself his how i if in into is it its itself just me more most my myself no nor not now
of off on once only or other our ours ourselves out over own same she should so some such than that the their theirs
them themselves then there these they this those through to too under until up very was we were what when where
which while who whom why will with would you your yours yourself yourselves""")
STOPWORDS_ZH = _words("""
的 了 是 在 和 与 及 或 也 就 都 而 之 其 这 那 有 被 把 对 从 为 以 于 上 下 中 吗 呢 吧 啊 么 什么
哪 哪个 哪些 怎么 怎样 如何 多少 几 谁
""")
STOPWORDS: frozenset[str] = STOPWORDS_EN | STOPWORDS_ZH

# Words that frame a question rather than say what it is about ("please explain how to use …", "请问怎么样才能…"):
# matching an answer's sentences to a question ignores them, and topic labels never show them. Wider than
# STOPWORDS on the question side (tell, explain, use), narrower elsewhere (has, more, off can be what a question
# is about). Both languages list their interrogatives by kind: wh-words and their -ever forms; the word that
# completes an English how-phrase (how long / much / many / often / far / soon: tokenize drops `how` as a
# stopword, so "long" would stand alone as content; not kind, type, sort, which are also keys and programming
# words); Chinese question pronouns (啥, 哪儿, 何时, 为啥, 咋), amount and degree (多久, 多长时间, 几点),
# A-not-A forms (是不是, 有没有), the question adverbs 到底 / 究竟 / 难道 and the final particles.
QUESTION_WORDS_EN = _words("""
a about all also am an and any are as at be been being but by can could describe did do does doing
each every explain for from get give he her here his how how's i i'm if in into is it it's its just
know may me might must my need no nor not of on onto or our over please shall she should show so
some tell than that the their them then there there's these they this those to under use used using
want was we were what what's when where which who whom whose why will with without would you your
whatever whenever wherever whether whichever whoever where's who's why's
long much many often far soon
""")
QUESTION_WORDS_ZH = _words("""
一下 一个 下 与 个 中 为 为什么 为何 之 也 了 于 什么 什么样 从 以 会 你 你们 其 几个 及 可不可以
可以 吗 吧 呢 和 哪个 哪些 哪种 哪里 啊 在 地 多少 如何 对 就 得 怎么 怎么样 怎样 我 我们 或 把 时
时候 是 是否 有 有什么 的 着 能 能否 被 要 该 请问 谁 过 这 这个 那 那个 都
啥 哪儿 哪位 哪样 何时 何处 何地 何种 为啥 咋 咋样 咋办 怎么办 怎么回事 干嘛 干吗 意思
多久 多长 多长时间 多大 多远 多高 多快 几时 几点 几天 几次 几种 几年
是不是 有没有 需不需要 行不行 好不好 到底 究竟 难道 嘛 呀
""") | _words("""
一個 個 與 為 為什麼 為何 什麼 什麼樣 從 會 你們 幾個 嗎 哪個 哪種 哪裡 哪裏 對 怎麼 怎麼樣 怎樣 我們 時 時候 有什麼
著 該 請問 誰 過 這 這個 那個 於
哪兒 何時 何處 為啥 怎麼辦 怎麼回事 幹嘛 幹嗎 多長 多長時間 多遠 幾時 幾點 幾天 幾次 幾種 幾年 有沒有 難道
""")  # the same words in traditional characters (繁體): jieba keeps them whole too
QUESTION_WORDS: frozenset[str] = QUESTION_WORDS_EN | QUESTION_WORDS_ZH

# Frequent short words that tell one Latin-script language from another; balanced in size on purpose, so no
# language wins on list length alone.
LANGUAGE_MARKERS: dict[str, frozenset[str]] = {
    "en": _words(
        "the and is are of to in that it you for with this was be on not have as what how can do your "
        "an or by from at will which there their if"
    ),
    "fr": _words(
        "le la les et est des un une du que pas pour dans ce il vous sur avec qui au sont nous mais ne "
        "cette être"
    ),
    "de": _words(
        "der die das und ist nicht ein eine zu den mit sie es sich auf für dem ich wir auch wie oder "
        "werden sind"
    ),
    "es": _words("el la los las y es de que en un una por con para no se del está como pero más son lo usted"),
    "pt": _words("o a os as e é de que em um uma não para com do da no na se por mais são você"),
    "it": _words("il lo la gli le e è di che un una non per con del della sono si come ma più anche"),
    "nl": _words("de het een en is van niet dat op te zijn met voor die er ook maar wat je hoe"),
}
