"""Issue 13, items 8, 9, 11 and 12: how ``repair`` publishes (temporary file, validated,
renamed), which inputs it refuses, errors instead of tracebacks, and leftovers of killed
runs. Small synthetic wheels: no compiler needed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import archive_corpus as corpus
import nativelib.repair.command as repair_command
from archive_corpus import Entry
from nativelib import leftovers
from nativelib.archive import open_archive
from nativelib.cli import main
from nativelib.errors import ManifestError, SourceError, WheelError
from nativelib.prefix import parse_manifest
from nativelib.wheelfile.record import parse_record
from nativelib_testing import write_wheel_members

NAME = "demo-1.0-py3-none-any.whl"
METADATA = b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n"
WHEEL = b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"


def _members(dist_info: str = "demo-1.0.dist-info") -> dict[str, bytes]:
    return {
        "demo/__init__.py": b"x = 1\n",
        f"{dist_info}/METADATA": METADATA,
        f"{dist_info}/WHEEL": WHEEL,
    }


def _wheel(where: Path, members: dict[str, bytes] | None = None, name: str = NAME) -> Path:
    return write_wheel_members(where / name, _members() if members is None else members)


def _hidden(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.startswith("."))


@pytest.fixture(autouse=True)
def _own_tmpdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    tmp = tmp_path / "TMPDIR"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    monkeypatch.setenv("TMPDIR", str(tmp))
    return tmp


# ------------------------------------------------------------- item 8: one publish path


def test_a_symlink_planted_at_the_output_name_is_replaced_not_written_through(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wheel = _wheel(tmp_path / "in")
    victim = tmp_path / "outside" / "victim"
    victim.parent.mkdir()
    victim.write_bytes(b"precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / NAME).symlink_to(victim)
    assert main(["repair", str(wheel), "-w", str(out)]) == 0
    assert victim.read_bytes() == b"precious"
    assert not (out / NAME).is_symlink()
    assert (out / NAME).read_bytes() == wheel.read_bytes()
    assert capsys.readouterr().out.strip() == str(out / NAME)
    assert _hidden(out) == []


def test_a_hard_link_to_the_input_at_the_output_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wheel = _wheel(tmp_path / "in")
    data = wheel.read_bytes()
    out = tmp_path / "out"
    out.mkdir()
    os.link(wheel, out / NAME)
    assert main(["repair", str(wheel), "-w", str(out)]) == 0
    assert "Traceback" not in capsys.readouterr().err
    assert wheel.read_bytes() == data and (out / NAME).read_bytes() == data
    assert os.stat(wheel).st_nlink == 1  # a new file took the name; the input is untouched
    assert _hidden(out) == []


_KILL_IN_WRITE = """
import os, signal, sys
import nativelib.wheelfile.write as write

def die(fd):  # the whole wheel is in the temporary file, not yet renamed
    os.kill(os.getpid(), signal.SIGKILL)

write.os.fsync = die
from nativelib.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_repair_killed_mid_write_leaves_no_final_file_and_the_next_run_cleans_up(
    tmp_path: Path, _own_tmpdir: Path
) -> None:
    wheel = _wheel(tmp_path / "in")
    out = tmp_path / "out"
    argv = ["repair", str(wheel), "-w", str(out)]
    env = {**os.environ, "TMPDIR": str(_own_tmpdir)}
    run = subprocess.run(
        [sys.executable, "-c", _KILL_IN_WRITE, *argv], env=env, capture_output=True, timeout=120
    )
    assert run.returncode == -signal.SIGKILL, run.stderr
    assert not (out / NAME).exists()
    [dead] = _hidden(out)
    assert dead.startswith(f".{NAME}.") and dead.endswith(".tmp")
    # A live writer's temporary file (this process is alive) is left alone.
    live = out / f".{NAME}.{leftovers.owner_tag()}.tmp"
    live.write_bytes(b"being written")
    # (The copy is written after the work tree is gone: plant a dead repair's tree.)
    host = leftovers.owner_tag().split("-")[1]
    tree = _own_tmpdir / f"nativelib-repair-{_dead_pid()}-{host}-{'d' * 16}-q"
    (tree / "demo").mkdir(parents=True)
    assert main(argv) == 0
    assert (out / NAME).read_bytes() == wheel.read_bytes()
    assert _hidden(out) == [live.name]
    assert list(_own_tmpdir.iterdir()) == []


