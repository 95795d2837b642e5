"""`flywheel bench retrieval` options: --dense-weights parsed, and run modes that exclude each other."""

from __future__ import annotations

from pathlib import Path


def parse_weights(raw: str | None) -> tuple[float, ...]:
    from flywheel.errors import UserError

    if not raw:
        return ()
    try:
        weights = tuple(float(w) for w in raw.split(",") if w.strip())
    except ValueError:
        raise UserError(f"--dense-weights {raw!r} is not a comma-separated list of numbers",
                        hint="e.g. --dense-weights 0.5,1.5,2") from None
    if any(w < 0 for w in weights):
        raise UserError(f"--dense-weights {raw!r} has a negative weight", hint="use weights >= 0") from None
    return weights


def check_options(*, dataset: Path | None, synthetic: int | None, calibrate: bool, sets: bool,
                   only: tuple[str, ...], config_file: Path | None, dense_weights: str | None) -> None:
    """One run mode at a time, and no option the chosen mode would silently ignore."""
    from flywheel.errors import UserError

    modes = [name for name, on in (("--dataset", dataset), ("--synthetic", synthetic), ("--calibrate", calibrate),
                                   ("--sets", sets)) if on]
    if len(modes) > 1:
        raise UserError(f"{' and '.join(modes)} are different runs", hint="pick one of them per command")
    if only and not sets:
        raise UserError("--set only applies to --sets", hint=f"flywheel bench retrieval --sets --set {only[0]}")
    ignored = [name for name, on in (("--config", config_file), ("--dense-weights", dense_weights)) if on]
    if ignored and modes and modes[0] in ("--synthetic", "--calibrate"):
        raise UserError(f"{modes[0]} does not use {' or '.join(ignored)}",
                        hint="they apply to the quality runs: the default data set, --dataset and --sets")
