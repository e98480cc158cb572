"""What is *not* external: the one rule (``nativelib.repair.graft.classify_needs``) that
repair (whether auditwheel runs, what it ``--exclude``s) and check (``external-library``)
share, on the torch-style layout that made auditwheel run for minutes on PyPI's CUDA torch.

The extension is compiled here to NEED

- ``libbar.so``, built here into ``site/otherdist/lib``: another distribution's folder,
  reached through the extension's RUNPATH ``$ORIGIN/../../otherdist/lib`` (as
  libtorch_cuda.so reaches ``nvidia/cublas/lib``), outside the wheel;
- ``libcuda.so.1``: a stub compiled here with that soname, which stands in for the NVIDIA
  driver's library (this host has no driver; only the soname matters to the rule);
- ``libgomp.so.1``, a runtime: linked to nativelib-gomp as always;
- in the second wheel, another object needs ``libfoo.so.1``, a real external library
  that auditwheel must graft, so auditwheel runs and must exclude libbar and libcuda.

Neither libbar nor the stub is findable by auditwheel (no LD_LIBRARY_PATH to them, not in
the host's cache): if repair ran auditwheel without excluding them, it would fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from nativelib.cli import main
from nativelib.elf import read_elf
from nativelib_testing import write_wheel_members

pytestmark = pytest.mark.skipif(
    shutil.which("gcc") is None,
    reason="needs gcc to build the libraries",
)

SCHEMA = json.loads(
    resources.files("nativelib").joinpath("data/schemas/check.schema.json").read_text("utf-8")
)
OUTSIDE = "$ORIGIN/../../otherdist/lib"
EXT = r"""
#include <omp.h>
int bar_value(void);
int cuInit(unsigned int flags);
int ext_value(void) { return bar_value() + 3 * cuInit(0) + (omp_get_max_threads() < 1); }
"""
FOO_USER = "int foo_scale(int);\nint user_value(void) { return foo_scale(14); }\n"


def _so(out: Path, source: str, soname: str, *flags: str) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    src = out.with_suffix(".c")
    src.write_text(source)
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-O1", f"-Wl,-soname,{soname}", "-o", str(out), str(src),
         *flags],
        check=True, capture_output=True,
    )  # fmt: skip
    return out


def _libraries(root: Path) -> dict[str, Path]:
    return {
        "bar": _so(root / "site/otherdist/lib/libbar.so", "int bar_value(void) { return 40; }\n",
                   "libbar.so"),
        # The stand-in for the driver's libcuda.so.1 (cuInit returns 1 here).
        "cuda": _so(root / "stub/libcuda.so.1", "int cuInit(unsigned f) { return 1 + (int)f; }\n",
                    "libcuda.so.1"),
        "foo": _so(root / "foo/libfoo.so.1", "int foo_scale(int x) { return 3 * x; }\n",
                   "libfoo.so.1"),
    }  # fmt: skip


def _raw_wheel(root: Path, libs: dict[str, Path], *, with_foo: bool) -> Path:
    name = "barfoo" if with_foo else "barcuda"
    ext = root / name / "_ext.so"
    flags = [
        "-fopenmp", f"-L{libs['bar'].parent}", "-lbar", f"-L{libs['cuda'].parent}",
        "-l:libcuda.so.1", f"-Wl,-rpath,{OUTSIDE}", "-Wl,--enable-new-dtags",
    ]  # fmt: skip
    _so(ext, EXT, "_ext.so", *flags)
    info = read_elf(ext)
    assert {"libbar.so", "libcuda.so.1", "libgomp.so.1"} <= set(info.needed)
    assert info.runpath == (OUTSIDE,)
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    files = {
        f"{name}/__init__.py": b"",
        f"{name}/lib/_ext.so": ext.read_bytes(),
        f"{name}-1.0.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n"
        .encode(),
        f"{name}-1.0.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: nativelib-tests\nRoot-Is-Purelib: false\n"
            f"Tag: {tag}-{tag}-linux_x86_64\n"
        ).encode(),
    }  # fmt: skip
    if with_foo:  # another object, with no RUNPATH, that needs libfoo
        user = _so(root / name / "_user.so", FOO_USER, "_user.so", f"-L{libs['foo'].parent}",
                   "-l:libfoo.so.1")  # fmt: skip
        assert "libfoo.so.1" in read_elf(user).needed
        files[f"{name}/_user.so"] = user.read_bytes()
    return write_wheel_members(root / f"dist/{name}-1.0-{tag}-{tag}-linux_x86_64.whl", files)


def _check_json(capsys: pytest.CaptureFixture[str], wheel: Path) -> tuple[int, dict[str, object]]:
    code = main(["check", str(wheel), "--json"])
    doc = json.loads(capsys.readouterr().out)
    jsonschema.validate(doc, SCHEMA)
    (report,) = doc["wheels"]
    return code, report


def _run_installed(root: Path, wheel: Path, member: str, libs: dict[str, Path]) -> str:
    """The wheel unpacked into ``site`` (where otherdist/lib already is, as if the other
    distribution were installed), the extension loaded and called; the stub stands in for
    the host's driver through LD_LIBRARY_PATH."""
    site = root / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    probe = (
        "import ctypes, sys; lib = ctypes.CDLL(sys.argv[1]); "
        "print(lib.ext_value(), sorted({l.split()[-1] for l in open('/proc/self/maps') "
        "if 'libbar' in l or 'libfoo' in l}))"
    )
    env = {**os.environ, "LD_LIBRARY_PATH": str(libs["cuda"].parent)}
    done = subprocess.run(
        [sys.executable, "-c", probe, str(site / member)],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_other_distributions_and_the_driver_are_not_external(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("LD_LIBRARY_PATH", raising=False)
    monkeypatch.delenv("AUDITWHEEL_LD_LIBRARY_PATH", raising=False)
    libs = _libraries(tmp_path)
    raw = _raw_wheel(tmp_path / "build", libs, with_foo=False)

    # check: no external-library problem (libgomp's are); both listed.
    code, report = _check_json(capsys, raw)
    kinds = {p["kind"] for p in report["problems"]}
    assert code == 1 and kinds == {"missing-requirement", "runpath", "platform-tag"}, report
    assert report["other_distributions"] == ["libbar.so"]
    assert report["host_drivers"] == ["libcuda.so.1"]

    assert main(["repair", str(raw), "--plan", "-w", str(tmp_path / "plan")]) == 0
    plan = capsys.readouterr().out
    assert f"from other distributions: libbar.so (through RUNPATH {OUTSIDE}" in plan
    assert "from the host's driver: libcuda.so.1" in plan and "auditwheel" not in plan

    # auditwheel is not run: it could not find libbar or libcuda.so.1 and would fail.
    out = tmp_path / "out"
    assert main(["repair", str(raw), "-w", str(out)]) == 0
    assert "auditwheel" not in capsys.readouterr().err
    (wheel,) = out.glob("*.whl")
    assert "-manylinux_" in wheel.name
    with zipfile.ZipFile(wheel) as zf:
        assert not [n for n in zf.namelist() if "libbar" in n or "libcuda" in n]
        (tmp_path / "repaired.so").write_bytes(zf.read("barcuda/lib/_ext.so"))
    info = read_elf(tmp_path / "repaired.so")
    assert info.runpath == (OUTSIDE, "$ORIGIN/../../nativelib.prefix/lib")
    assert {"libbar.so", "libcuda.so.1"} <= set(info.needed)

    code, report = _check_json(capsys, wheel)
    assert (code, report["problems"]) == (0, [])
    assert main(["check", str(wheel)]) == 0
    text = capsys.readouterr().out
    assert "from other distributions libbar.so" in text and "libcuda.so.1" in text

    value, loaded = _run_installed(tmp_path, wheel, "barcuda/lib/_ext.so", libs).split(" ", 1)
    assert int(value) == 40 + 3 * 1
    assert str(tmp_path / "site/otherdist/lib/libbar.so") in loaded


def test_auditwheel_grafts_the_external_and_excludes_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AUDITWHEEL_LD_LIBRARY_PATH", raising=False)
    libs = _libraries(tmp_path)
    raw = _raw_wheel(tmp_path / "build", libs, with_foo=True)

    code, report = _check_json(capsys, raw)
    external = [(p["member"], p["message"]) for p in report["problems"]]
    external = [m for m, text in external if "NEEDs libfoo.so.1" in text]
    kinds = {p["kind"] for p in report["problems"]}
    assert code == 1 and external == ["barfoo/_user.so"] and "external-library" in kinds
    assert len([p for p in report["problems"] if p["kind"] == "external-library"]) == 1

    # Only libfoo is findable: auditwheel succeeds only when libbar and libcuda.so.1 are
    # excluded (it looks up every NEEDED library of every object it does not exclude).
    monkeypatch.setenv("LD_LIBRARY_PATH", str(libs["foo"].parent))
    out = tmp_path / "out"
    assert main(["repair", str(raw), "-w", str(out)]) == 0
    assert "auditwheel repair grafted libfoo.so.1" in capsys.readouterr().err
    (wheel,) = out.glob("*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        assert len([n for n in names if n.startswith("barfoo.libs/libfoo")]) == 1
        assert not [n for n in names if "libbar" in n or "libcuda" in n or "libgomp" in n]
        (tmp_path / "repaired.so").write_bytes(zf.read("barfoo/lib/_ext.so"))
        (tmp_path / "user.so").write_bytes(zf.read("barfoo/_user.so"))
    info = read_elf(tmp_path / "repaired.so")
    assert info.runpath == (OUTSIDE, "$ORIGIN/../../nativelib.prefix/lib")
    assert {"libbar.so", "libcuda.so.1"} <= set(info.needed)
    user = read_elf(tmp_path / "user.so")  # auditwheel sets DT_RPATH
    assert user.rpath == ("$ORIGIN/../barfoo.libs",) and user.needed[0].startswith("libfoo-")

    code, report = _check_json(capsys, wheel)
    assert (code, report["problems"]) == (0, [])

    monkeypatch.delenv("LD_LIBRARY_PATH")
    value, loaded = _run_installed(tmp_path, wheel, "barfoo/lib/_ext.so", libs).split(" ", 1)
    assert int(value) == 40 + 3 * 1
    assert "otherdist/lib/libbar.so" in loaded


def test_entries_into_the_wheels_own_folders_or_the_prefix_do_not_hide_an_external(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stale ``$ORIGIN/../lib`` into a folder of the wheel's own package that it does not
    ship, and the runtime wheels' ``nativelib.prefix/lib``: no other distribution installs
    there, so libfoo, which the objects NEED through them, is still external."""
    libs = _libraries(tmp_path)
    src = "int foo_scale(int);\nint user_value(void) { return foo_scale(14); }\n"
    flags = [f"-L{libs['foo'].parent}", "-l:libfoo.so.1", "-Wl,--enable-new-dtags"]
    stale = _so(tmp_path / "b/stale.so", src, "stale.so", *flags, "-Wl,-rpath,$ORIGIN/../lib")
    prefix = _so(tmp_path / "b/prefix.so", src, "prefix.so", *flags,
                 "-Wl,-rpath,$ORIGIN/../nativelib.prefix/lib")  # fmt: skip
    assert read_elf(stale).runpath == ("$ORIGIN/../lib",)
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    files = {
        "own/sub/stale.so": stale.read_bytes(),
        "own/prefix.so": prefix.read_bytes(),
        "own-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: own\nVersion: 1.0\n",
        "own-1.0.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: nativelib-tests\nRoot-Is-Purelib: false\n"
            f"Tag: {tag}-{tag}-linux_x86_64\n"
        ).encode(),
    }
    raw = write_wheel_members(tmp_path / f"dist/own-1.0-{tag}-{tag}-linux_x86_64.whl", files)
    code, report = _check_json(capsys, raw)
    external = sorted(p["member"] for p in report["problems"] if p["kind"] == "external-library")
    assert code == 1 and external == ["own/prefix.so", "own/sub/stale.so"]
    assert report["other_distributions"] == [] and report["host_drivers"] == []


CUDART_EXT = r"""
#include <omp.h>
int cudaRuntimeGetVersion(int *version);
int ext_value(void) { int v = 0; cudaRuntimeGetVersion(&v); return v + (omp_get_max_threads() < 1); }
"""
NVIDIA = "$ORIGIN/../nvidia/cuda_runtime/lib"


@pytest.mark.parametrize("declared", [True, False], ids=["requires-upstream", "no-requirement"])
def test_a_runtime_the_wheel_gets_from_its_required_upstream_is_left_to_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], declared: bool
) -> None:
    """torch's libtorch_cuda.so NEEDs libcudart, reaches NVIDIA's wheel folder through its
    RUNPATH and declares ``Requires-Dist: nvidia-cuda-runtime``: nativelib-cudart would be
    a second copy it never loads, so only libgomp is linked. Without that Requires-Dist,
    nothing else provides libcudart: the runtime wheel is required as before."""
    # A stand-in for NVIDIA's libcudart.so.12 (the real one is 700 kB from PyPI; only its
    # soname and the RUNPATH layout matter to the rule), where the nvidia wheel puts it.
    stub = _so(tmp_path / "site/nvidia/cuda_runtime/lib/libcudart.so.12",
               "int cudaRuntimeGetVersion(int *v) { *v = 12090; return 0; }\n", "libcudart.so.12")  # fmt: skip
    ext = _so(tmp_path / "build/_ext.so", CUDART_EXT, "_ext.so", "-fopenmp", f"-L{stub.parent}",
              "-l:libcudart.so.12", f"-Wl,-rpath,{NVIDIA}", "-Wl,--enable-new-dtags")  # fmt: skip
    assert {"libcudart.so.12", "libgomp.so.1"} <= set(read_elf(ext).needed)
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    requires = (
        'Requires-Dist: nvidia-cuda-runtime-cu12==12.9.79; platform_system == "Linux"\n'
        if declared
        else ""
    )
    raw = write_wheel_members(
        tmp_path / f"dist/cudaext-1.0-{tag}-{tag}-linux_x86_64.whl",
        {
            "cudaext/__init__.py": b"",
            "cudaext/_ext.so": ext.read_bytes(),
            "cudaext-1.0.dist-info/METADATA": (
                f"Metadata-Version: 2.1\nName: cudaext\nVersion: 1.0\n{requires}"
            ).encode(),
            "cudaext-1.0.dist-info/WHEEL": (
                "Wheel-Version: 1.0\nGenerator: nativelib-tests\nRoot-Is-Purelib: false\n"
                f"Tag: {tag}-{tag}-linux_x86_64\n"
            ).encode(),
        },
    )
    assert main(["repair", str(raw), "--plan", "-w", str(tmp_path / "plan")]) == 0
    plan = capsys.readouterr().out
    out = tmp_path / "out"
    assert main(["repair", str(raw), "-w", str(out)]) == 0
    capsys.readouterr()
    (wheel,) = out.glob("*.whl")
    with zipfile.ZipFile(wheel) as zf:
        metadata = zf.read("cudaext-1.0.dist-info/METADATA").decode()
        (tmp_path / "repaired.so").write_bytes(zf.read("cudaext/_ext.so"))
    runtimes = sorted(
        line.split(":", 1)[1].split(">=")[0].strip()
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist: nativelib-")
    )
    info = read_elf(tmp_path / "repaired.so")
    assert info.runpath == (NVIDIA, "$ORIGIN/../nativelib.prefix/lib")
    code, report = _check_json(capsys, wheel)
    assert (code, report["problems"]) == (0, []), report
    if declared:
        assert "provided by nvidia-cuda-runtime-cu12 (Requires-Dist" in plan, plan
        assert runtimes == ["nativelib-gomp"]
        assert report["other_distributions"] == ["libcudart.so.12"]
        # Installed next to the nvidia folder, the extension runs on NVIDIA's copy.
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(tmp_path / "site")
        probe = "import ctypes, sys; print(ctypes.CDLL(sys.argv[1]).ext_value())"
        done = subprocess.run(
            [sys.executable, "-c", probe, str(tmp_path / "site/cudaext/_ext.so")],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert (done.returncode, done.stdout.strip()) == (0, "12090"), done.stderr
    else:
        assert "provided by" not in plan
        assert runtimes == ["nativelib-cudart-cu12", "nativelib-gomp"]
        assert report["other_distributions"] == []
