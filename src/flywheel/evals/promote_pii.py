"""Which fields of a promoted case or an exported row keep their personal data (`--keep-pii`), and the tally of
what was masked that the CLI warns with and the datasheet records.

Every record is masked with flywheel.checks.pii.pseudonymize: numbered placeholders, the same value the same
placeholder in every field of the record, secrets always masked. By default nothing is kept. The human answer
of a record (a case's `reference`, an SFT row's `answer`, a DPO row's `chosen`) is named `reference` in every
output, so `--keep-pii reference` means the same thing for promote and for every export format.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from flywheel.checks.pii import Pseudonymized
from flywheel.errors import UserError

CASE_FIELDS = ("input", "context", "served_answer", "reference", "reason")  # promote and `export eval`
SFT_FIELDS = ("prompt", "answer")  # sft, openai-ft, hf: the prompt messages, the assistant's answer
DPO_FIELDS = ("prompt", "chosen", "rejected")
REFERENCE = {CASE_FIELDS: "reference", SFT_FIELDS: "answer", DPO_FIELDS: "chosen"}  # the human answer's field


def fields_of(fmt: str) -> tuple[str, ...]:
    """The maskable fields of an export format (`eval` and promote: a case's)."""
    return {"sft": SFT_FIELDS, "openai-ft": SFT_FIELDS, "hf": SFT_FIELDS, "dpo": DPO_FIELDS}.get(fmt, CASE_FIELDS)


def keep_fields(spec: str | Iterable[str] | None, fields: Sequence[str], *, option: str = "--keep-pii",
                where: str | None = None) -> frozenset[str]:
    """The fields named by `spec` ("reference,input", a list, "all", "none"; None or empty: none).
    `reference` names the record's human answer. UserError (exit 2) listing the valid names otherwise."""
    if spec is None:
        return frozenset()
    names = [n.strip().lower() for n in (spec.split(",") if isinstance(spec, str) else spec) if n and n.strip()]
    reference = REFERENCE[tuple(fields)]
    valid = [*fields, *(["reference"] if reference != "reference" else []), "all", "none"]
    unknown = [n for n in names if n not in valid]
    if unknown or (len(names) > 1 and ({"all", "none"} & set(names))):
        what = f"unknown field(s) {', '.join(repr(n) for n in unknown)}" if unknown else "all / none stand alone"
        alias = f" (`reference` = {reference})" if reference != "reference" else ""
        raise UserError(f"{option}: {what}; valid fields: {', '.join(valid)}{alias}", where=where,
                        hint=f"e.g. {option} reference keeps personal data that only the corrected answer holds")
    if names == ["all"]:
        return frozenset(fields)
    return frozenset(reference if n == "reference" else n for n in names if n != "none")


def warning_text(n: int) -> str:
    noun, verb = ("correction", "contains") if n == 1 else ("corrections", "contain")
    return (f"{n} {noun} {verb} personal data only in the reference; masked; pass --keep-pii reference to keep "
            "them")


@dataclass
class PiiTally:
    """What masking did over one run (promote or export): counts by field and entity type."""

    fields: tuple[str, ...]
    keep: frozenset[str] = frozenset()
    masked: dict[str, Counter[str]] = field(default_factory=dict)
    kept: dict[str, Counter[str]] = field(default_factory=dict)
    reference_only_masked: int = 0  # corrections whose reference held personal data no other field holds: masked
    reference_only_kept: int = 0  # … kept (--keep-pii reference)

    @property
    def reference(self) -> str:
        return REFERENCE[self.fields]

    def add(self, record: Pseudonymized, *, correction: bool) -> None:
        """Count one masked record; `correction`: its reference field is a human correction."""
        for name in self.fields:
            self.masked.setdefault(name, Counter()).update(record.masked.get(name, Counter()))
            self.kept.setdefault(name, Counter()).update(record.kept.get(name, Counter()))
        ref = self.reference
        if correction and record.exclusive.get(ref):
            if ref in self.keep:
                self.reference_only_kept += 1
            else:
                self.reference_only_masked += 1

    def warning(self) -> str | None:
        """The once-per-run warning when corrections lost the personal data that was their point."""
        return warning_text(self.reference_only_masked) if self.reference_only_masked else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kept_fields": sorted(self.keep),
            "masked": {name: dict(sorted(c.items())) for name in self.fields if (c := self.masked.get(name))},
            "kept": {name: dict(sorted(c.items())) for name in self.fields if (c := self.kept.get(name))},
            "corrections_with_reference_only_pii": {"masked": self.reference_only_masked,
                                                    "kept": self.reference_only_kept},
            "secrets": "always masked, in every field",
        }
