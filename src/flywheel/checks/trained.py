"""`trained`: a small classifier fitted on human review labels (`flywheel train-check NAME --from-queue Q`).

    - trained: relevant                          # in an eval suite, a guard or monitor.online
    - {check: trained, model: relevant, threshold: 0.6}

The model lives in the project's `.flywheel/checks/NAME/`: `model.json` (features, threshold, metrics, the hash
of the training data) and `weights.npz` (logistic-regression weights, and the IDF vector for `tfidf`). It scores
the pair (input, output): the probability that a human would label the answer `pass`; the check passes when that
probability reaches the threshold. Costs nothing per call (no model API).

Features, shared with the trainer (flywheel.loop.classifier) so training and serving compute the same numbers:
- `tfidf`: hashed word tokens (flywheel.text.tokenize, CJK aware) and character 2-4-grams of the input and of
  the output in separate hash spaces, log term frequency × IDF, L2-normalised.
- `embedding`: the local embedder's vectors of input and output and their element-wise product.

The model folder is found from where the check is written (the suite file's or flywheel.yaml's folder, walking
up) and from the working directory; `path:` names it explicitly, relative to the folder of that file (the project
folder for flywheel.yaml) like every path written in it.
"""

from __future__ import annotations

import json
import re
import zlib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from flywheel.checks.base import Check, CheckContext, register, service
from flywheel.config.yaml_io import anchored, folder_of
from flywheel.errors import UserError
from flywheel.text.tokenize import normalize, tokenize
from flywheel.types import CheckResult

MODELS_DIR = Path(".flywheel") / "checks"
FEATURES = ("tfidf", "embedding")
TFIDF_DIM = 2 ** 15
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_SPACE = re.compile(r"\s+")

Array = np.ndarray[Any, Any]


# ---------------------------------------------------------------------------- features


def _grams(text: str) -> list[str]:
    norm = _SPACE.sub(" ", normalize(text)).strip()
    # unfolded (traditional characters as written): the features models on disk were trained with
    words = [f"w:{t}" for t in tokenize(norm, keep_stopwords=True, fold=False)]
    padded = f" {norm} "
    chars = [f"c:{padded[i:i + n]}" for n in (2, 3, 4) for i in range(max(0, len(padded) - n + 1))]
    return words + chars


def term_counts(inputs: Sequence[str], outputs: Sequence[str], dim: int = TFIDF_DIM) -> Array:
    """n × dim log term frequencies of the hashed grams: input grams in one half of the space, output in the other."""
    half = dim // 2
    out = np.zeros((len(inputs), dim), dtype=np.float32)
    for row, (question, answer) in enumerate(zip(inputs, outputs, strict=True)):
        for offset, text in ((0, question), (half, answer)):
            for gram, n in Counter(_grams(text or "")).items():
                out[row, offset + zlib.crc32(gram.encode("utf-8")) % half] += n
    return np.log1p(out)


def idf_of(counts: Array) -> Array:
    df = (counts > 0).sum(0)
    return np.log((1.0 + counts.shape[0]) / (1.0 + df)).astype(np.float32) + 1.0


def _unit(x: Array) -> Array:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def tfidf(inputs: Sequence[str], outputs: Sequence[str], idf: Array) -> Array:
    return _unit(term_counts(inputs, outputs, idf.shape[0]) * idf)


def embedding(inputs: Sequence[str], outputs: Sequence[str], embedder: Any) -> Array:
    vin = _unit(np.asarray(embedder.embed([t or " " for t in inputs]), dtype=np.float32))
    vout = _unit(np.asarray(embedder.embed([t or " " for t in outputs]), dtype=np.float32))
    return np.hstack([vin, vout, vin * vout * np.sqrt(vin.shape[1])])


def sigmoid(z: Array) -> Array:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -40, 40))))


# ---------------------------------------------------------------------------- the saved model


