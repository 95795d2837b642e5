"""`best_of_n:N` (the literature's name, and what users type) is `best_of:N`; the spec keeps the short name, so a
stored run is `suite [best_of:3:judge]` whichever was written."""

from __future__ import annotations

import pytest

from flywheel.errors import UserError
from flywheel.gateway.strategies import StrategySpec, parse_strategies


def test_best_of_n_is_best_of():
    assert StrategySpec.parse("best_of_n:3") == StrategySpec.parse("best_of:3")
    assert str(StrategySpec.parse("best-of-n:3:contains=Paris")) == "best_of:3:contains=Paris"
    assert [str(s) for s in parse_strategies("none,self_consistency:5,best_of_n:3")] == [
        "none", "self_consistency:5", "best_of:3:judge"]


def test_other_names_still_list_the_known_ones():
    with pytest.raises(UserError, match="unknown strategy name 'best_of_k'"):
        StrategySpec.parse("best_of_k:3")
