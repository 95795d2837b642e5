"""The message for a question the documents cannot be matched to because they are in another script, in the
question's language. Said by the docs-QA app when retrieval finds nothing in the question's script, and by the
offline `extractive` model when the sources it was given match the question only on code and names."""

from __future__ import annotations

from flywheel.prompts.render import pick_language

LANGUAGE_NAMES = {"en": "English", "zh": "Simplified Chinese (简体中文)", "ja": "Japanese", "ko": "Korean",
                  "fr": "French", "de": "German", "es": "Spanish", "pt": "Portuguese", "it": "Italian",
                  "ru": "Russian", "ar": "Arabic"}
_NAMES_EN = {**LANGUAGE_NAMES, "zh": "Chinese"}
_NAMES_ZH = {"en": "英文", "zh": "中文", "ja": "日文", "ko": "韩文", "fr": "法文", "de": "德文", "es": "西班牙文",
             "ru": "俄文"}
CROSS_LANGUAGE = {
    "en": ("I can't match this question to the documents: they are in {corpus} and the question is in {question}, "
           "and matching across languages needs a language model. Ask in {corpus}, or configure a model in "
           "flywheel.yaml (`models:`) and set the app's `options: {{query: {{translate: auto}}}}`."),
    "zh": ("无法跨语言匹配：已索引的文档是{corpus}，而问题是{question}，跨语言检索需要配置语言模型。请用{corpus}提问，"
           "或在 flywheel.yaml 的 `models:` 中配置模型，并为应用设置 `options: {{query: {{translate: auto}}}}`。"),
}


# the app already asks for translation (`query: {translate: auto}`): only a model that can translate is missing
CROSS_LANGUAGE_NO_MODEL = {
    "en": ("I can't match this question to the documents: they are in {corpus} and the question is in {question}. "
           "This app translates questions (`query: {{translate: auto}}`), but its model cannot: ask in {corpus}, or "
           "configure a language model in flywheel.yaml (`models:`) for the app."),
    "zh": ("无法跨语言匹配：已索引的文档是{corpus}，而问题是{question}。这个应用会翻译问题（`query: {{translate: auto}}`），"
           "但它的模型不能翻译：请用{corpus}提问，或在 flywheel.yaml 的 `models:` 中为应用配置语言模型。"),
}


def cross_language_message(question_language: str, corpus: str, *, translate_set: bool = False) -> str:
    """Why the app cannot answer a question in another script than the corpus, in the question's language;
    `translate_set`: the app already has `query: {translate: auto}` (so only the model is missing)."""
    templates = CROSS_LANGUAGE_NO_MODEL if translate_set else CROSS_LANGUAGE
    template = pick_language(templates, question_language)
    names = _NAMES_ZH if template is templates["zh"] else _NAMES_EN
    return template.format(corpus=names.get(corpus, corpus), question=names.get(question_language, question_language))
