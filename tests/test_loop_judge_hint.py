"""`flywheel judge calibrate SUITE` on a suite with several judge criteria (what `flywheel promote` writes: one per
case) names each one as a CHECK that runs as printed: `evals/FILE.yaml#CASE`, the suite as the user named it."""

from __future__ import annotations

import pytest

from flywheel.config import Project
from flywheel.errors import UserError
from flywheel.evals.calibration_judges import resolve_judge


def test_the_hint_names_checks_that_resolve(tmp_path):
    (tmp_path / "flywheel.yaml").write_text("models:\n  default: {provider: extractive}\n")
    (tmp_path / "evals").mkdir()
    (tmp_path / "evals" / "regressions.yaml").write_text(
        "name: regressions\ntarget: model:default\nprompt: '{{question}}'\ncases:\n"
        "- id: trace-a\n  vars: {question: q1}\n  checks:\n  - judge: 'The answer gives the right refund window.'\n"
        "- id: trace-b\n  vars: {question: q2}\n  checks:\n  - judge: 'The answer names the right address.'\n")
    project = Project.load(tmp_path)
    with pytest.raises(UserError) as err:
        resolve_judge(project, "evals/regressions.yaml")
    hint = err.value.hint or ""
    named = [part.strip() for part in hint.split(":", 1)[1].split(";")]
    assert named == ["evals/regressions.yaml#trace-a", "evals/regressions.yaml#trace-b"]
    assert [resolve_judge(project, ref).criterion for ref in named] == [
        "The answer gives the right refund window.", "The answer names the right address."]
