"""``nativelib.inspection.write_json``: the ``inspect --json`` text, fast and exactly as
``json.dump(inspect_json(results), indent=2)`` writes it; the modules ``inspect`` imports."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nativelib.elf import ElfInfo, VersionNeed, VersionRequirement
from nativelib.inspection import inspect_json, write_json
from nativelib.scan import ScanResult, scan_paths

HOST_LIBS = "/usr/lib/x86_64-linux-gnu"


def reference(results: list[ScanResult]) -> str:
    return json.dumps(inspect_json(results), indent=2) + "\n"


def written(results: list[ScanResult]) -> str:
    out = io.StringIO()
    write_json(results, out)
    return out.getvalue()


def info(path: str, **fields: object) -> ElfInfo:
    values: dict[str, object] = {
        "path": path,
        "elf_class": 64,
        "byte_order": "little",
        "machine": 62,
        "type": 3,
        "soname": None,
        "needed": (),
        "rpath": (),
        "runpath": (),
        "version_requirements": (),
        "version_definitions": (),
        "interpreter": None,
    }
    values.update(fields)
    return ElfInfo(**values)  # type: ignore[arg-type]


ODD = ['quote " backslash \\ tab \t nl \n', "caf\u00e9 \u2603 \U0001f600", "\x00\x1f\x7f", "", ":"]

CASES: dict[str, list[ScanResult]] = {
    "empty": [],
    "one-error": [ScanResult("/x/libbad.so", None, "truncated: ELF header")],
    "error-none": [ScanResult("/x/odd", None, None)],
    "bare": [ScanResult("/x/a.so", info("/x/a.so"), None)],
    "full": [
        ScanResult(
            "/x/libfull.so",
            info(
                "/x/libfull.so",
                soname="libfull.so.1",
                needed=("libc.so.6", "libm.so.6"),
                rpath=("$ORIGIN", "", "/opt/lib"),
                runpath=("$ORIGIN/../lib",),
                version_requirements=(
                    VersionRequirement("libc.so.6", (VersionNeed("GLIBC_2.2.5"),)),
                    VersionRequirement("libm.so.6", ()),
                    VersionRequirement(
                        "libgcc_s.so.1", (VersionNeed("GCC_3.0"), VersionNeed("GCC_4.2", True))
                    ),
                ),
                version_definitions=("FULL_1.0", "FULL_1.1"),
            ),
            None,
        ),
        ScanResult("/x/bad.so", None, "not an ELF file"),
    ],
    # One file named by two Verneed entries: its nodes merged (ElfInfo.version_needs).
    "file-twice": [
        ScanResult(
            "/x/twice.so",
            info(
                "/x/twice.so",
                version_requirements=(
                    VersionRequirement("libc.so.6", (VersionNeed("GLIBC_2.2.5"),)),
                    VersionRequirement("libm.so.6", (VersionNeed("GLIBC_2.29"),)),
                    VersionRequirement("libc.so.6", (VersionNeed("GLIBC_2.34"),)),
                ),
            ),
            None,
        )
    ],
    "odd-strings": [
        ScanResult(
            "/x/" + s + "\udcff",
            info(
                "/x/" + s,
                soname=s,
                needed=tuple(ODD),
                rpath=(s,),
                version_requirements=(VersionRequirement(s, tuple(VersionNeed(o) for o in ODD)),),
                version_definitions=(s,),
            ),
            None,
        )
        for s in ODD
    ]
    + [ScanResult("/x/\udcff" + s, None, s) for s in ODD],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_text_as_json_dump(case: str) -> None:
    results = CASES[case]
    assert written(results) == reference(results)


@pytest.mark.skipif(not os.path.isdir(HOST_LIBS), reason=f"no {HOST_LIBS} on this host")
def test_same_text_as_json_dump_over_the_host_libraries() -> None:
    results = list(scan_paths([HOST_LIBS]))
    assert len(results) > 10
    assert written(results) == reference(results)


def test_same_text_over_fixtures_and_an_error(elf_fixtures, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "libtrunc.so").write_bytes(b"\x7fELF\x02\x01\x01" + bytes(20))
    paths = [str(p) for p in elf_fixtures.files.values()] + [str(tmp_path)]
    results = list(scan_paths(paths))
    assert any(r.error for r in results) and any(r.info for r in results)
    assert written(results) == reference(results)


def test_one_write() -> None:
    class Counting(io.StringIO):
        writes = 0

        def write(self, s: str) -> int:
            Counting.writes += 1
            return super().write(s)

    stream = Counting()
    write_json(CASES["full"] * 50, stream)
    assert Counting.writes == 1


def test_inspect_imports_no_needless_modules(elf_fixtures) -> None:  # type: ignore[no-untyped-def]
    # What `nativelib inspect --json DIR` imports on its way (wheels aside).
    target = str(elf_fixtures["libver.so.1"])
    code = (
        "import sys, io\n"
        "sys.stdout = io.StringIO()\n"
        "from nativelib.cli import main\n"
        f"main(['inspect', '--json', {target!r}])\n"
        "sys.stdout = sys.__stdout__\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    for heavy in ("dataclasses", "inspect", "zipfile", "ast", "dis"):  # zlib: argparse
        assert heavy not in out, heavy
