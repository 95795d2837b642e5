"""Judge calibration: measure an LLM judge against human labels, improve it from the disagreements, version it.

    flywheel judge calibrate evals/qa.yaml#refunds --queue daily-2026-12-01

1. The judge (a `judge` check with its criterion) grades every binary item of a review queue that has a human
   majority verdict. The items are split, stratified by the human verdict and seeded, into a train and a
   held-out part; agreement with people on the held-out part is Cohen's κ, TPR (judge passes what people
   pass), TNR (judge fails what people fail) and the confusion matrix.
2. The train disagreements become few-shot examples (input, answer, the human verdict and reason), and the
   judge model may propose an edit of the criterion from them (EvalGen style). The candidate that agrees best
   on the train part is measured again on the held-out part.
3. Every calibration is a row of `judge_calibrations` (a new version); when it does not lower κ it is
   `adopted`: `calibrated_criterion(store, criterion)` then returns its prompt, which eval suites, guards and
   online evaluators pass to the judge check instead of the criterion as written (`apply_calibration`).

A judge is keyed by the hash of its criterion as written, so editing the criterion starts a new history.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from flywheel.checks.base import CheckContext, Services
from flywheel.checks.judge import _BINARY, Judge, ask_async, ask_for_verdict_async
from flywheel.checks.judge_parse import answer_part
from flywheel.checks.pii import pseudonymize
from flywheel.errors import UserError
from flywheel.evals.calibration_store import judge_key, latest_calibration, save_calibration
from flywheel.evals.records import scrub
from flywheel.feedback.agreement import cohen_kappa, majority
from flywheel.types import ChatRequest, Message

MAX_EXAMPLES = 8
_MAX_FIELD = 800  # characters of an example's input / answer / reason in the judge prompt
EXAMPLES_HEADER = "Examples graded by people (apply the criterion the way they did):"

PROPOSE_SYSTEM = "You write grading criteria for an LLM judge that decides PASS or FAIL."
PROPOSE_USER = """An LLM judge grades answers against this criterion:
<criterion>
{criterion}
</criterion>

People graded these answers differently from the judge:
<disagreements>
{cases}
</disagreements>

Rewrite the criterion so that a judge following it agrees with the people on these cases and on others like
them. Keep everything the criterion already asks; state the rule the people applied, in general terms, not the
cases themselves. Reply with the new criterion only, between <criterion> and </criterion>."""


@dataclass
class JudgeRef:
    """A judge check found in the project: how it was addressed, its criterion as written, its model alias."""

    label: str
    criterion: str
    model: str | None = None

    @property
    def key(self) -> str:
        return judge_key(self.criterion)


@dataclass
class LabelledItem:
    id: str
    input: str
    output: str
    human: str  # pass | fail: the majority of the annotators
    reason: str = ""
    correction: str | None = None
    trace_id: str | None = None


@dataclass
class Agreement:
    n: int
    kappa: float | None
    tpr: float | None
    tnr: float | None
    confusion: dict[str, int]  # tp: both pass, tn: both fail, fp: judge passes a human fail, fn: the reverse
    errors: int = 0  # the judge gave no verdict (excluded from the numbers)
    judged: list[str | None] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "judged"}


# ---------------------------------------------------------------- agreement


def agreement(humans: Sequence[str], judged: Sequence[str | None]) -> Agreement:
    """κ, TPR, TNR and the confusion matrix of the judge's verdicts against the human ones (pass = positive)."""
    pairs = [(h, j) for h, j in zip(humans, judged, strict=True) if j is not None]
    cm = {"tp": 0, "tn": 0, "fp": 0, "fn": 0}
    for h, j in pairs:
        cm[("t" if h == j else "f") + ("p" if j == "pass" else "n")] += 1
    pos, neg = cm["tp"] + cm["fn"], cm["tn"] + cm["fp"]
    return Agreement(
        n=len(pairs),
        kappa=_kappa([h for h, _ in pairs], [j for _, j in pairs]) if pairs else None,
        tpr=round(cm["tp"] / pos, 4) if pos else None,
        tnr=round(cm["tn"] / neg, 4) if neg else None,
        confusion=cm,
        errors=len(humans) - len(pairs),
        judged=list(judged),
    )


def _kappa(a: list[str], b: list[str]) -> float | None:
    value = cohen_kappa(a, b)
    return None if math.isnan(value) else round(value, 4)  # NaN: undefined (one verdict on both sides)


# ---------------------------------------------------------------- labelled items


