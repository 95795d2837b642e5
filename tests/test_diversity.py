"""Output diversity: distinct-n on fixed English and Chinese texts, embedding spread, the `diversity` check over
a case's repeats in an eval run, and seeded shuffling of list variables."""
# ruff: noqa: F811 - pytest fixtures imported from test_evals_support are redefined as parameters

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from test_evals_support import llm, project, runtime, write_suite  # noqa: F401 - fixtures

from flywheel.checks import CheckContext, Services, from_entry
from flywheel.checks.diversity import distinct_n, embedding_spread, shuffle_lists
from flywheel.errors import UserError
from flywheel.evals.runner import RunOptions, run_suite
from flywheel.evals.suite import load_suite

ENGLISH = ["the cat sat on the mat", "the cat sat on the rug", "a dog ran in the park"]
CHINESE = ["我喜欢北京的天气", "我喜欢上海的天气", "今天下雨了"]


def test_distinct_n_on_fixed_texts() -> None:
    # 18 words, 11 different; 15 bigrams, 11 different
    assert (distinct_n(ENGLISH, 1), distinct_n(ENGLISH, 2)) == (pytest.approx(11 / 18), pytest.approx(11 / 15))
    # jieba: 我|喜欢|北京|的|天气, 我|喜欢|上海|的|天气, 今天|下雨|了 → 13 words, 9 different; 10 bigrams, 8
    assert (distinct_n(CHINESE, 1), distinct_n(CHINESE, 2)) == (pytest.approx(9 / 13), pytest.approx(8 / 10))
    assert distinct_n(["same words", "same words"], 2) == 0.5 and distinct_n([], 1) == 1.0


class AxisEmbedder:
    """Text i → the unit vector of a fixed axis, so distances are known exactly."""

    def __init__(self, axes: dict[str, list[float]]):
        self.axes = axes

    def embed(self, texts):
        return np.array([self.axes[t] for t in texts], dtype=np.float32)


def test_embedding_spread_is_the_mean_pairwise_cosine_distance() -> None:
    embedder = AxisEmbedder({"a": [1, 0], "b": [0, 1], "c": [1, 0]})
    assert embedding_spread(["a", "b", "c"], embedder) == pytest.approx((1 + 0 + 1) / 3)
    assert embedding_spread(["a"], embedder) == 0.0


def test_the_check_passes_and_fails_on_its_limits() -> None:
    check = from_entry({"diversity": {"min_distinct_2": 0.75}})
    low = check.run_many(ENGLISH)
    assert not low.passed and low.details["distinct_2"] == pytest.approx(0.7333)
    assert "distinct_2 0.7333 < 0.75" in low.reason
    assert from_entry({"diversity": {"min_distinct_2": 0.7}}).run_many(CHINESE).passed
    alone = from_entry("diversity").run("yes yes yes yes")  # no limit: it measures (one output repeating itself)
    assert alone.passed and alone.details == {"outputs": 1, "distinct_1": 0.25, "distinct_2": 0.3333}
    ctx = CheckContext(services=Services(embedder=AxisEmbedder({t: v for t, v in zip(
        ENGLISH, ([1, 0], [1, 0], [0, 1]), strict=True)})))
    spread = from_entry({"diversity": {"min_spread": 0.5}}).run_many(ENGLISH, ctx)
    assert spread.passed and spread.details["spread"] == pytest.approx(2 / 3, abs=1e-4)  # pairs: 0, 1, 1
    assert not from_entry({"diversity": {"min_spread": 0.7}}).run_many(ENGLISH, ctx).passed
    missing = from_entry({"diversity": {"min_spread": 0.1}}).run_many(ENGLISH)
    assert not missing.passed and "no embedder" in (missing.error or "")
    with pytest.raises(UserError, match="min_distinct_2"):
        from_entry({"diversity": {"min_distinct_2": 2}})
    with pytest.raises(UserError, match="unknown key"):
        from_entry({"diversity": {"distinct": 0.5}})


def test_shuffle_lists_is_seeded_and_leaves_the_rest() -> None:
    values = {"options": list(range(8)), "question": "q", "one": [1]}
    first, again, other = (shuffle_lists(values, s) for s in ("s:0", "s:0", "s:1"))
    assert first == again and first["options"] != other["options"]
    assert sorted(first["options"]) == list(range(8)) and values["options"] == list(range(8))
    assert first["question"] == "q" and first["one"] == [1]


def test_diversity_over_repeats_in_an_eval_run(tmp_path: Path, llm, project, runtime) -> None:
    answers = itertools.cycle(["Roses are red.", "Roses are red.", "Violets are blue."])
    llm.add(r"poem", lambda _req: next(answers))
    text = """\
name: poems
target: model:small
prompt: "{{question}} {{words}}"
cases:
  - id: poem
    vars: {question: "Write a poem", words: [sun, moon, sea, sky], shuffle_seed: 7}
    checks: [{max_words: 10}, {not-contains: London}, {diversity: {min_distinct_2: 0.9}}]
"""
    suite = load_suite(write_suite(tmp_path / "evals" / "p.yaml", text), project)
    summary = run_suite(suite, runtime, options=RunOptions(concurrency=1, repeat=3, progress=False))
    verdicts = [next(c for c in r.checks if c.name == "diversity") for r in summary.results]
    assert len({v.reason for v in verdicts}) == 1 and not verdicts[0].passed
    assert verdicts[0].details["outputs"] == 3 and summary.passed == 0  # the case's runs fail with it
    prompts = [r["messages"][-1]["content"] for r in llm.requests if r["path"].endswith("/chat/completions")]
    assert len(set(prompts)) > 1  # each repeat shuffled the word list its own way
