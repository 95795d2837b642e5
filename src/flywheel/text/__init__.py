"""Text basics every room shares (layer 0): one language detector, one sentence splitter, one CJK-aware
tokenizer (jieba loaded once), one stopword list, one secret scrubber."""

from flywheel.text.display import safe_display
from flywheel.text.language import Detection, detect, detect_language, normalize_language
from flywheel.text.secrets import scrub_secrets
from flywheel.text.sentences import (
    complete_sentences,
    sentence_spans,
    sentences_with_separators,
    split_sentences,
)
from flywheel.text.stopwords import QUESTION_WORDS, STOPWORDS, STOPWORDS_EN, STOPWORDS_ZH
from flywheel.text.tokenize import fold_for_search, fold_traditional, normalize, segment, stem, tokenize

__all__ = [
    "QUESTION_WORDS",
    "STOPWORDS",
    "STOPWORDS_EN",
    "STOPWORDS_ZH",
    "Detection",
    "complete_sentences",
    "detect",
    "detect_language",
    "fold_for_search",
    "fold_traditional",
    "normalize",
    "normalize_language",
    "safe_display",
    "scrub_secrets",
    "segment",
    "sentence_spans",
    "sentences_with_separators",
    "split_sentences",
    "stem",
    "tokenize",
]