# ------------------------------------------------------ item 9: inputs the validator refuses


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("dist-info-name", ".dist-info directory 'other-1.0.dist-info' does not match"),
        ("file-name", ".dist-info directory 'demo-1.0.dist-info' does not match"),
        ("dist-info-version", ".dist-info directory 'demo-2.0.dist-info' does not match"),
        ("wheel-version", "Wheel-Version 2.0 is not supported"),
        ("no-metadata", "demo-1.0.dist-info/METADATA is missing"),
        ("metadata-not-utf8", "demo-1.0.dist-info/METADATA is invalid"),
        ("wheel-not-utf8", "demo-1.0.dist-info/WHEEL is not UTF-8"),
        ("record-field-too-long", "RECORD line 5: cannot parse"),
    ],
)
def test_invalid_input_wheels_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, reason: str
) -> None:
    name = NAME
    members = _members()
    if case == "dist-info-name":
        members = _members("other-1.0.dist-info")
    elif case == "file-name":
        name = "other-1.0-py3-none-any.whl"
    elif case == "dist-info-version":
        members = _members("demo-2.0.dist-info")
    elif case == "wheel-version":
        members["demo-1.0.dist-info/WHEEL"] = WHEEL.replace(b"1.0", b"2.0")
    elif case == "no-metadata":
        del members["demo-1.0.dist-info/METADATA"]
    elif case == "metadata-not-utf8":
        members["demo-1.0.dist-info/METADATA"] = METADATA + b"Summary: \xff\xfe\n"
    elif case == "wheel-not-utf8":
        members["demo-1.0.dist-info/WHEEL"] = WHEEL + b"Generator: \xff\n"
    wheel = _wheel(tmp_path / "in", members, name)
    if case == "record-field-too-long":
        _append_record(wheel, "x" * (200 << 10) + ",sha256=AAAA,1\n")
    out = tmp_path / "out"
    assert main(["repair", str(wheel), "-w", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"error: {wheel}: " in err and reason in err, err
    assert "Traceback" not in err
    assert not out.exists()


def _append_record(wheel: Path, line: str) -> None:
    import zipfile  # noqa: PLC0415

    with zipfile.ZipFile(wheel) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    record = next(n for n in members if n.endswith("/RECORD"))
    members[record] += line.encode()
    with zipfile.ZipFile(wheel, "w") as zf:
        for n, data in members.items():
            zf.writestr(n, data)


def test_a_record_field_over_the_csv_limit_is_a_wheel_error() -> None:
    with pytest.raises(WheelError, match=r"RECORD line 2: cannot parse: field larger"):
        parse_record("a,,\n" + "b" * (200 << 10) + ",sha256=AAAA,1\n", "w.whl")


# ----------------------------------------------------------- item 11: errors, not tracebacks


def test_deeply_nested_manifest_json_is_a_manifest_error() -> None:
    with pytest.raises(ManifestError, match="nested too deeply"):
        parse_manifest("[" * 200_000, "m.json")


def test_a_manifest_sha256_that_is_not_hex_is_a_manifest_error() -> None:
    from test_prefix import manifest  # noqa: PLC0415

    doc = json.loads(manifest().to_json())
    doc["libraries"][0]["sha256"] = "zz" * 32
    with pytest.raises(ManifestError, match=r"libraries\[0\]\.sha256 'zzzz.*' is not 64"):
        parse_manifest(json.dumps(doc), "m.json")


@pytest.mark.parametrize("member", ["info/index.json", "info/paths.json"])
def test_deeply_nested_conda_json_is_a_source_error(tmp_path: Path, member: str) -> None:
    info = {e.name: e for e in corpus.conda_info_entries()}
    info[member] = Entry(member, data=b"[" * 100_000)
    pkg = corpus.tar_bytes([Entry("lib/x", data=b"x")])
    path = tmp_path / "x-1.0-h0_0.conda"
    path.write_bytes(corpus.conda_bytes(pkg, info_tar=corpus.tar_bytes(list(info.values()))))
    with pytest.raises(SourceError, match="nested too deeply"):
        open_archive(path).info()


def test_memory_error_is_an_error_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def run(_args: object) -> int:
        raise MemoryError

    monkeypatch.setattr(repair_command, "run", run)
    assert main(["repair", str(tmp_path / NAME)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: out of memory") and "Traceback" not in err


@pytest.fixture
def full_disk(tmp_path: Path) -> Path:
    """A 1 MiB tmpfs (root only)."""
    where = tmp_path / "full"
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)])
    if mount.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    yield where
    subprocess.run(["umount", str(where)], check=False)


def test_disk_full_while_repair_extracts(
    tmp_path: Path, full_disk: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    # repair extracts only what it reads (ELF files, .dist-info, files named like shared
    # objects, __init__.py): a member named like a shared object is written to TMPDIR
    members = {**_members(), "demo/libbig.so": b"\0" * (3 << 20)}
    wheel = _wheel(tmp_path / "in", members)
    monkeypatch.setattr(tempfile, "tempdir", str(full_disk))
    out = tmp_path / "out"
    assert main(["repair", str(wheel), "-w", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"error: {wheel}: " in err and "No space left on device" in err, err
    assert not out.exists() and list(full_disk.iterdir()) == []


def test_disk_full_while_build_extracts(full_disk: Path, tmp_path: Path) -> None:
    from nativelib.runtime_wheels.builder import Input, _unpack  # noqa: PLC0415

    path = tmp_path / "x-1.0-h0_0.tar.bz2"
    path.write_bytes(corpus.tar_bz2_bytes([Entry("lib/libx.so.1", data=b"\0" * (3 << 20))]))
    inp = Input(path, "conda", "file:///x", "0" * 64)
    with pytest.raises(SourceError, match="No space left on device") as e:
        _unpack(inp, full_disk / "dest", ["lib/*"])
    assert e.value.source == str(path)
    assert list(full_disk.iterdir()) == []


# --------------------------------------------------------- item 12: leftovers of dead runs


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_rule_dead_pid_live_pid_and_age(tmp_path: Path) -> None:
    tmp_path = tmp_path / "scan"
    tmp_path.mkdir()
    host = leftovers.owner_tag().split("-")[1]
    dead = tmp_path / f"nativelib-build-{_dead_pid()}-{host}-{'a' * 16}-xyz"
    live = tmp_path / f"nativelib-build-{leftovers.owner_tag()}-xyz"
    old = tmp_path / "nativelib-build-abc123"  # an older nativelib's name: no owner
    fresh = tmp_path / "nativelib-build-def456"
    elsewhere = tmp_path / f"nativelib-build-1-{'0' * 7}1-{'b' * 16}"  # another host's pid 1
    for d in (dead, live, old, fresh, elsewhere):
        (d / "sub").mkdir(parents=True)
        (d / "sub" / "f").write_bytes(b"x")
    aged = time.time() - leftovers.TREE_STALE_SECONDS - 60
    os.utime(old, (aged, aged))
    unrelated = tmp_path / "nativelib-buildx"
    unrelated.write_bytes(b"a file, not a tree")
    os.utime(unrelated, (aged, aged))
    removed = leftovers.remove_stale(
        tmp_path, r"nativelib-build-.+", leftovers.TREE_STALE_SECONDS, trees=True
    )
    assert removed == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (live, fresh, elsewhere, unrelated)
    )


def test_a_dead_build_tree_in_tmpdir_is_removed_by_the_next_one(_own_tmpdir: Path) -> None:
    host = leftovers.owner_tag().split("-")[1]
    dead = _own_tmpdir / f"nativelib-build-{_dead_pid()}-{host}-{'c' * 16}-q"
    (dead / "unpacked").mkdir(parents=True)
    live = _own_tmpdir / f"nativelib-build-{leftovers.owner_tag()}-r"
    live.mkdir()
    with leftovers.temporary_tree("build") as work:
        assert Path(work).parent == _own_tmpdir
        assert not dead.exists() and live.exists()
    assert not Path(work).exists()
