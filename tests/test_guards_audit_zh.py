"""Guards as Chinese- and English-speaking users meet them (Task D audit).

A `language` guard judges the answer as a whole (`Check.scope == "answer"`). On a stream it used to judge each
sentence alone, so a Chinese answer holding a short English line (`pip install flywheel.`, "OK.", a product
name) was cut mid-stream although the same answer, not streamed, passed.
"""

from __future__ import annotations

import pytest

from flywheel.apps.runtime import Runtime
from flywheel.checks.base import build
from flywheel.config import Project
from flywheel.guards import GuardPolicy
from flywheel.guards.streaming import guard_stream

STOP = "[stopped]"


def _policy(lang: str | list[str], on_fail: str = "block", check: str = "language") -> GuardPolicy:
    return GuardPolicy.from_config({"output": [{"check": check, "value": lang, "on_fail": on_fail,
                                                "message": STOP}]})


def _pieces(text: str, n: int = 5) -> list[str]:
    return [text[i:i + n] for i in range(0, len(text), n)]


def _streamed(policy: GuardPolicy, text: str, n: int = 5, record: list | None = None) -> str:
    return "".join(guard_stream(iter(_pieces(text, n)), policy.output, record=record))


ZH_WITH_ENGLISH = [
    "安装很简单。先运行下面的命令：\npip install flywheel.\n然后执行初始化，系统会生成配置文件。",
    "OK. 这个问题的答案是肯定的，你可以在配置文件里设置模型版本。",
    "好的。\nflywheel init\n这条命令会在当前目录创建 flywheel.yaml 和 prompts 文件夹。",
    "你可以使用 Flywheel Gateway。Yes. 它支持 OpenAI、Anthropic 等模型，也支持本地部署。",
    "步骤如下：\n1. 打开 Settings.\n2. 点击 Profile > Security.\n3. 在页面底部启用双重认证，然后保存。",
]
EN_WITH_CHINESE = [
    "Run the command below. 好的。 Then open the dashboard and check the traces for your app.",
    "The greeting is 你好。 It means hello, and you can use it with anyone you meet in China.",
]
WRONG = [
    ("zh", ("好的。 Sure, here is the answer in English. You can pin a model version on the alias. "
            "Fallbacks are tried in order when a model fails, and every call is traced.")),
    ("zh", "Sure. You can pin a model version on the alias."),
    ("en", "当然。你可以在别名上固定模型版本。如果模型调用失败，会按顺序尝试备用模型，每次调用都会被记录。"),
]


@pytest.mark.parametrize("text", ZH_WITH_ENGLISH)
@pytest.mark.parametrize("n", [1, 7, 10_000])
def test_a_chinese_answer_with_english_lines_streams_whole_as_it_passes_whole(text, n):
    policy = _policy("zh")
    assert policy.output.run(text).passed
    record: list = []
    assert _streamed(policy, text, n, record) == text  # was: cut at "pip install flywheel." / "OK."
    assert all(a.passed for a in record)  # a held sentence leaves no failed guard action behind


@pytest.mark.parametrize("text", EN_WITH_CHINESE)
def test_an_english_answer_with_a_chinese_sentence_streams_whole(text):
    policy = _policy("en")
    assert policy.output.run(text).passed
    assert _streamed(policy, text) == text


@pytest.mark.parametrize(("lang", "text"), WRONG)
def test_an_answer_in_the_wrong_language_is_stopped_streamed_as_not_streamed(lang, text):
    policy = _policy(lang)
    assert not policy.output.run(text).passed
    out = _streamed(policy, text)
    assert out.endswith(STOP)
    shown = out[: -len(STOP)]
    assert "pin a model version" not in shown and "固定模型版本" not in shown


def test_a_long_answer_in_the_wrong_language_shows_nothing_english_and_stops():
    sentence = "This sentence is written in English and keeps the answer going. "
    text = "好的。" + sentence * 200
    assert not _policy("zh").output.run(text).passed
    out = "".join(guard_stream(iter(_pieces(text, 20)), _policy("zh").output))
    assert out == "好的。" + "\n" + STOP  # nothing English was shown; the verdict is the whole answer's


