"""Scale checks that need a machine this project's CI lacks (>= 4 cores, a CUDA GPU); results in
docs/retrieval.md. Writes JSON files to $OUT (default /tmp/flywheel-device-check):

- ray_workers_<W>.json: `flywheel bench scale --ray` (keyword ingest, loading and chunking on Ray) on a local
  cluster of W worker CPUs against the one-process ingest of the same corpus, same run.
- embed.json: embedding throughput on this machine's CPUs, flywheel's onnx backend vs sentence-transformers, and
  on the GPU (the torch backend the Ray GPU actors use), over one MiniLM-shaped model (6 layers, 384 wide,
  random weights: the speed is the architecture's; MiniLM's own weights are not needed) and its vectors' cosine.
- ray_gpu.json: `ingest --ray` with embedding on a cluster with one GPU (the GPU actor) against a single-process
  ingest (onnx on every core) and against Ray with the tasks embedding on CPUs; rows and vectors compared.

Run from the repository root: PYTHONPATH=src python3 scripts/device_scale_check.py [--chunks N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

OUT = Path(os.environ.get("OUT") or "/tmp/flywheel-device-check")
RAY = [sys.executable, "-c", "import sys; from ray.scripts.scripts import main; sys.exit(main())"]


def save(name: str, data: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / name).write_text(json.dumps(data, indent=1))
    print(name, json.dumps(data), flush=True)


def start_ray(cpus: int, gpus: int) -> str:
    subprocess.run([*RAY, "stop", "--force"], check=False, capture_output=True)
    port = 6390
    subprocess.run([*RAY, "start", "--head", "--port", str(port), "--num-cpus", str(cpus), "--num-gpus", str(gpus),
                    "--include-dashboard=false", "--disable-usage-stats", "--node-ip-address", "127.0.0.1",
                    "--temp-dir", tempfile.mkdtemp(prefix="fwr", dir="/tmp")], check=True, capture_output=True)
    return f"127.0.0.1:{port}"


def stop_ray() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()
    subprocess.run([*RAY, "stop", "--force"], check=False, capture_output=True)


def ray_keyword(workers: int, chunks: int) -> None:
    address = start_ray(workers, 0)
    try:
        res = subprocess.run([sys.executable, "-m", "flywheel", "bench", "scale", "--chunks", str(chunks),
                              "--embed-chunks", "0", "--vectors", "0", "--ray", address, "--json"],
                             check=False, capture_output=True, text=True, timeout=600)
        data = json.loads(res.stdout) if res.returncode == 0 else {"error": res.stderr[-2000:]}
        save(f"ray_workers_{workers}.json", data)
    finally:
        stop_ray()


def minilm_shaped_folder(root: Path) -> Path:
    """A sentence-transformers folder: BERT 6 x 384 (all-MiniLM-L6-v2's shape), random weights, MiniLM's
    tokenizer (shipped with flywheel), mean pooling, 256 tokens."""
    from transformers import BertConfig, BertModel

    from flywheel.retrieval.minilm import MODEL_DIR

    folder = root / "minilm-shaped"
    folder.mkdir()
    config = BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                        intermediate_size=1536, max_position_embeddings=512, hidden_act="gelu")
    BertModel(config).save_pretrained(folder, safe_serialization=True)
    tokenizer = json.loads((MODEL_DIR / "tokenizer.json").read_text())
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer))
    vocab = sorted(tokenizer["model"]["vocab"].items(), key=lambda kv: kv[1])
    (folder / "vocab.txt").write_text("".join(token + "\n" for token, _ in vocab))
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "BertTokenizer", "do_lower_case": True, "model_max_length": 256}))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 256, "do_lower_case": False}))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": 384, "pooling_mode_mean_tokens": True}))
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]))
    return folder


def embed_throughput(folder: Path, texts: list[str]) -> None:
    import torch

    from flywheel.retrieval.embedders import LocalEmbedder, _load_sentence_transformers
    from flywheel.retrieval.minilm_onnx import cpu_count
    from flywheel.retrieval.model_folder import open_model_folder

    model_folder = open_model_folder(folder)
    ours = LocalEmbedder(backend="onnx", folder=model_folder)
    ours.embed(texts[:32])
    st, st_backend = _load_sentence_transformers(model_folder, "cpu")
    st.encode(texts[:32], batch_size=32)
    sides = {"onnx_cpu": lambda: ours.embed(texts),
             "st_cpu": lambda: st.encode(texts, batch_size=32, normalize_embeddings=True)}
    data: dict = {"texts": len(texts), "cores": cpu_count(), "onnx_backend": ours.describe(), "st_backend": st_backend}
    if torch.cuda.is_available():
        gpu = LocalEmbedder(backend="torch", folder=model_folder, device="cuda")
        gpu.embed(texts[:256])
        sides["torch_cuda"] = lambda: gpu.embed(texts)
        data["gpu_backend"] = gpu.describe()
        a, b = ours.embed(texts[:512]), gpu.embed(texts[:512])
        data["gpu_vs_onnx_min_cosine"] = float(np.min(np.sum(a * b, axis=1)))
    best: dict[str, float] = {}
    for _ in range(3):
        for name, run in sides.items():
            started = time.perf_counter()
            run()
            best[name] = min(best.get(name, 1e9), time.perf_counter() - started)
    data.update({f"{k}_chunks_per_s": round(len(texts) / v, 1) for k, v in best.items()})
    data["onnx_vs_st_cpu"] = round(best["st_cpu"] / best["onnx_cpu"], 2)
    save("embed.json", data)


def ray_gpu(folder: Path, root: Path, chunks: int, cpu_tasks: bool = True) -> None:
    from flywheel.bench.scale import _corpus
    from flywheel.config import RetrievalConfig
    from flywheel.retrieval import ray_ingest as ray_ingest_module
    from flywheel.retrieval.ingest import ingest
    from flywheel.store import Store

    root.mkdir(parents=True, exist_ok=True)
    docs = _corpus(root, chunks)
    config = RetrievalConfig(embedder="local", embedder_model=str(folder), min_relevance=None)
    data: dict = {"chunks": chunks}

    def run(name: str, **kw: object) -> dict:
        with Store.open(f"sqlite:///{root / (name + '.db')}") as store:
            summary = ingest([docs], store, config, root=root, **kw)  # type: ignore[arg-type]
            with store.engine.connect() as conn:
                rows = sorted(conn.exec_driver_sql("SELECT id, text FROM chunks"))
                vectors = {h: np.frombuffer(v, dtype="<f4") for h, v in
                           conn.exec_driver_sql("SELECT hash, vector FROM embeddings")}
        data[f"{name}_seconds"] = summary.seconds
        data[f"{name}_chunks_per_s"] = round(summary.chunks_added / max(summary.seconds, 1e-6), 1)
        data[f"{name}_embedded"] = summary.embedded
        return {"rows": rows, "vectors": vectors}

    single = run("single_process")
    address = start_ray(4, 1)
    runs = {}
    try:
        runs["ray_gpu_actor"] = run("ray_gpu_actor", ray=address)
        if cpu_tasks:
            original = ray_ingest_module.embed_actors
            ray_ingest_module.embed_actors = lambda ray, rconfig, models, force=None: original(ray, rconfig, models, False)
            runs["ray_cpu_tasks"] = run("ray_cpu_tasks", ray=address)
            ray_ingest_module.embed_actors = original
    finally:
        stop_ray()
    for name, other in runs.items():
        data[f"{name}_rows_equal"] = other["rows"] == single["rows"]
        same_keys = other["vectors"].keys() == single["vectors"].keys()
        data[f"{name}_vector_keys_equal"] = same_keys
        if same_keys and single["vectors"]:
            data[f"{name}_min_cosine"] = float(min(float(np.dot(other["vectors"][h], v))
                                                   for h, v in single["vectors"].items()))
    save("ray_gpu.json", data)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=40000, help="keyword/Ray corpus size")
    parser.add_argument("--embed-chunks", type=int, default=4000, help="embedding and Ray-GPU corpus size")
    parser.add_argument("--gpu-chunks", type=int, default=0, help="Ray-GPU corpus size (default: --embed-chunks)")
    parser.add_argument("--skip", default="", help="comma-separated: ray, embed, gpu, cputasks")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    if "ray" not in skip:
        for workers in (2, 4):
            ray_keyword(workers, args.chunks)
    root = Path(tempfile.mkdtemp(prefix="fwdev"))
    folder = minilm_shaped_folder(root)
    if "embed" not in skip:
        from flywheel.bench.scale import _corpus

        (root / "texts").mkdir()
        texts = [p.split("\n", 1)[-1] for f in sorted(_corpus(root / "texts", args.embed_chunks).glob("*.md"))
                 for p in f.read_text().split("## ")[1:]][:args.embed_chunks]
        embed_throughput(folder, texts)
    if "gpu" not in skip:
        ray_gpu(folder, root / "gpu", args.gpu_chunks or args.embed_chunks, "cputasks" not in skip)


if __name__ == "__main__":
    main()
