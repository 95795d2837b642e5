"""Agreement statistics (flywheel.feedback.agreement) against sklearn, statsmodels and krippendorff, on simulated
annotators with known flip rates and on the edge cases (perfect agreement, one category, missing labels)."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from flywheel.errors import UserError
from flywheel.feedback.agreement import (
    agreement_report,
    cohen_kappa,
    fleiss_kappa,
    krippendorff_alpha,
    majority,
)

sklearn_metrics = pytest.importorskip("sklearn.metrics", reason="dev dependency scikit-learn")
inter_rater = pytest.importorskip("statsmodels.stats.inter_rater", reason="dev dependency statsmodels")
krippendorff = pytest.importorskip("krippendorff", reason="dev dependency krippendorff")

TOL = 1e-9


def simulate(n_items: int, flips: list[float], *, p_true: float = 0.5, categories: int = 2, seed: int = 0
             ) -> np.ndarray:
    """items × annotators category indices: each annotator reports the true label, or with probability flip a
    different category chosen uniformly."""
    rng = np.random.default_rng(seed)
    truth = (rng.random(n_items) < p_true).astype(int) if categories == 2 else rng.integers(0, categories, n_items)
    flipped = rng.random((n_items, len(flips))) < np.array(flips)
    other = (truth[:, None] + rng.integers(1, categories, (n_items, len(flips)))) % categories
    return np.where(flipped, other, truth[:, None])


def as_labels(matrix: np.ndarray, names: list[str], missing: np.ndarray | None = None) -> list[tuple[str, str, str]]:
    return [(f"item-{i}", f"ann-{j}", names[matrix[i, j]])
            for i in range(matrix.shape[0]) for j in range(matrix.shape[1])
            if missing is None or not missing[i, j]]


def expected_kappa(p_true: float, fa: float, fb: float) -> float:
    pa, pb = p_true * (1 - fa) + (1 - p_true) * fa, p_true * (1 - fb) + (1 - p_true) * fb
    po = (1 - fa) * (1 - fb) + fa * fb
    pe = pa * pb + (1 - pa) * (1 - pb)
    return (po - pe) / (1 - pe)


def reference_alpha(matrix: np.ndarray, missing: np.ndarray | None = None) -> float:
    data = matrix.astype(float).T.copy()
    if missing is not None:
        data[missing.T] = np.nan
    return float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))


# ----------------------------------------------------------------------------- against the references


@pytest.mark.parametrize("categories,names", [(2, ["fail", "pass"]), (3, ["a", "b", "tie"])])
def test_matches_references_on_complete_labels(categories, names):
    matrix = simulate(600, [0.1, 0.2, 0.3, 0.25], categories=categories, seed=categories)
    verdicts = np.array(names)[matrix]
    report = agreement_report(as_labels(matrix, names), n_boot=200, seed=1)
    assert [p["annotators"] for p in report["pairs"]] == [[f"ann-{a}", f"ann-{b}"]
                                                          for a, b in itertools.combinations(range(4), 2)]
    for pair in report["pairs"]:
        a, b = (int(name.split("-")[1]) for name in pair["annotators"])
        ref = sklearn_metrics.cohen_kappa_score(verdicts[:, a], verdicts[:, b])
        assert pair["cohen_kappa"] == pytest.approx(ref, abs=TOL)
        assert cohen_kappa(list(verdicts[:, a]), list(verdicts[:, b])) == pytest.approx(ref, abs=TOL)
        assert pair["n"] == 600
    table, _ = inter_rater.aggregate_raters(matrix)
    ref_fleiss = inter_rater.fleiss_kappa(table, method="fleiss")
    assert report["fleiss_kappa"] == pytest.approx(ref_fleiss, abs=TOL)
    assert fleiss_kappa(verdicts.tolist()) == pytest.approx(ref_fleiss, abs=TOL)
    ref_alpha = reference_alpha(matrix)
    assert report["krippendorff_alpha"] == pytest.approx(ref_alpha, abs=TOL)
    assert krippendorff_alpha(verdicts.tolist()) == pytest.approx(ref_alpha, abs=TOL)


def test_missing_labels_match_references():
    matrix = simulate(500, [0.1, 0.15, 0.3, 0.2, 0.05], categories=3, seed=7)
    missing = np.random.default_rng(8).random(matrix.shape) < 0.35
    names = ["a", "b", "tie"]
    report = agreement_report(as_labels(matrix, names, missing), n_boot=100, seed=0)
    assert report["n_labels"] == int((~missing).sum())
    for pair in report["pairs"]:
        a, b = (int(name.split("-")[1]) for name in pair["annotators"])
        both = ~missing[:, a] & ~missing[:, b]
        assert pair["n"] == int(both.sum())
        ref = sklearn_metrics.cohen_kappa_score(matrix[both, a], matrix[both, b])
        assert pair["cohen_kappa"] == pytest.approx(ref, abs=TOL)
        with_none = [[None if missing[i, j] else names[matrix[i, j]] for j in (a, b)] for i in range(500)]
        assert cohen_kappa(*zip(*with_none, strict=True)) == pytest.approx(ref, abs=TOL)
    ref_alpha = reference_alpha(matrix, missing)
    assert report["krippendorff_alpha"] == pytest.approx(ref_alpha, abs=TOL)
    rows = [[None if missing[i, j] else names[matrix[i, j]] for j in range(5)] for i in range(500)]
    assert krippendorff_alpha(rows) == pytest.approx(ref_alpha, abs=TOL)
    assert report["fleiss_kappa"] == pytest.approx(fleiss_kappa(rows), abs=TOL)


def test_fleiss_with_varying_raters_is_gwets_generalisation():
    # item 1: pass×2, fail×1 (r=3); item 2: pass×2 (r=2); item 3: fail×1, pass×1 (r=2); item 4: pass×1 (r=1)
    rows = [["pass", "pass", "fail"], ["pass", "pass", None], [None, "fail", "pass"], ["pass", None, None]]
    p_obs = (2 / 6 + 2 / 2 + 0 / 2) / 3  # Σ n(n−1) / r(r−1) over items with ≥ 2 ratings
    pi_pass = (2 / 3 + 1 + 1 / 2 + 1) / 4  # mean n_k / r over items with ≥ 1 rating
    p_exp = pi_pass ** 2 + (1 - pi_pass) ** 2
    assert fleiss_kappa(rows) == pytest.approx((p_obs - p_exp) / (1 - p_exp), abs=1e-12)
    # the value irrCAC (Python port of Gwet's R package) gives: CAC(df).fleiss() → -0.12208 (pa 0.46667, pe 0.52469)
    more = rows + [["fail", "fail", "fail"], ["fail", None, "pass"]]
    assert fleiss_kappa(more) == pytest.approx(-0.12208, abs=5e-6)
    # equal raters per item: ragged rows and None padding change nothing, and it is statsmodels' value
    equal = [["pass", "fail"], ["pass", "pass"], ["fail", "fail"], ["fail", "pass"], ["pass", "pass"]]
    table, _ = inter_rater.aggregate_raters(np.array(equal))
    assert fleiss_kappa(equal) == pytest.approx(inter_rater.fleiss_kappa(table), abs=TOL)
    assert fleiss_kappa([r + [None] for r in equal]) == pytest.approx(fleiss_kappa(equal), abs=TOL)


# ----------------------------------------------------------------------------- simulated annotators


def test_simulated_annotators_recover_the_analytic_kappa():
    flips, p_true = [0.05, 0.1, 0.2, 0.3], 0.3
    matrix = simulate(20_000, flips, p_true=p_true, seed=3)
    report = agreement_report(as_labels(matrix, ["fail", "pass"]), n_boot=200, seed=0)
    for pair in report["pairs"]:
        a, b = (int(name.split("-")[1]) for name in pair["annotators"])
        expected = expected_kappa(p_true, flips[a], flips[b])
        assert pair["cohen_kappa"] == pytest.approx(expected, abs=0.03)
        lo, hi = pair["ci95"]
        assert lo < pair["cohen_kappa"] < hi
        assert hi - lo < 0.06
    better, worse = report["pairs"][0], report["pairs"][-1]  # (0.05, 0.1) vs (0.2, 0.3)
    assert better["cohen_kappa"] > worse["cohen_kappa"] + 0.2


def test_equal_annotators_fleiss_and_alpha_near_the_analytic_kappa():
    flip, p_true = 0.15, 0.4
    matrix = simulate(20_000, [flip] * 5, p_true=p_true, seed=4)
    report = agreement_report(as_labels(matrix, ["fail", "pass"]), n_boot=200, seed=0)
    expected = expected_kappa(p_true, flip, flip)
    assert report["fleiss_kappa"] == pytest.approx(expected, abs=0.02)
    assert report["krippendorff_alpha"] == pytest.approx(expected, abs=0.02)
    assert report["fleiss_ci95"][0] < report["fleiss_kappa"] < report["fleiss_ci95"][1]
    assert report["krippendorff_ci95"][0] < report["krippendorff_alpha"] < report["krippendorff_ci95"][1]


# ----------------------------------------------------------------------------- edge cases


def test_perfect_agreement():
    labels = [(f"i{i}", ann, ["pass", "fail"][i % 2]) for i in range(20) for ann in ("x", "y", "z")]
    report = agreement_report(labels, n_boot=50)
    assert all(p["cohen_kappa"] == 1.0 and p["ci95"] == [1.0, 1.0] for p in report["pairs"])
    assert report["fleiss_kappa"] == pytest.approx(1.0) and report["krippendorff_alpha"] == pytest.approx(1.0)
    assert report["disagreements"] == [] and report["reasons"] == {}


def test_all_one_category_is_undefined_with_a_reason_and_no_nan():
    labels = [(f"i{i}", ann, "pass") for i in range(10) for ann in ("x", "y")]
    report = agreement_report(labels)
    assert report["pairs"][0]["cohen_kappa"] is None and report["pairs"][0]["ci95"] is None
    assert "one category" in report["pairs"][0]["reason"]
    assert report["fleiss_kappa"] is None and report["krippendorff_alpha"] is None
    assert report["fleiss_ci95"] is None and report["krippendorff_ci95"] is None
    assert set(report["reasons"]) == {"fleiss_kappa", "krippendorff_alpha"}
    json.dumps(report, allow_nan=False)
    assert math.isnan(cohen_kappa(["pass"] * 3, ["pass"] * 3))
    with pytest.warns(UserWarning):  # sklearn: the same convention (NaN)
        assert math.isnan(sklearn_metrics.cohen_kappa_score(["pass"] * 3, ["pass"] * 3))


def test_fewer_than_two_items_is_undefined():
    report = agreement_report([("only", "x", "pass"), ("only", "y", "fail")])
    assert report["n_items"] == 1 and report["pairs"][0]["cohen_kappa"] is None
    assert "fewer than 2 items" in report["pairs"][0]["reason"]
    assert report["fleiss_kappa"] is None and "fewer than 2 items" in report["reasons"]["fleiss_kappa"]
    assert report["disagreements"] == [{"item_id": "only", "verdicts": {"x": "pass", "y": "fail"}}]
    json.dumps(report, allow_nan=False)


def test_empty_labels():
    report = agreement_report([])
    assert report["n_items"] == 0 and report["pairs"] == [] and report["annotators"] == []
    assert report["fleiss_kappa"] is None and report["krippendorff_alpha"] is None
    json.dumps(report, allow_nan=False)


def test_pairs_without_common_items_are_left_out_and_disagreements_listed():
    labels = [("1", "x", "a"), ("1", "y", "b"), ("2", "x", "a"), ("2", "y", "a"), ("3", "z", "tie"),
              ("4", "z", "b"), ("3", "x", "tie"), ("4", "x", "tie")]
    report = agreement_report(labels, n_boot=20)
    assert [p["annotators"] for p in report["pairs"]] == [["x", "y"], ["x", "z"]]
    assert report["disagreements"] == [{"item_id": "1", "verdicts": {"x": "a", "y": "b"}},
                                       {"item_id": "4", "verdicts": {"x": "tie", "z": "b"}}]
    assert report["n_items"] == 4 and report["n_labels"] == 8


def test_bootstrap_is_seeded_and_n_boot_zero_skips_it():
    labels = as_labels(simulate(300, [0.1, 0.3, 0.2], seed=5), ["fail", "pass"])
    first, again = agreement_report(labels, seed=3), agreement_report(labels, seed=3)
    other = agreement_report(labels, seed=4)
    assert first == again
    assert first["fleiss_ci95"] != other["fleiss_ci95"] and first["fleiss_kappa"] == other["fleiss_kappa"]
    none = agreement_report(labels, n_boot=0)
    assert none["fleiss_ci95"] is None and all(p["ci95"] is None for p in none["pairs"])
    assert none["fleiss_kappa"] == first["fleiss_kappa"]


def test_bad_input():
    with pytest.raises(UserError, match="labelled item 'i1' twice"):
        agreement_report([("i1", "x", "pass"), ("i2", "x", "fail"), ("i1", "x", "fail")])
    with pytest.raises(UserError, match="not an \\(item_id, annotator, verdict\\) triple"):
        agreement_report([("i1", "x")])  # type: ignore[list-item]
    with pytest.raises(UserError, match="level"):
        krippendorff_alpha([["a", "b"]], level="interval")
    with pytest.raises(ValueError, match="same length"):
        cohen_kappa(["a"], ["a", "b"])


def test_majority_breaks_ties_to_none():
    labels = [("1", "x", "pass"), ("1", "y", "pass"), ("1", "z", "fail"),
              ("2", "x", "a"), ("2", "y", "b"),
              ("3", "x", "tie"),
              ("4", "x", "a"), ("4", "y", "b"), ("4", "z", "b")]
    assert majority(labels) == {"1": "pass", "2": None, "3": "tie", "4": "b"}
