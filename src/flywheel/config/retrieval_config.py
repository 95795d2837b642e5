"""flywheel.yaml's `retrieval:` section (re-exported by flywheel.config.models and flywheel.config)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from flywheel.config.app_options import Section
from flywheel.config.yaml_io import FieldValueError, anchored


class RetrievalConfig(Section):
    embedder: str = "local"  # local | none | an alias of an openai_compat embeddings endpoint
    # with `local`: a sentence-transformers model folder (relative to flywheel.yaml; default: the shipped
    # all-MiniLM-L6-v2); with an alias: the endpoint's model name
    embedder_model: str | None = None
    embedder_languages: list[str] | None = None  # what a local model folder covers; default: from its vocabulary
    # the shipped MiniLM reads Chinese as English CC-CEDICT glosses (retrieval/gloss.py); false: Chinese chunks
    # are not embedded (keyword search only), as before 2026-12-05
    gloss_chinese: bool = True
    chunk_tokens: int = Field(default=256, ge=16, le=8192)
    overlap: int = Field(default=32, ge=0)
    fusion: Literal["auto", "rrf", "weighted"] = "auto"
    # `auto` fusion: the dense side's weight next to the keyword side's 1.0 (chosen on dev sets, retrieval.md)
    dense_weight: float = Field(default=1.0, ge=0.0, le=10.0)
    rrf_k: int = Field(default=60, ge=1)
    k: int = Field(default=5, ge=1, le=1000)
    min_relevance: float | Literal["auto"] | None = "auto"
    hnsw_m: int = Field(default=16, ge=2, le=100)  # PostgreSQL (pgvector) HNSW graph degree
    hnsw_ef_construction: int = Field(default=128, ge=4, le=1000)
    hnsw_ef_search: int = Field(default=200, ge=1, le=1000)  # candidates per search: recall vs latency
    hnsw_exact_below: int = Field(default=2000, ge=0)  # a tenant with at most this many chunks: exact search
    _base: str | None = PrivateAttr(default=None)  # flywheel.yaml's folder, set when the config loads
    _where: str | None = PrivateAttr(default=None)  # flywheel.yaml:line of `embedder_model:`, likewise

    @field_validator("embedder_languages")
    @classmethod
    def _known_languages(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        from flywheel.text.language import LANGUAGES, normalize_language

        codes = [normalize_language(str(v)) for v in value]
        unknown = [str(v) for v, c in zip(value, codes, strict=True) if c not in LANGUAGES]
        if unknown or not codes:
            raise ValueError(f"embedder_languages: unknown language {', '.join(unknown) or '(empty list)'}; "
                             f"use codes from {', '.join(LANGUAGES)}")
        return sorted(set(codes))

    @model_validator(mode="after")
    def _overlap_below_chunk(self) -> RetrievalConfig:
        if self.overlap >= self.chunk_tokens:
            raise FieldValueError(f"overlap ({self.overlap}) must be smaller than chunk_tokens ({self.chunk_tokens}): "
                                  "each chunk would repeat the whole previous one; a tenth to a quarter is usual",
                                  ("overlap",))
        return self

    @model_validator(mode="after")
    def _glosses_need_the_shipped_model(self) -> RetrievalConfig:
        if not self.gloss_chinese and (self.embedder != "local" or self.embedder_model):
            raise ValueError("gloss_chinese applies to the shipped local MiniLM (`embedder: local` without "
                             "`embedder_model`); other embedders read Chinese as their model does")
        return self

    @model_validator(mode="after")
    def _languages_need_a_folder(self) -> RetrievalConfig:
        if self.embedder_languages is not None and not (self.embedder == "local" and self.embedder_model):
            raise ValueError("embedder_languages applies to a local model folder (`embedder: local` with "
                             "`embedder_model: DIR`); an endpoint alias declares `params: {languages: [..]}`")
        return self

    def anchor(self, config_file: Path | str, where: str | None = None) -> None:
        """Relative `embedder_model` folders of `embedder: local` are relative to flywheel.yaml's folder; `where`
        is the flywheel.yaml:line of `embedder_model:`, for the errors about the folder."""
        self._base = str(Path(config_file).resolve().parent)
        self._where = where

    @property
    def model_folder_at(self) -> str | None:
        """flywheel.yaml:line of `embedder_model:`, when the config was read from a file."""
        return self._where

    def model_folder(self) -> Path | None:
        """The local embedder's model folder (`~` expanded, anchored), or None for the shipped MiniLM."""
        if self.embedder != "local" or not self.embedder_model:
            return None
        return anchored(self.embedder_model, self._base)

    @field_validator("min_relevance")
    @classmethod
    def _floor_range(cls, value: float | str | None) -> float | str | None:
        # relevance signals (cosine, term coverage) lie in 0..1: a floor outside it drops every hit or none
        if isinstance(value, (int, float)) and not 0.0 <= value <= 1.0:
            raise ValueError(f"min_relevance must be between 0 and 1 (got {value}); or `auto`, or null for no floor")
        return value
