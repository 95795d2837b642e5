"""Retrieval (layer 2): loaders → chunks → embeddings → hybrid index, and search with tenants and filters."""

from flywheel.retrieval.embed import Coverage, EmbedSummary, EmbedWorker, embed_pending
from flywheel.retrieval.ingest import IngestSummary, ingest
from flywheel.retrieval.retriever import Retriever

__all__ = ["Coverage", "EmbedSummary", "EmbedWorker", "IngestSummary", "Retriever", "embed_pending", "ingest"]