@pytest.mark.parametrize(("repeat", "whole"), [(40, True), (200, False)])
def test_a_language_switch_late_in_a_long_answer_gets_the_whole_answers_verdict(repeat, whole):
    zh = "这是一个很长的中文回答，用来说明配置文件里的每一个选项。" * 60
    en = "From here on the model answers in English only, which is not what was asked. " * repeat
    assert _policy("zh").output.run(zh + en).passed is whole
    out = _streamed(_policy("zh"), zh + en, 50)
    assert out.startswith(zh[:200]) and out.endswith(STOP) is (not whole)
    if whole:  # mostly Chinese: passes whole, so it streams whole (was: stopped once the tail read as English)
        assert out == zh + en
    else:  # the English held back once the answer so far read as English: most of it never shown
        assert len(out) < len(zh + en) // 2


def test_not_language_and_log_only_are_judged_on_the_whole_answer_too():
    text = ZH_WITH_ENGLISH[0]
    assert build("not-language", "zh").scope == "answer"
    assert _streamed(_policy("en", check="not-language"), text) == text
    record: list = []
    assert _streamed(_policy("zh", on_fail="log-only"), text, record=record) == text
    assert [a.action for a in record if a.check == "language"] and all(a.passed for a in record)


CHAT = """
models:
  gpt: {{provider: openai_compat, base_url: "{base}", model: fake-model, max_retries: 0}}
apps:
  support:
    kind: chat
    model: gpt
    guards:
      output:
        - {{check: language, value: zh, on_fail: block}}
"""


def test_a_chat_app_streams_a_chinese_answer_with_a_command_like_it_answers_it(tmp_path, llm):
    reply = "OK. 先运行下面的命令：\npip install flywheel.\n然后执行 flywheel init 即可。"
    llm.default = reply
    (tmp_path / "flywheel.yaml").write_text(CHAT.format(base=llm.base_url), encoding="utf-8")
    with Runtime(Project.load(tmp_path)) as rt:
        answer = rt.app("support").run("怎么安装？")
        stream = rt.app("support").stream("怎么安装呢？")
        shown = "".join(stream)
    assert not answer.refused and answer.text == reply
    assert shown == reply and not stream.answer.refused


# ---------------------------------------------------------------- what the language check reads

ZH_WITH_CODE = [
    "请联系 zhang@example.com。",
    "请访问 https://docs.example.com/guide/install 查看。",
    "详见文档：https://flywheel.dev/docs/guards.html#streaming",
    "运行 `flywheel ingest docs/ --chunk-size 512` 即可。",
    "请联系zhang@example.com查看https://example.com/a?b=1详情",
]


@pytest.mark.parametrize("text", ZH_WITH_CODE)
def test_urls_addresses_and_code_do_not_make_a_chinese_answer_english(text):
    assert build("language", "zh").run(text).passed  # was: "detected latin-script"
    assert not build("language", "en").run(text).passed


def test_an_english_answer_is_not_made_chinese_by_leaving_code_out():
    assert build("language", "en").run("Contact 王小明 at wang@example.cn for `pip install` help.").passed
    assert not build("language", "zh").run("Run `安装` to install it, then open the dashboard.").passed
    assert build("language", "en").run("https://example.com/docs").passed  # only a URL: judged on the URL


def test_leaving_code_out_stays_linear_on_hostile_text():
    from flywheel.checks.language import prose

    for text in ("a" * 40_000, "a." * 20_000, "中" * 40_000, "a@" * 20_000, "`" + "a" * 40_000, "h://" * 10_000):
        prose(text)  # each took seconds to minutes with an unanchored pattern (a test run would time out)


@pytest.mark.parametrize(("value", "meant"), [("cn", "`zh` for `cn`"), ("中文", "`zh` for `中文`"),
                                              ("英文", "`en` for `英文`")])
def test_a_language_written_as_users_say_it_is_a_config_error_that_names_the_code(tmp_path, value, meant):
    from flywheel.errors import ConfigError

    (tmp_path / "flywheel.yaml").write_text(
        "models:\n  default: {provider: extractive}\napps:\n  docs_qa:\n    kind: docs_qa\n    guards:\n"
        f"      output:\n        - {{check: language, value: {value}, on_fail: block}}\n", encoding="utf-8")
    project = Project.load(tmp_path)
    with pytest.raises(ConfigError) as err:
        GuardPolicy.from_config(project.config.apps["docs_qa"].guards,
                                where=lambda *p: project.where("apps", "docs_qa", "guards", *p))
    assert meant in err.value.message and str(err.value.where).endswith("flywheel.yaml:8")


# ---------------------------------------------------------------- guard messages in Chinese projects


