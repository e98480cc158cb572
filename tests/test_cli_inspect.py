"""``nativelib inspect``: files, directories, wheels; JSON schema; exit codes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from nativelib.cli import main
from nativelib.elf import read_elf
from nativelib.scan import SKIPPED_SUFFIXES

SCHEMA = json.loads(
    resources.files("nativelib").joinpath("data/schemas/inspect.schema.json").read_text("utf-8")
)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any], str]:
    code, out, err = run(capsys, "inspect", "--json", *argv)
    doc = json.loads(out)
    jsonschema.validate(doc, SCHEMA)
    return code, doc, err


@pytest.fixture
def libdir(elf_fixtures, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    """A directory with ELF files, a soname symlink, and files that are not ELF."""
    d = tmp_path / "lib"
    d.mkdir()
    for name in ("libver.so.1", "libuser.so", "libcxx.so"):
        shutil.copyfile(elf_fixtures[name], d / name)
    (d / "libver.so").symlink_to("libver.so.1")
    (d / "libc.so").write_text("/* GNU ld script */\nGROUP ( /lib/x86_64-linux-gnu/libc.so.6 )\n")
    (d / "README.txt").write_text("hello\n")
    (d / "empty").write_bytes(b"")
    sub = d / "sub"
    sub.mkdir()
    shutil.copyfile(elf_fixtures["libplain.so"], sub / "libplain.so")
    return d


def test_directory_json_matches_schema_and_reader(capsys, libdir: Path) -> None:  # type: ignore[no-untyped-def]
    code, doc, err = run_json(capsys, str(libdir))
    assert code == 0
    paths = [f["path"] for f in doc["files"]]
    # Non-ELF files are skipped; the symlink is reported once, under the real file.
    assert paths == sorted(
        str(libdir / n) for n in ("libcxx.so", "libuser.so", "libver.so.1", "sub/libplain.so")
    )
    user = next(f for f in doc["files"] if f["path"].endswith("libuser.so"))
    info = read_elf(libdir / "libuser.so")
    assert user == {
        "path": str(libdir / "libuser.so"),
        "soname": "libuser.so",
        "needed": ["libver.so.1", "libc.so.6"],
        "rpath": [],
        "runpath": ["$ORIGIN", "/opt/nativelib/lib"],
        "version_needs": {k: list(v) for k, v in info.version_needs.items()},
        "version_definitions": [],
        "error": None,
    }
    assert "inspected 4 files" in err


def test_text_listing(capsys, libdir: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, _err = run(capsys, "inspect", str(libdir / "libver.so.1"), str(libdir / "libcxx.so"))
    assert code == 0
    assert f"{libdir / 'libver.so.1'}\n" in out
    assert "soname:     libver.so.1" in out
    assert "provides:   VERS_1.0 VERS_2.0 VERS_3.0" in out
    assert "needs:      libstdc++.so.6: " in out
    assert "manylinux:  manylinux_2_24_x86_64" in out


def test_explicit_non_elf_file_is_reported(capsys, libdir: Path) -> None:  # type: ignore[no-untyped-def]
    code, doc, err = run_json(capsys, str(libdir / "libc.so"), str(libdir / "libver.so.1"))
    assert code == 1
    assert doc["files"][0]["path"] == str(libdir / "libc.so")
    assert doc["files"][0]["error"] == "not an ELF file"
    assert doc["files"][1]["error"] is None
    assert f"{libdir / 'libc.so'}: not an ELF file" in err


def test_malformed_file_in_directory(capsys, libdir: Path) -> None:  # type: ignore[no-untyped-def]
    data = (libdir / "libuser.so").read_bytes()
    (libdir / "libbroken.so").write_bytes(data[:3000])
    code, doc, err = run_json(capsys, str(libdir))
    assert code == 1
    broken = next(f for f in doc["files"] if f["path"].endswith("libbroken.so"))
    assert broken["error"].startswith("truncated")
    assert broken["soname"] is None and broken["needed"] == []
    assert f"{libdir / 'libbroken.so'}: truncated" in err
    assert "1 could not be parsed" in err


def test_missing_path_is_a_usage_error(capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run(capsys, "inspect", str(tmp_path / "nope.so"))
    assert code == 2
    assert out == ""
    assert err.startswith("error: no such file or directory: ")
    assert "\nhint: " in err


@pytest.mark.parametrize("argv", [[], ["inspect"], ["inspect", "--bogus", "x"], ["frobnicate"]])
def test_usage_errors_exit_2(capsys, argv: list[str]) -> None:  # type: ignore[no-untyped-def]
    code, _out, err = run(capsys, *argv)
    assert code == 2
    assert err


def test_fifo_socket_and_device_are_never_opened(capsys, libdir: Path) -> None:  # type: ignore[no-untyped-def]
    fifo = libdir / "pipe.so"
    os.mkfifo(fifo)
    # Walking a directory with a FIFO must neither block nor report it.
    code, doc, _err = run_json(capsys, str(libdir))
    assert code == 0
    assert all(not f["path"].endswith("pipe.so") for f in doc["files"])
    # Named explicitly, it is an error entry, still without opening it.
    code, doc, _err = run_json(capsys, str(fifo), "/dev/null")
    assert code == 1
    assert [f["error"] for f in doc["files"]] == [
        "not a regular file: it is a FIFO",
        "not a regular file: it is a character device",
    ]


def _make_wheel(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("demo/", b"")
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_wheel_is_read_in_place(capsys, elf_fixtures, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    members = {
        "demo/__init__.py": b"",
        "demo/_ext.so": elf_fixtures["libuser.so"].read_bytes(),
        "demo.libs/libver-1a2b3c4d.so.1": elf_fixtures["libver.so.1"].read_bytes(),
        "demo-1.0.dist-info/RECORD": b"",
    }
    wheel = _make_wheel(tmp_path / "demo-1.0-cp311-cp311-linux_x86_64.whl", members)
    before = sorted(p.name for p in tmp_path.iterdir())
    code, doc, _err = run_json(capsys, str(wheel))
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "inspect wrote to disk"
    by_member = {f["path"].split("!", 1)[1]: f for f in doc["files"]}
    assert sorted(by_member) == ["demo.libs/libver-1a2b3c4d.so.1", "demo/_ext.so"]
    assert all(f["path"].startswith(f"{wheel}!") for f in doc["files"])
    # Same facts as reading the files from disk.
    code, disk, _err = run_json(
        capsys, str(elf_fixtures["libuser.so"]), str(elf_fixtures["libver.so.1"])
    )
    for member, original in zip(
        ["demo/_ext.so", "demo.libs/libver-1a2b3c4d.so.1"], disk["files"], strict=True
    ):
        assert {**by_member[member], "path": ""} == {**original, "path": ""}


def test_wheel_inside_walked_directory_and_broken_wheels(
    capsys, elf_fixtures, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    house = tmp_path / "wheelhouse"
    house.mkdir()
    _make_wheel(
        house / "good-1.0-py3-none-any.whl",
        {"good/lib.so": elf_fixtures["libver.so.1"].read_bytes()},
    )
    (house / "bad-1.0-py3-none-any.whl").write_bytes(b"this is not a zip file")
    truncated = elf_fixtures["libuser.so"].read_bytes()[:2000]
    _make_wheel(house / "cut-1.0-py3-none-any.whl", {"cut/_ext.so": truncated})
    code, doc, err = run_json(capsys, str(house))
    assert code == 1
    errors = {f["path"]: f["error"] for f in doc["files"]}
    assert errors[f"{house / 'good-1.0-py3-none-any.whl'}!good/lib.so"] is None
    assert errors[str(house / "bad-1.0-py3-none-any.whl")].startswith("cannot read as a wheel")
    assert errors[f"{house / 'cut-1.0-py3-none-any.whl'}!cut/_ext.so"].startswith("truncated")
    assert "bad-1.0-py3-none-any.whl: cannot read as a wheel" in err


@pytest.mark.parametrize(
    "entry",
    [["-m", "nativelib"], ["-c", "from nativelib.cli import main; import sys; sys.exit(main())"]],
)
def test_entry_points_and_exit_codes(entry: list[str], elf_fixtures, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ok = subprocess.run(
        [sys.executable, *entry, "inspect", "--json", str(elf_fixtures["libver.so.1"])],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["files"][0]["soname"] == "libver.so.1"
    bad = subprocess.run(
        [sys.executable, *entry, "inspect", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and bad.stdout == "" and "error:" in bad.stderr


def test_console_script_installed() -> None:
    exe = Path(sys.executable).parent / "nativelib"
    if not exe.exists():
        pytest.skip(
            f"no console script next to {sys.executable} (package not installed in this env)"
        )
    proc = subprocess.run([str(exe), "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("nativelib ")


def test_output_into_closed_pipe_is_not_an_error(elf_fixtures) -> None:  # type: ignore[no-untyped-def]
    # `nativelib inspect DIR | head -1`: the reader goes away early.
    proc = subprocess.run(
        [
            "bash",
            "-o",
            "pipefail",
            "-c",
            f"{sys.executable} -m nativelib inspect {elf_fixtures.dir} "
            "/usr/lib/x86_64-linux-gnu | head -1",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0
    assert "Traceback" not in proc.stderr


def test_walk_skips_source_and_text_suffixes_but_not_explicit_files(
    capsys, elf_fixtures, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    d = tmp_path / "pkg"
    d.mkdir()
    for name in ("ext.py", "ext.h", "ext.so", "ext.so.1", "ext.bin"):
        shutil.copyfile(elf_fixtures["libver.so.1"], d / name)
    assert {".py", ".h"} <= SKIPPED_SUFFIXES
    code, doc, _err = run_json(capsys, str(d))
    assert code == 0
    assert [Path(f["path"]).name for f in doc["files"]] == ["ext.bin", "ext.so", "ext.so.1"]
    # Named explicitly, the suffix does not matter.
    code, doc, _err = run_json(capsys, str(d / "ext.py"))
    assert code == 0 and doc["files"][0]["soname"] == "libver.so.1"