def labelled_items(store: Any, queue: str) -> tuple[str, list[LabelledItem]]:
    """(queue id, its binary items that have a human majority verdict). UserError for an unknown queue, a
    pairwise queue, or one with no usable labels."""
    from flywheel.feedback import queues

    q = queues.get_queue(store, queue)  # raises UserError for an unknown queue
    items = [i for i in queues.items(store, q) if getattr(i, "kind", "binary") == "binary"]
    if not items:
        raise UserError(
            f"queue {queue} has no binary items", hint="calibrate on a pass/fail queue (review sample)"
        )
    labels = [lb for lb in queues.labels(store, q) if lb.verdict in ("pass", "fail")]
    verdicts = majority((lb.item_id, lb.annotator, lb.verdict) for lb in labels)
    out: list[LabelledItem] = []
    for item in items:
        verdict = verdicts.get(item.id)
        if verdict not in ("pass", "fail"):
            continue  # unlabelled, or people split evenly
        mine = [lb for lb in labels if lb.item_id == item.id and lb.verdict == verdict]
        reasons = [lb.reason for lb in mine if lb.reason]
        correction = next((lb.correction for lb in mine if lb.correction), None)
        out.append(
            LabelledItem(
                id=str(item.id),
                input=item.input or "",
                output=item.output or "",
                human=verdict,
                reason="; ".join(dict.fromkeys(reasons)),
                correction=correction,
                trace_id=item.trace_id,
            )
        )
    if not out:
        raise UserError(
            f"queue {queue} has no labelled items with a majority verdict",
            hint=f"label it first: flywheel review label ITEM --annotator NAME --verdict pass|fail "
            f"({len(items)} item(s), {len(labels)} label(s))",
        )
    return str(getattr(q, "id", queue)), out


def split(
    items: list[LabelledItem], heldout: float, seed: int
) -> tuple[list[LabelledItem], list[LabelledItem]]:
    """(train, held-out): each human verdict shuffled with `seed` and cut at the same share."""
    if not 0 < heldout < 1:
        raise UserError(f"--heldout must be between 0 and 1 (exclusive), got {heldout}")
    verdicts = {i.human for i in items}
    if len(verdicts) == 1:  # κ and one of TPR / TNR are undefined whatever the judge says
        raise UserError(
            f"all {len(items)} labelled item(s) have the human verdict {verdicts.pop()}: agreement with a judge "
            "needs items people passed and items they failed",
            hint="label items of the other verdict too (flywheel review sample, then flywheel review)",
        )
    rng = random.Random(seed)
    train: list[LabelledItem] = []
    held: list[LabelledItem] = []
    for verdict in ("pass", "fail"):
        group = sorted((i for i in items if i.human == verdict), key=lambda i: i.id)
        rng.shuffle(group)
        cut = round(len(group) * heldout)
        if len(group) >= 2:
            cut = min(max(cut, 1), len(group) - 1)  # both parts see both verdicts when there are two
        held.extend(group[:cut])
        train.extend(group[cut:])
    if not held or not train:
        raise UserError(
            f"{len(items)} labelled item(s) are too few to hold some out",
            hint="label more items (at least 4, with both verdicts) or change --heldout",
        )
    return train, held


# ---------------------------------------------------------------- the judge over items


async def judge_items(
    gateway: Any,
    prompt: str,
    model: str | None,
    items: Sequence[LabelledItem],
    *,
    default_model: str | None = None,
    concurrency: int = 8,
    malformed: list[str] | None = None,
) -> list[str | None]:
    """The judge check's verdict ("pass" / "fail", None when it gave none) on every item's answer; the replies
    that held no verdict are appended to `malformed` when given."""
    check = Judge({"criterion": prompt, "model": model} if model else prompt)
    services = Services(gateway=gateway, judge_model=default_model)
    gate = asyncio.Semaphore(concurrency)

    async def one(item: LabelledItem) -> str | None:
        ctx = CheckContext(input=item.input, services=services)
        request = check.request(item.output, ctx)
        if not isinstance(request, ChatRequest):
            return None
        async with gate:  # an unreachable judge stops the calibration (exit 3); no verdict: asked once more
            answers = await ask_for_verdict_async(gateway, request, _BINARY)
        result = check.verdict(answers[-1], answers[:-1])
        if result.error and malformed is not None:
            malformed.append(answers[0].text)
        return None if result.error else ("pass" if result.passed else "fail")

    return list(await asyncio.gather(*(one(i) for i in items)))


def render_prompt(criterion: str, examples: Sequence[dict[str, str]]) -> str:
    """The criterion the judge check receives: the criterion, then the people-graded examples."""
    if not examples:
        return criterion.strip()
    blocks = [EXAMPLES_HEADER]
    for n, ex in enumerate(examples, start=1):
        lines = [
            f"Example {n}",
            f"Input: {_clip(ex['input'])}",
            f"Output: {_clip(ex['output'])}",
            f"Human verdict: {ex['verdict'].upper()}",
        ]
        if ex.get("reason"):
            lines.append(f"Why: {_clip(ex['reason'])}")
        blocks.append("\n".join(lines))
    return criterion.strip() + "\n\n" + "\n\n".join(blocks)


