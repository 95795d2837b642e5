"""Temporary names for what `export`, `finetune` and `train-check` write before renaming it into place.

A temporary file or folder is named `.OUT.partial-PID-XXXX` next to OUT. A run killed outright (SIGKILL, OOM
killer, power loss) cannot remove its own; the next run that writes OUT removes those whose process is gone
(`clear_stale`), so a crash never leaves half-written data behind for good. What is renamed into place gets
the modes the umask gives a plain `open` / `mkdir` (`follow_umask`): `tempfile` creates 0600 files and 0700
folders, which a server running as another user could not read.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from flywheel.errors import UserError


def partial_prefix(out: Path, pid: int | None = None) -> str:
    """The name prefix of OUT's temporary files and folders written by process `pid` (this one by default)."""
    return f".{out.name}.partial-{os.getpid() if pid is None else pid}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's process, or a platform that cannot tell: leave its files alone
    return True


def clear_stale(out: Path) -> None:
    """Remove OUT's temporary files and folders left by runs whose process no longer exists."""
    if os.name == "nt" or not out.parent.is_dir():  # os.kill(pid, 0) would end the process on Windows
        return
    start = f".{out.name}.partial-"
    for p in out.parent.iterdir():  # not glob: OUT's name may hold [ ] * ?
        pid, dash, _ = p.name[len(start):].partition("-")
        if not p.name.startswith(start) or not dash or not pid.isdigit() or int(pid) == os.getpid() \
                or _alive(int(pid)):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def partial_dir(out: Path) -> Path:
    """A new, empty temporary folder next to OUT (stale ones of killed runs removed first)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    clear_stale(out)
    return Path(tempfile.mkdtemp(prefix=partial_prefix(out), dir=out.parent))


def partial_file(out: Path) -> tuple[int, str]:
    """`tempfile.mkstemp` next to OUT under a temporary name (stale ones of killed runs removed first)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    clear_stale(out)
    return tempfile.mkstemp(prefix=partial_prefix(out), dir=out.parent)


def _umask() -> int:
    try:  # Linux: read without changing it (os.umask would, for a moment, for every thread)
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def follow_umask(path: Path) -> None:
    """Give `path` (and, for a folder, everything in it) the modes a plain open / mkdir would have given."""
    mask = _umask()
    for p in [path, *(path.rglob("*") if path.is_dir() else [])]:
        if p.is_symlink():
            continue
        os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~mask)


def swap_in(tmp: Path, dest: Path) -> None:
    """Put the finished folder `tmp` at `dest`, replacing what was there only once `tmp` is complete."""
    old = dest.with_name(f".{dest.name}.old")
    shutil.rmtree(old, ignore_errors=True)  # also what a run killed between the two renames left
    if dest.exists():
        dest.rename(old)
    tmp.rename(dest)
    shutil.rmtree(old, ignore_errors=True)


def _cannot_write(path: Path, exc: OSError) -> UserError:
    return UserError(f"cannot write {path}: {exc.strerror or exc}", hint="check the path and its permissions")


def write_all(files: dict[Path, str]) -> None:
    """Every file to a temporary name first, then all renamed: an error leaves no file half-written and no
    temporary file. A path that is a folder is refused before anything is written; a place that cannot be
    written is a UserError naming it (never a traceback)."""
    for path in files:
        if path.is_dir():
            raise UserError(f"{path} is a folder", hint="give a file name, e.g. out/sft.jsonl (only `export hf` "
                                                        "writes a folder)")
    temps: list[tuple[str, Path]] = []
    current = Path()
    try:
        for current, text in files.items():
            fd, tmp = partial_file(current)
            temps.append((tmp, current))
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            follow_umask(Path(tmp))
        for tmp, current in temps:
            os.replace(tmp, current)
    except BaseException as exc:
        for tmp, _ in temps:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _cannot_write(current, exc) from None
        raise


def write_folder(folder: Path, files: dict[Path, str]) -> None:
    """A whole folder built next to `folder` and swapped in."""
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder} exists and is not a folder", hint="an hf export writes a folder")
    try:
        tmp = partial_dir(folder)
    except OSError as exc:
        raise _cannot_write(folder, exc) from None
    try:
        for path, text in files.items():
            (tmp / path.relative_to(folder)).write_text(text, encoding="utf-8")
        follow_umask(tmp)
        swap_in(tmp, folder)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise _cannot_write(folder, exc) from None
        raise


def check_writable(out: Path) -> None:
    """UserError now, not after an hour of training, when OUT's folder cannot be created or written."""
    place = out.parent
    while not place.exists() and place != place.parent:
        place = place.parent
    if not place.is_dir() or not os.access(place, os.W_OK | os.X_OK):
        raise UserError(f"cannot write {out}: {place} is not a writable folder",
                        hint="choose an --out in a folder you can write")