def _blocked_message(message, question: str) -> str:
    from flywheel.checks.base import CheckContext

    policy = GuardPolicy.from_config({"output": [{"check": "pii", "on_fail": "block", "message": message}]})
    return policy.output.run("邮箱 ann@example.com", CheckContext(input=question)).message


@pytest.mark.parametrize("message", [{"zh-CN": "这里不行。", "en": "Not here."},
                                     {"ZH": "这里不行。", "EN": "Not here."},
                                     {"zh_Hans": "这里不行。", "en-US": "Not here."}])
def test_message_keys_written_as_locales_reach_the_users_language(message):
    assert _blocked_message(message, "怎么联系你们？") == "这里不行。"  # was: "Not here." (zh-CN never matched)
    assert _blocked_message(message, "How do I contact you?") == "Not here."  # was: "这里不行。" for `ZH`


@pytest.mark.parametrize(("message", "words"), [
    ({"中文": "这里不行。", "en": "Not here."}, "write `zh` for `中文`"),
    ({"xx": "?"}, "not a language code"),
    ({"zh": "这里不行。", "zh-TW": "這裡不行。"}, "two texts for language `zh`"),
])
def test_a_message_key_that_is_no_language_is_a_config_error_with_its_line(tmp_path, message, words):
    from flywheel.errors import ConfigError

    entries = ", ".join(f'"{k}": "{v}"' for k, v in message.items())
    (tmp_path / "flywheel.yaml").write_text(
        "models:\n  default: {provider: extractive}\napps:\n  docs_qa:\n    kind: docs_qa\n    guards:\n"
        "      output:\n        - check: pii\n          on_fail: block\n"
        f"          message: {{{entries}}}\n", encoding="utf-8")
    project = Project.load(tmp_path)
    with pytest.raises(ConfigError) as err:
        GuardPolicy.from_config(project.config.apps["docs_qa"].guards,
                                where=lambda *p: project.where("apps", "docs_qa", "guards", *p))
    assert words in f"{err.value.message} {err.value.hint}"
    assert str(err.value.where).endswith("flywheel.yaml:10")


def test_a_held_sentence_leaves_no_block_span_in_the_trace(spans):
    text = ZH_WITH_ENGLISH[1]  # "OK." is held until the Chinese sentence arrives
    assert _streamed(_policy("zh"), text) == text
    guard_spans = [s for s in spans if s.name == "guard.language"]
    assert guard_spans and all(s.attributes["flywheel.guard.action"] == "pass" for s in guard_spans)


def test_a_chat_app_stops_an_english_stream_to_a_chinese_question_in_chinese(tmp_path, llm):
    reply = "OK. " + "You can pin a model version on the alias, and fallbacks are tried in order. " * 30
    llm.default = reply
    (tmp_path / "flywheel.yaml").write_text(CHAT.format(base=llm.base_url), encoding="utf-8")
    with Runtime(Project.load(tmp_path)) as rt:
        answer = rt.app("support").run("怎么固定模型版本？")
        stream = rt.app("support").stream("怎么固定模型版本呢？")
        shown = "".join(stream)
    assert answer.refused and stream.answer.refused
    assert shown == answer.text == "抱歉，我无法协助处理这个请求。"  # nothing English shown, the message in Chinese


# ---------------------------------------------------------------- pii in Chinese text, streamed

PII_ZH = [
    "请联系张经理，电话：13812345678。他的邮箱是 zhang.san@example.com。",
    "客服热线 400-820-8820，手机 +86 138 1234 5678；工作时间为周一至周五。",
    "身份证号 11010519491231002X，请核对。",
    "我的手机号是１３８１２３４５６７８。谢谢！",
    "联系方式：13812345678！邮箱：li@qq.com？好的。",
    "数据库密码：Abc@12345xyz，请勿外传。连接串 postgres://app:S3cr3tPass@db:5432/app。",
]


@pytest.mark.parametrize("text", PII_ZH)
def test_pii_in_chinese_text_is_masked_alike_streamed_in_any_pieces(text):
    pipeline = GuardPolicy.from_config({"output": [{"check": "pii", "on_fail": "redact"}]}).output
    whole = pipeline.run(text)
    assert whole.passed and whole.text != text
    for n in (1, 3, 7, 1000):  # 。！？； end sentences; no piece boundary may leave a value half-masked
        assert "".join(guard_stream(iter(_pieces(text, n)), pipeline)) == whole.text
