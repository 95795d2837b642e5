"""The `options:` of each app kind in flywheel.yaml (docs_qa, chat, sql_qa, summarize), and `Section`, the base
of every flywheel.yaml section: unknown keys are errors."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DocsQAOptions(Section):
    """`options:` of a docs_qa app."""

    k: int | None = Field(default=None, ge=1, strict=True)  # strict: `k: true` or `k: "5"` is a mistake
    filters: dict[str, Any] | None = None  # metadata field → value, e.g. {lang: en}
    no_answer: str | dict[str, str] | None = None  # a message, or one per language {en: …, zh: …}
    prompt_label: str | None = Field(default=None, pattern=r"^[^\W\d_][\w.-]{0,99}$")  # pin a label (生产 too)

    class QueryOptions(Section):
        """`options.query`: transforms of the question before search (flywheel.apps.augment)."""

        translate: Literal["off", "auto"] = "off"  # auto: into the corpus language when it differs; true = auto
        rewrite: bool = False  # a self-contained search query from the question
        hyde: bool = False  # search with a hypothetical answer too
        multi_query: int = Field(default=0, ge=0, le=10, strict=True)  # paraphrases fused with RRF
        model: str | None = None  # alias for the transforms; default: the app's model

        @field_validator("translate", mode="before")
        @classmethod
        def _bool_translate(cls, value: Any) -> Any:
            return {True: "auto", False: "off"}.get(value, value) if isinstance(value, bool) else value

    class RerankOptions(Section):
        """`options.rerank`: re-score the top passages (an LLM alias, or the app's cross-encoder when null)."""

        model: str | None = None
        top: int = Field(default=20, ge=1, le=100, strict=True)  # candidates retrieved and scored

    class ContextOptions(Section):
        """`options.context`: which passages the model sees, and in what order."""

        budget_tokens: int | None = Field(default=None, ge=1, strict=True)
        order: Literal["best_first", "best_at_ends", "shuffle"] = "best_first"
        seed: int = 0  # for `order: shuffle`

    query: QueryOptions | None = None
    rerank: RerankOptions | None = None
    context: ContextOptions | None = None


class ChatMemoryOptions(Section):
    """`options.memory:` of a chat app: how much of a session the prompt carries (flywheel.apps.memory)."""

    max_turns: int = Field(default=10, ge=1, le=1000, strict=True)
    token_budget: int = Field(default=2000, ge=1, strict=True)


class ChatOptions(Section):
    """`options:` of a chat app."""

    system: str | None = None
    memory: ChatMemoryOptions = Field(default_factory=ChatMemoryOptions)
    avoid_recent: int = Field(default=0, ge=0, le=50, strict=True)  # the session's last N answers: don't repeat


# Options of the built-in app kinds; a plugin kind (entry-point group `flywheel.apps`) checks its own.
class SqlQAOptions(Section):
    """`options:` of a sql_qa app (flywheel.workflows.sql_qa)."""

    database: str = Field(min_length=1)  # sqlite:///data/shop.db (relative to the project), a path, or postgresql://…
    tables: list[str] | None = None  # only these tables go into the prompt's schema
    max_rows: int = Field(default=50, ge=1, le=10_000, strict=True)
    max_retries: int = Field(default=1, ge=0, le=5, strict=True)  # new SQL after a refused or failing query
    timeout_s: float = Field(default=10.0, gt=0, le=600)


class SummarizeOptions(Section):
    """`options:` of a summarize app (flywheel.workflows.summarize)."""

    source: Literal["input", "search"] = "input"  # summarise the input text, or the documents found for it
    k: int = Field(default=20, ge=1, le=1000, strict=True)  # source: search — passages to summarise
    filters: dict[str, Any] | None = None
    chunk_tokens: int = Field(default=800, ge=64, le=32_000, strict=True)  # source: input — piece size
    batch: int = Field(default=8, ge=2, le=100, strict=True)  # summaries combined per reduce call
    max_words: int = Field(default=150, ge=10, le=5000, strict=True)


APP_OPTIONS: dict[str, type[Section]] = {"docs_qa": DocsQAOptions, "chat": ChatOptions, "sql_qa": SqlQAOptions,
                                         "summarize": SummarizeOptions}
_OPTION_HINTS = {"docs_qa": "for example {k: 5, filters: {lang: en}, no_answer: \"…\", prompt_label: production, "
                            "query: {translate: auto}, rerank: {model: small}, context: {budget_tokens: 3000}}",
                 "chat": "chat apps take options: {system: \"…\", memory: {max_turns: 10, token_budget: 2000}, "
                         "avoid_recent: 0}",
                 "sql_qa": "for example {database: sqlite:///data/shop.db, max_rows: 50}",
                 "summarize": "for example {source: input, chunk_tokens: 800, batch: 8, max_words: 150}"}
