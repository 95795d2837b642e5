"""`similar`: embedding cosine to the reference, through ctx.services.embedder."""

from __future__ import annotations

import re

import numpy as np
import pytest

from flywheel.checks import CheckContext, Services, build
from flywheel.errors import UserError

VOCAB = ["version", "model", "alias", "pin", "set", "cat", "dog", "weather", "sunny"]


class BagOfWords:
    """A transparent embedder: one dimension per vocabulary word."""

    name = "bag-of-words"

    def __init__(self) -> None:
        self.calls = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        rows = []
        for t in texts:
            words = re.findall(r"\w+", t.lower())
            rows.append([float(words.count(v)) for v in VOCAB])
        return np.asarray(rows)


def ctx(reference: str | None, embedder: object | None = None) -> CheckContext:
    return CheckContext(reference=reference, services=Services(embedder=embedder or BagOfWords()))


def test_similar_passes_above_the_threshold_only() -> None:
    ref = "Set version on the model alias to pin it."
    close = build("similar", 0.8).run("Pin the model version: set it on the alias.", ctx(ref))
    assert close.passed and close.score > 0.8 and close.details["embedder"] == "bag-of-words"
    far = build("similar", 0.8).run("The weather is sunny, said the cat to the dog.", ctx(ref))
    assert not far.passed and far.score < 0.2
    assert build("not-similar", 0.8).run("The weather is sunny.", ctx(ref)).passed


def test_reference_in_the_argument_wins_and_missing_pieces_are_errors() -> None:
    check = build("similar", {"threshold": 0.5, "reference": "cat and dog"})
    assert check.run("a dog and a cat", ctx(None)).passed
    no_ref = build("similar", 0.5).run("x", ctx(None))
    assert not no_ref.passed and "reference" in no_ref.error
    no_embedder = build("similar", 0.5).run("x", CheckContext(reference="y"))
    assert not no_embedder.passed and "embedder" in no_embedder.error


def test_spec_names_the_embedder() -> None:
    check = build("similar", 0.8)

    class Other(BagOfWords):
        name = "other-model"

    assert check.spec(ctx("r")) == check.spec(ctx("r"))
    assert check.spec(ctx("r")) != check.spec(ctx("r", Other()))


@pytest.mark.parametrize("arg", [2, "high", {"threshold": 0.5, "ref": "x"}, {"reference": 3}])
def test_bad_arguments(arg: object) -> None:
    with pytest.raises(UserError):
        build("similar", arg)
