"""Which judge `flywheel judge calibrate CHECK` means, and the calibrated prompts put back into eval suites.

CHECK is one of:

- `evals/qa.yaml` — the suite's `judge` check (the suite must hold exactly one distinct criterion);
- `evals/qa.yaml#CASE` — the first `judge` check of case CASE (also one in `defaults.checks`);
- `monitor:NAME` — the `monitor.online` entry with `check: judge` and `name: NAME` (unnamed: `monitor:judge`);
- `guard:APP` — the `judge` guard of app APP in flywheel.yaml (input or output stage);
- `judge:CRITERION` — a criterion written on the command line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flywheel.config import Project
from flywheel.errors import UserError
from flywheel.evals.calibration import JudgeRef
from flywheel.evals.calibration_store import calibrated_criterion, judge_status

FORMS = "evals/FILE.yaml, evals/FILE.yaml#CASE, monitor:NAME, guard:APP or judge:CRITERION"


LABEL_CHARS = 48  # of the criterion, in the calibrate header: one terminal line with the model and queue


def criterion_label(criterion: str) -> str:
    """How a `judge:CRITERION` judge is named in reports: its criterion, on one line and shortened
    (`judge "The answer cites a source."`), since that is all that tells it from another."""
    text = " ".join(criterion.split())
    return f'judge "{text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"}"'


def resolve_judge(project: Project, ref: str) -> JudgeRef:
    """The judge check `ref` names in the project; UserError (with what exists) when there is none."""
    ref = ref.strip()
    if ref.startswith("judge:"):
        criterion = ref[len("judge:"):].strip()
        if not criterion:
            raise UserError("judge: needs a criterion, e.g. judge:'The answer cites a source.'")
        return JudgeRef(label=criterion_label(criterion), criterion=criterion)
    if ref.startswith("monitor:"):
        return _from_specs(ref, project.config.monitor.online, ref[len("monitor:"):], by_name=True)
    if ref.startswith("guard:"):
        app = project.config.apps.get(ref[len("guard:"):])
        if app is None:
            raise UserError(
                f"unknown check {ref}: no app {ref[len('guard:'):]!r} in flywheel.yaml",
                hint=f"apps: {', '.join(sorted(project.config.apps)) or 'none'}",
            )
        return _from_specs(ref, [*app.guards.input, *app.guards.output], None, by_name=False)
    path_text, _, case_id = ref.partition("#")
    path = Path(path_text)
    if not path.is_absolute() and not path.exists():
        path = project.root / path
    if path.suffix not in (".yaml", ".yml") or not path.is_file():
        raise UserError(f"unknown check {ref}", hint=f"name a judge check as {FORMS}")
    return _from_suite(project, path, ref, case_id)


def _from_specs(ref: str, specs: list[Any], name: str | None, *, by_name: bool) -> JudgeRef:
    found = []
    for spec in specs:
        if spec.check != "judge":
            continue
        extra = dict(spec.model_extra or {})
        if by_name and (getattr(spec, "name", None) or "judge") != name:
            continue
        criterion = extra.get("criterion", extra.get("value"))
        if isinstance(criterion, str) and criterion.strip():
            found.append(JudgeRef(label=ref, criterion=criterion.strip(), model=extra.get("model")))
    if len(found) != 1:
        what = "no" if not found else f"{len(found)}"
        raise UserError(
            f"unknown check {ref}: {what} judge check(s) with a criterion there",
            hint="give the judge entry `criterion:` (and a unique `name:` for monitor.online)",
        )
    return found[0]


def _from_suite(project: Project, path: Path, ref: str, case_id: str) -> JudgeRef:
    from flywheel.evals.suite import load_suite

    suite = load_suite(path, project)
    judges: list[tuple[str, Any]] = []
    for case in suite.cases:
        judges.extend((case.id, c) for c in case.checks if c.name == "judge")
    if case_id:
        judges = [(cid, c) for cid, c in judges if cid == case_id]
        if not judges:
            ids = ", ".join(c.id for c in suite.cases[:10])
            raise UserError(f"unknown check {ref}: case {case_id!r} has no judge check", hint=f"cases: {ids}")
    distinct = {c.criterion: (cid, c) for cid, c in judges}
    if len(distinct) != 1:
        base = ref.split("#", 1)[0]  # as the user named the suite, so the hint's forms run as printed
        listed = "; ".join(f"{base}#{cid}" for cid, _ in list(distinct.values())[:5])
        raise UserError(
            f"unknown check {ref}: the suite has {len(distinct)} distinct judge criteria",
            hint=f"name one by its case: {listed}" if distinct else "add a `judge:` check to the suite",
        )
    _, check = next(iter(distinct.values()))
    return JudgeRef(label=ref, criterion=check.criterion, model=check.model or suite.judge)


def judges_of(suite: Any) -> list[tuple[str, Any]]:
    """(case id, check) for every `judge` check of a loaded suite, in case order."""
    return [(case.id, c) for case in suite.cases for c in case.checks if c.name == "judge"]


def apply_calibration(suite: Any, store: Any, min_kappa: float = 0.6,
                      root: Path | None = None) -> list[dict[str, Any]]:
    """Give every `judge` check of `suite` its adopted calibrated prompt; return one agreement line per
    distinct judge for the reports: {check, criterion, version, kappa, n_heldout, warning}.

    Call it after loading the suite and before running it (the suite hash then covers the prompts used)."""
    lines: dict[str, dict[str, Any]] = {}
    for case_id, check in judges_of(suite):
        written = check.criterion
        if written not in lines:
            status = judge_status(store, written)
            lines[written] = _line(f"{_typed_path(Path(str(suite.path)), root)}#{case_id}", written, status, min_kappa)
        prompt = calibrated_criterion(store, written)
        if prompt != written:
            check.criterion = prompt
            check.__dict__.pop("_spec", None)
    return list(lines.values())


def _typed_path(path: Path, root: Path | None) -> str:
    """The suite path as `resolve_judge` finds it: relative to the project root (or the current folder) when
    under it, else absolute. A bare file name would not resolve, so the printed command would not run."""
    resolved = path.resolve()
    for base in ([root] if root is not None else []) + [Path.cwd()]:
        try:
            return resolved.relative_to(base.resolve()).as_posix()
        except ValueError:
            continue
    return str(resolved)


def _line(label: str, criterion: str, status: dict[str, Any] | None, min_kappa: float) -> dict[str, Any]:
    line: dict[str, Any] = {"check": label, "criterion": criterion[:200], "version": None, "kappa": None,
                            "n_heldout": None, "measured_at": None, "warning": None}
    if status is None:
        line["warning"] = (f"judge {label} was never calibrated against human labels "
                           f"(flywheel judge calibrate {label} --queue Q)")
        return line
    line.update({k: status[k] for k in ("version", "kappa", "n_heldout", "measured_at")})
    if status["kappa"] is None or status["kappa"] < min_kappa:
        shown = "undefined" if status["kappa"] is None else f"{status['kappa']:.2f}"
        line["warning"] = f"judge {label} agrees with people at κ {shown}, below review.min_judge_kappa {min_kappa}"
    return line


def calibrate_for_run(suite: Any, runtime: Any) -> list[dict[str, Any]]:
    """`apply_calibration` with the runtime's store and `review.min_judge_kappa`; a suite without judge checks
    opens nothing and gets no lines. For `flywheel eval` (and the pytest plugin) right after loading a suite."""
    if not judges_of(suite):
        return []
    return apply_calibration(suite, runtime.store, runtime.config.review.min_judge_kappa, runtime.project.root)