def _clip(text: str) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= _MAX_FIELD else flat[: _MAX_FIELD - 1] + "…"


def pick_examples(
    wrong: Sequence[LabelledItem], seed: int, limit: int = MAX_EXAMPLES, keep: Sequence[dict] = ()
) -> list[dict[str, str]]:
    """Up to `limit` examples: the ones kept from the previous version, then new disagreements alternating
    false passes and false fails (seeded order), one per distinct input."""
    rng = random.Random(seed)
    groups = [sorted((i for i in wrong if i.human == v), key=lambda i: i.id) for v in ("fail", "pass")]
    for g in groups:
        rng.shuffle(g)
    order = [x for pair in _zip_longest(*groups) for x in pair if x is not None]
    out = [masked_example(e["input"], e["output"], e["verdict"], e.get("reason") or "") for e in keep]
    seen = {e["input"] for e in out}
    for item in order:
        if len(out) >= limit:
            break
        example = masked_example(item.input, item.output, item.human, item.reason)
        if example["input"] in seen:
            continue
        seen.add(example["input"])
        out.append(example)
    return out[:limit]


def masked_example(question: str, output: str, verdict: str, reason: str) -> dict[str, str]:
    """A people-graded example as it goes into a judge prompt: the prompt is stored and sent with every later
    judge call, so personal data is pseudonymised (one record: the same value, the same placeholder) and
    secrets are masked, as in promoted cases."""
    masked = pseudonymize({"input": [question], "output": [output], "reason": [reason]})
    return {
        "input": masked.text("input") or "",
        "output": masked.text("output") or "",
        "verdict": verdict,
        "reason": masked.text("reason") or "",
    }


def _zip_longest(a: list[Any], b: list[Any]) -> list[tuple[Any, Any]]:
    n = max(len(a), len(b))
    return [(a[i] if i < len(a) else None, b[i] if i < len(b) else None) for i in range(n)]


async def propose_criterion(
    gateway: Any, model: str, criterion: str, wrong: Sequence[tuple[LabelledItem, str]]
) -> str | None:
    """The judge model's edit of the criterion from the disagreements (None when it proposes nothing usable)."""
    shown = [(masked_example(i.input, i.output, i.human, i.reason), j) for i, j in wrong[: 2 * MAX_EXAMPLES]]
    cases = "\n".join(
        f"<case>\nInput: {_clip(e['input'])}\nAnswer: {_clip(e['output'])}\nJudge said: {j.upper()}\n"
        f"People said: {e['verdict'].upper()}"
        + (f" because: {_clip(e['reason'])}" if e["reason"] else "")
        + "\n</case>"
        for e, j in shown
    )
    request = ChatRequest(
        messages=[
            Message(role="system", content=PROPOSE_SYSTEM),
            Message(role="user", content=PROPOSE_USER.format(criterion=criterion, cases=cases)),
        ],
        model=model,
        temperature=0.0,
        metadata={"purpose": "judge-calibration"},
    )
    result = await ask_async(gateway, request)
    answer = answer_part(result.text)[0]  # a reasoning model's drafts inside <think> are not its proposal
    found = re.findall(r"<criterion>(.*?)</criterion>", answer, re.DOTALL | re.IGNORECASE)
    proposal = found[-1].strip() if found else ""
    if not proposal or proposal == criterion.strip() or len(proposal) > 4000:
        return None
    return proposal


# ---------------------------------------------------------------- calibrate


def calibrate(
    store: Any,
    gateway: Any,
    judge: JudgeRef,
    items: list[LabelledItem],
    *,
    queue_id: str | None = None,
    heldout: float = 0.5,
    seed: int = 0,
    propose: bool = True,
    max_examples: int = MAX_EXAMPLES,
    default_model: str | None = None,
    concurrency: int = 8,
    save: bool = True,
) -> dict[str, Any]:
    """Measure, improve, re-measure on the held-out split; store the new version (unless `save=False`)."""
    return asyncio.run(
        acalibrate(
            store,
            gateway,
            judge,
            items,
            queue_id=queue_id,
            heldout=heldout,
            seed=seed,
            propose=propose,
            max_examples=max_examples,
            default_model=default_model,
            concurrency=concurrency,
            save=save,
        )
    )