class TrainedModel:
    """A fitted classifier as saved by `flywheel train-check`."""

    def __init__(self, folder: Path, meta: dict[str, Any], weights: Array, bias: float, idf: Array | None):
        self.folder, self.meta, self.weights, self.bias, self.idf = folder, meta, weights, bias, idf

    @property
    def name(self) -> str:
        return str(self.meta.get("name", self.folder.name))

    @property
    def features(self) -> str:
        return str(self.meta["features"])

    @property
    def threshold(self) -> float:
        return float(self.meta.get("threshold", 0.5))

    @classmethod
    def load(cls, folder: Path) -> TrainedModel:
        try:
            meta = json.loads((folder / "model.json").read_text(encoding="utf-8"))
            with np.load(folder / "weights.npz") as npz:
                weights = np.asarray(npz["weights"], dtype=np.float32)
                bias = float(npz["bias"])
                idf = np.asarray(npz["idf"], dtype=np.float32) if "idf" in npz.files else None
        except (OSError, ValueError, KeyError) as exc:
            raise UserError(f"cannot load the trained check in {folder}: {exc}",
                            hint="train it again: flywheel train-check NAME --from-queue QUEUE") from None
        if meta.get("features") not in FEATURES:
            raise UserError(f"{folder / 'model.json'}: unknown features {meta.get('features')!r}")
        return cls(folder, meta, weights, bias, idf)

    def vectors(self, inputs: Sequence[str], outputs: Sequence[str], embedder: Any = None) -> Array:
        if self.features == "tfidf":
            assert self.idf is not None
            return tfidf(inputs, outputs, self.idf)
        if embedder is None:  # the shipped model at the precision these weights were fitted on
            from flywheel.retrieval.embedders import local_embedder

            embedder = local_embedder(self.meta.get("embedder"))
        return embedding(inputs, outputs, embedder)

    def predict(self, inputs: Sequence[str], outputs: Sequence[str], embedder: Any = None) -> Array:
        """P(a human labels the answer pass) for each (input, output)."""
        return sigmoid(self.vectors(inputs, outputs, embedder) @ self.weights + self.bias)


def find_model(name: str, where: str | None = None, path: str | None = None) -> Path:
    """The folder of trained check `name`: `path` when given (relative to the folder of the file that names the
    check: flywheel.yaml's is the project), else `.flywheel/checks/NAME` in that folder or above it, or in the
    working directory or above it."""
    home = folder_of(where)
    if path:
        folder = anchored(path, home)
        if (folder / "model.json").exists():
            return folder
        raise UserError(f"no trained check in {folder.absolute()} (model.json missing)", where=where,
                        hint=f"fix `path:` (a folder relative to the file that names the check), or train it: "
                             f"flywheel train-check {name} --from-queue QUEUE")
    starts = [home.resolve()] if home is not None else []
    starts.append(Path.cwd())
    for start in starts:
        for folder in (start, *start.parents):
            candidate = folder / MODELS_DIR / name
            if (candidate / "model.json").exists():
                return candidate
    raise UserError(f"no trained check named {name!r} (looked for {MODELS_DIR / name} in the project)", where=where,
                    hint=f"train it first: flywheel train-check {name} --from-queue QUEUE")


@register
class Trained(Check):
    """trained: NAME, or {model: NAME, threshold: 0.5, path: DIR} — a classifier fitted by `flywheel train-check`."""

    name = "trained"
    scope = "answer"  # scores the (input, whole answer) pair
    blocking = True

    def __init__(self, arg: Any = None, where: str | None = None):
        super().__init__(arg)
        options = {"model": arg} if isinstance(arg, str) else dict(arg or {}) if isinstance(arg, dict) else None
        if options is None or not isinstance(options.get("model"), str) or not NAME_PATTERN.match(options["model"]):
            raise ValueError("name the trained check: `trained: NAME` (letters, digits, _.-)")
        unknown = set(options) - {"model", "threshold", "path"}
        if unknown:
            raise ValueError(f"unknown option(s) {sorted(unknown)}; takes model, threshold, path")
        threshold = options.get("threshold")
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, int | float)
                                      or not 0.0 <= float(threshold) <= 1.0):
            raise ValueError("threshold is a probability between 0 and 1")
        self.model = TrainedModel.load(find_model(options["model"], where, options.get("path")))
        self.threshold = float(threshold) if threshold is not None else self.model.threshold

    def definition(self) -> dict[str, Any]:
        # a retrained model is another check: its numbers must not mix with the old one's
        return {"check": self.name, "model": self.model.name, "threshold": self.threshold,
                "data_hash": self.model.meta.get("data_hash"), "weights_hash": self.model.meta.get("weights_hash")}

    def evaluate(self, output: str, ctx: CheckContext) -> CheckResult:
        from flywheel.retrieval.embedders import local_names, vector_name

        embedder = service(ctx, "embedder") if self.model.features == "embedding" else None
        wanted = self.model.meta.get("embedder")
        if embedder is not None and vector_name(embedder) != wanted:
            embedder = None  # another embedder's vectors mean nothing to these weights
        # the shipped model's vectors are computed below without one
        if self.model.features == "embedding" and embedder is None and wanted not in local_names():
            return CheckResult(passed=False, score=0.0, reason=f"{self.model.name} needs the embedder {wanted}",
                               error=f"trained check {self.model.name} was fitted on {wanted} vectors; none here")
        p = float(self.model.predict([ctx.input or ""], [output], embedder)[0])
        passed = p >= self.threshold
        return CheckResult(passed=passed, score=p,
                           reason=f"{self.model.name}: p(pass) = {p:.3f} {'≥' if passed else '<'} {self.threshold:g}",
                           details={"probability": round(p, 4), "model": self.model.name,
                                    "features": self.model.features, "cost_usd": 0.0})