async def acalibrate(
    store: Any,
    gateway: Any,
    judge: JudgeRef,
    items: list[LabelledItem],
    *,
    queue_id: str | None = None,
    heldout: float = 0.5,
    seed: int = 0,
    propose: bool = True,
    max_examples: int = MAX_EXAMPLES,
    default_model: str | None = None,
    concurrency: int = 8,
    save: bool = True,
) -> dict[str, Any]:
    train, held = split(items, heldout, seed)
    model = judge.model or default_model or "default"
    current = latest_calibration(store, judge.key, adopted=True) if store is not None else None
    criterion = current["criterion"] if current else judge.criterion
    kept = list(current["examples"] or []) if current else []
    prompt_before = current["prompt"] if current else judge.criterion

    malformed: list[str] = []

    def run(prompt: str, part: Sequence[LabelledItem]) -> Any:
        return judge_items(
            gateway,
            prompt,
            model,
            part,
            default_model=default_model,
            concurrency=concurrency,
            malformed=malformed,
        )

    judged = await run(prompt_before, [*train, *held])
    if all(
        j is None for j in judged
    ):  # nothing to measure: storing a version would record a judge that never ran
        reply = f"; its first reply: {_clip(scrub(malformed[0]))[:200]!r}" if malformed else ""
        raise UserError(
            f"the judge model `{model}` gave no PASS/FAIL verdict on any of the {len(judged)} item(s){reply}",
            hint="point --model (or the check's `model:`) at a judge model that ends its reply with "
            "`Verdict: PASS` or `Verdict: FAIL`",
        )
    before_train = agreement([i.human for i in train], judged[: len(train)])
    before = agreement([i.human for i in held], judged[len(train) :])
    wrong = [
        (i, j) for i, j in zip(train, before_train.judged, strict=True) if j is not None and j != i.human
    ]
    examples = pick_examples([i for i, _ in wrong], seed, max_examples, keep=kept)
    candidates = {"few-shot": (criterion, examples)}
    proposal = None
    if propose and wrong:
        proposal = await propose_criterion(gateway, model, criterion, wrong)
        if proposal is not None:
            candidates["criterion edit + few-shot"] = (proposal, examples)
    chosen = "few-shot"
    if len(candidates) > 1:  # chosen on the train split: the held-out split only measures
        scores = {}
        for name, (crit, exs) in candidates.items():
            got = agreement([i.human for i in train], await run(render_prompt(crit, exs), train))
            scores[name] = got.kappa if got.kappa is not None else -2.0
        chosen = max(candidates, key=lambda k: (scores[k], k == "few-shot"))
    new_criterion, new_examples = candidates[chosen]
    prompt_after = render_prompt(new_criterion, new_examples)
    after = (
        before
        if prompt_after == prompt_before
        else agreement([i.human for i in held], await run(prompt_after, held))
    )
    adopted = prompt_after != prompt_before and _at_least(after.kappa, before.kappa)
    report: dict[str, Any] = {
        "check": judge.label,
        "judge_key": judge.key,
        "judge_model": model,
        "queue": queue_id,
        "seed": seed,
        "n": len(items),
        "n_train": len(train),
        "n_heldout": len(held),
        "kappa_before": before.kappa,
        "kappa_after": after.kappa,
        "before": before.to_dict(),
        "after": after.to_dict(),
        "train_disagreements": len(wrong),
        "examples": len(new_examples),
        "step": chosen if prompt_after != prompt_before else _no_step(wrong),
        "prompt_changed": prompt_after != prompt_before,
        "proposed_criterion": proposal,
        "criterion": new_criterion,
        "adopted": adopted,
        "version": None,
    }
    if save and store is not None:
        report["version"] = save_calibration(
            store,
            judge_key=judge.key,
            check_name=judge.label,
            base_criterion=judge.criterion,
            criterion=new_criterion,
            examples=new_examples,
            prompt=prompt_after,
            judge_model=model,
            queue_id=queue_id,
            seed=seed,
            n=len(items),
            n_heldout=len(held),
            kappa_before=before.kappa,
            kappa_after=after.kappa,
            adopted=adopted,
            metrics={k: report[k] for k in ("before", "after", "step", "proposed_criterion", "n_train")},
        )
    return report


def _no_step(wrong: Sequence[Any]) -> str:
    if not wrong:
        return "none (no train disagreements)"
    return "none (the train disagreements are already examples in the prompt)"


def _at_least(after: float | None, before: float | None) -> bool:
    if after is None:
        return False
    return before is None or after >= before


def calibrate_synthetic(seed: int = 0, **options: Any) -> dict[str, Any]:
    """`flywheel bench review`'s figure: {"kappa_before", "kappa_after", "n_heldout"} of a judge with a known
    bias on a synthetic labelled set (see flywheel.evals.calibration_synthetic)."""
    from flywheel.evals.calibration_synthetic import calibrate_synthetic as run

    return dict(run(seed, **options))
