"""nativelib.load: real environments, real runtime wheels, real compiled extensions.

The runtime wheels here are built by ``nativelib build`` from debs holding this host's own
GCC runtime libraries (offline); the network tests use the real Debian and PyPI ones.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nativelib.elf import read_elf
from nativelib_testing import SRC, Env, compile_extension, host_runtime_wheels

pytestmark = pytest.mark.skipif(
    shutil.which("dpkg-deb") is None or shutil.which("g++") is None,
    reason="needs dpkg-deb and g++ to build runtime wheels and extensions",
)

EXT = r"""
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <omp.h>
#include <stdexcept>
#include <string>

static PyObject *compute(PyObject *, PyObject *args) {
    long n;
    if (!PyArg_ParseTuple(args, "l", &n)) return NULL;
    std::string label = "sum of squares";
    long long total = 0;
#pragma omp parallel for reduction(+ : total)
    for (long i = 1; i <= n; ++i) total += (long long)i * i;
    try {
        throw std::runtime_error(label);  // an exception crossing into libstdc++
    } catch (const std::exception &e) {
        label = std::string(e.what()) + "!";
    }
    return Py_BuildValue("(sLi)", label.c_str(), total, omp_get_max_threads());
}

static PyMethodDef methods[] = {{"compute", compute, METH_VARARGS, ""}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ext", NULL, -1, methods};
PyMODINIT_FUNC PyInit__ext(void) { return PyModule_Create(&module); }
"""

# Needs GLIBCXX_3.4.30 (GCC 12's condition_variable::wait), never called.
EXT_CV = r"""
#include <Python.h>
#include <condition_variable>
#include <mutex>

void never_called(std::condition_variable &cv, std::unique_lock<std::mutex> &lock) { cv.wait(lock); }
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_cv", NULL, -1, NULL};
PyMODINIT_FUNC PyInit__cv(void) { return PyModule_Create(&module); }
"""

PROBE = textwrap.dedent(
    """
    import json, sys
    import nativelib
    results = nativelib.load("cxx14", "gomp")
    sys.path.insert(0, sys.argv[1])
    import _ext
    label, total, threads = _ext.compute(1000)
    maps = {p[5].strip() for p in (l.split(None, 5) for l in open("/proc/self/maps")) if len(p) == 6}
    libs = sorted(p for p in maps if "/libstdc++" in p or "/libgomp" in p)
    print(json.dumps({"results": [[r.soname, r.path, r.how] for r in results],
                      "label": label, "total": total, "threads": threads, "libs": libs}))
    """
)


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return host_runtime_wheels(tmp_path_factory.mktemp("runtime-wheels"))


@pytest.fixture(scope="module")
def ext_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("ext")
    ext = compile_extension(d, "_ext", EXT, "-fopenmp")
    info = read_elf(ext)
    assert {"libstdc++.so.6", "libgomp.so.1"} <= set(info.needed)
    assert not info.rpath and not info.runpath
    cv = compile_extension(d, "_cv", EXT_CV)
    assert "GLIBCXX_3.4.30" in read_elf(cv).version_needs["libstdc++.so.6"]
    return d


def _probe(env: Env, ext_dir: Path, **extra_env: str) -> dict[str, object]:
    proc = env.run(PROBE, str(ext_dir), extra_env=extra_env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


@pytest.mark.parametrize("layout", ["venv", "user", "target", "prefix"])
def test_layouts_load_from_their_prefix(
    layout: str, wheels: list[Path], ext_dir: Path, tmp_path: Path
) -> None:
    env = Env(tmp_path / layout, layout)
    env.install(*wheels)
    out = _probe(env, ext_dir)
    prefix_lib = str(env.site / "nativelib.prefix/lib")
    assert out["label"] == "sum of squares!" and out["total"] == 1000 * 1001 * 2001 // 6
    # Exactly one libstdc++ and one libgomp, both the wheel's (the host's copies are the
    # same files: "newest" keeps the wheel's unless the host's is strictly newer).
    assert out["libs"] == [f"{prefix_lib}/libgomp.so.1", f"{prefix_lib}/libstdc++.so.6"]
    hows = {soname: how for soname, _path, how in out["results"]}  # type: ignore[attr-defined]
    assert hows["libstdc++.so.6"] == "loaded" and hows["libgomp.so.1"] == "loaded"
    assert [r[0] for r in out["results"]][:2] == ["libgcc_s.so.1", "libstdc++.so.6"]  # type: ignore[index]


def test_prefer_system_takes_the_host_copy(
    wheels: list[Path], ext_dir: Path, tmp_path: Path
) -> None:
    env = Env(tmp_path / "venv", "venv")
    env.install(*wheels)
    out = _probe(env, ext_dir, NATIVELIB_PREFER="system")
    assert all(p.startswith("/usr/lib/") for p in out["libs"])  # type: ignore[attr-defined]
    assert len(out["libs"]) == 2  # type: ignore[arg-type]
    assert {how for _s, _p, how in out["results"]} == {"host"}  # type: ignore[attr-defined]
    bad = env.run(
        "import nativelib; nativelib.load('gomp')", extra_env={"NATIVELIB_PREFER": "sometimes"}
    )
    assert bad.returncode != 0 and "NATIVELIB_PREFER='sometimes' is not one of" in bad.stderr


def test_disable_and_not_installed(wheels: list[Path], tmp_path: Path) -> None:
    env = Env(tmp_path / "venv", "venv")
    env.install(*wheels)
    off = env.run(
        "import nativelib; print(nativelib.load('cxx14'))", extra_env={"NATIVELIB_DISABLE": "1"}
    )
    assert off.returncode == 0 and off.stdout.strip() == "[]"
    missing = env.run("import nativelib; nativelib.load('cudart-cu12')")
    assert missing.returncode != 0
    assert (
        "nativelib-cudart-cu12: not installed" in missing.stderr
        and "pip install nativelib-cudart-cu12" in missing.stderr
    )


def test_reuse_of_an_equal_copy_and_load_for(
    wheels: list[Path], ext_dir: Path, tmp_path: Path
) -> None:
    """The host's libstdc++ (Debian 12's, GCC 12.2) already loaded: it covers what the
    extension needs (GLIBCXX_3.4.30), so it is reused, and no second copy appears."""
    env = Env(tmp_path / "venv", "venv")
    env.install(*wheels)
    code = textwrap.dedent(
        """
        import ctypes, json, sys, nativelib
        ctypes.CDLL("/usr/lib/x86_64-linux-gnu/libstdc++.so.6")
        results = nativelib.load_for(sys.argv[1])
        maps = {p[5].strip() for p in (l.split(None, 5) for l in open("/proc/self/maps")) if len(p) == 6}
        print(json.dumps({"results": [[r.soname, r.path, r.how] for r in results],
                          "libs": sorted(p for p in maps if "/libstdc++" in p)}))
        """
    )
    proc = env.run(code, str(next(ext_dir.glob("_cv*.so"))))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert ["libstdc++.so.6", "/usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30", "reused"] in out[
        "results"
    ]
    assert out["libs"] == ["/usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30"]


FAKE = r"""
#include <stdio.h>
#include <stdlib.h>
__attribute__((constructor)) static void hijack(void) {
    const char *marker = getenv("HIJACK_MARKER");
    FILE *f = marker ? fopen(marker, "w") : NULL;
    if (f) { fputs("hijacked\n", f); fclose(f); }
}
int fake_symbol(void) { return 42; }
"""


def test_hijack_attempts_never_load(wheels: list[Path], ext_dir: Path, tmp_path: Path) -> None:
    env = Env(tmp_path / "venv", "venv")
    env.install(*wheels)
    fake_src = tmp_path / "fake.c"
    fake_src.write_text(FAKE)
    cwd, ld_dir, writable = tmp_path / "cwd", tmp_path / "ld", tmp_path / "writable"
    for d in (cwd, ld_dir):
        d.mkdir()
        subprocess.run(
            [
                "gcc",
                "-shared",
                "-fPIC",
                "-Wl,-soname,libstdc++.so.6",
                "-o",
                str(d / "libstdc++.so.6"),
                str(fake_src),
            ],
            check=True,
        )
    # A world-writable directory on sys.path holding a complete-looking prefix, first.
    prefix = writable / "nativelib.prefix"
    shutil.copytree(env.site / "nativelib.prefix", prefix)
    shutil.copyfile(ld_dir / "libstdc++.so.6", prefix / "lib/libstdc++.so.6")
    for p in [writable, *writable.rglob("*")]:
        if p.is_dir():
            p.chmod(0o777)
    marker = tmp_path / "HIJACKED"
    code = textwrap.dedent(
        """
        import sys, warnings
        sys.path.insert(0, "")
        sys.path.insert(0, sys.argv[1])
        import nativelib
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            results = nativelib.load("cxx14", "gomp")
        sys.path.insert(0, sys.argv[2])
        import _ext
        assert _ext.compute(10)[1] == 385
        print([str(w.message) for w in caught])
        print([r.path for r in results])
        """
    )
    proc = env.run(
        code, str(writable), str(ext_dir), cwd=cwd,
        extra_env={"LD_LIBRARY_PATH": str(ld_dir), "HIJACK_MARKER": str(marker)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert not marker.exists(), "a fake libstdc++ was loaded"
    assert "writable by group or others" in proc.stdout  # the unsafe prefix was skipped, loudly
    assert str(env.site) in proc.stdout.splitlines()[1]


def test_threads_load_each_library_once(wheels: list[Path], tmp_path: Path) -> None:
    env = Env(tmp_path / "venv", "venv")
    env.install(*wheels)
    code = textwrap.dedent(
        """
        import json, threading, nativelib
        from nativelib import loader
        barrier = threading.Barrier(16)
        results = []
        def worker():
            barrier.wait()
            results.append(tuple((r.soname, r.path, r.how) for r in nativelib.load("cxx14", "gomp")))
        threads = [threading.Thread(target=worker) for _ in range(16)]
        for t in threads: t.start()
        for t in threads: t.join()
        maps = {p[5].strip() for p in (l.split(None, 5) for l in open("/proc/self/maps")) if len(p) == 6}
        print(json.dumps({"distinct": len(set(results)), "count": len(results), "handles": len(loader._handles),
                          "libs": sorted(p for p in maps if "/libstdc++" in p or "/libgomp" in p or "/libgcc_s" in p)}))
        """
    )
    proc = env.run(code)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["count"] == 16 and out["distinct"] == 1
    assert out["handles"] == 4  # libgcc_s, libstdc++, libatomic, libgomp: each dlopened once
    assert len(out["libs"]) == 3


def test_import_nativelib_is_light() -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import nativelib"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(SRC)},
    )  # fmt: skip
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    for heavy in ("packaging", "resolvelib", "importlib.metadata", "ctypes", "typing", "json"):
        assert heavy not in imported, f"import nativelib imports {heavy}"
    assert "nativelib.errors" not in imported  # imported on first use (PEP 562)


def test_a_load_imports_ctypes_and_errors_only_when_needed(
    wheels: list[Path], tmp_path: Path
) -> None:
    """A load that succeeds dlopens through _ctypes and raises nothing: neither ctypes nor
    nativelib.errors is imported. One that is refused (the index a FIFO: files, _index
    and the loader each reach the error classes on first use) raises the right error."""
    env = Env(tmp_path / "venv", "venv")
    env.install(*wheels)
    code = textwrap.dedent(
        """
        import json, sys, warnings
        import nativelib
        results = nativelib.load("cxx14", "gomp", path=[sys.argv[1]])
        out = {"how": sorted({r.how for r in results}),
               "imported": [m for m in ("ctypes", "nativelib.errors") if m in sys.modules]}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                nativelib.load("gomp", path=[sys.argv[2]])
            except nativelib.NativeLibError as e:
                out["error"] = [type(e).__name__, e.message, e.hint]
        out["warnings"] = [str(w.message) for w in caught]
        print(json.dumps(out))
        """
    )
    site, prefix = _site_copy(env, tmp_path / "fifo")
    index = prefix / "share/nativelib/runtimes/nativelib-gomp.load"
    index.unlink()
    os.mkfifo(index)
    proc = env.run(code, str(env.site), str(site))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["how"] == ["loaded"] and out["imported"] == []
    kind, message, hint = out["error"]
    assert kind == "ManifestError" and str(index) in message
    assert "not a regular file: it is a FIFO" in message and "refuses this index" in message
    assert hint == "pip install --force-reinstall --no-deps nativelib-gomp"
    assert any("not a regular file: it is a FIFO" in w for w in out["warnings"])


def test_second_openmp_family_is_warned_about(wheels: list[Path], tmp_path: Path) -> None:
    env = Env(tmp_path / "venv", "venv")
    env.install(*wheels)
    fake = tmp_path / "libiomp5.so"
    src = tmp_path / "iomp.c"
    src.write_text("int __kmpc_fake(void) { return 0; }\n")
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-Wl,-soname,libiomp5.so", "-o", str(fake), str(src)],
        check=True,
    )
    code = textwrap.dedent(
        """
        import ctypes, sys, warnings, nativelib
        ctypes.CDLL(sys.argv[1])   # Intel's OpenMP already in the process
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            nativelib.load("gomp")
        print("\\n".join(str(w.message) for w in caught if w.category is RuntimeWarning))
        """
    )
    proc = env.run(code, str(fake))
    assert proc.returncode == 0, proc.stderr
    assert "more than one OpenMP runtime" in proc.stdout
    assert (
        str(fake) in proc.stdout
        and str(env.site / "nativelib.prefix/lib/libgomp.so.1") in proc.stdout
    )
    # Without a second family: no warning.
    quiet = env.run(code.replace("ctypes.CDLL(sys.argv[1])", "pass"), str(fake))
    assert quiet.returncode == 0 and quiet.stdout.strip() == ""


# ----------------------------------------------------------------------------- escapes
# A runtime must never make nativelib.load() dlopen a file outside its prefix's own lib/
# (the evil library's constructor writes the marker: it must never appear).

TRY_LOAD = textwrap.dedent(
    """
    import json, os, shutil, sys, warnings
    import nativelib
    from nativelib import loader
    site, marker = sys.argv[1], sys.argv[2]
    out = {}
    def attempt(key, *runtimes):
        try:
            out[key] = [[r.soname, r.path, r.how] for r in nativelib.load(*runtimes, path=[site])]
        except nativelib.NativeLibError as e:
            out[key] = {"error": type(e).__name__, "message": e.message, "hint": e.hint}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in json.loads(sys.argv[3]):
            if step[0] == "load":
                attempt(*step[1:])
            elif step[0] == "chmod":
                os.chmod(step[1], int(step[2], 8))
            elif step[0] == "replace":
                os.unlink(step[1])
                shutil.copyfile(step[2], step[1])
            elif step[0] == "open":
                try:
                    loader._open_library(step[1], step[2])
                    out["open"] = None
                except nativelib.NativeLibError as e:
                    out["open"] = e.message
            elif step[0] == "loaded_path":
                out["loaded_path"] = loader.loaded_path(step[1])
    out["warnings"] = [str(w.message) for w in caught]
    out["marker"] = os.path.exists(marker)
    print(json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def escape_env(wheels: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Env:
    env = Env(tmp_path_factory.mktemp("escape") / "venv", "venv")
    env.install(*wheels)
    return env


def _evil(where: Path) -> Path:
    """A library whose constructor writes $HIJACK_MARKER (soname libgomp.so.1)."""
    where.parent.mkdir(parents=True, exist_ok=True)
    src = where.parent / "evil.c"
    src.write_text(FAKE)
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-Wl,-soname,libgomp.so.1", "-o", str(where), str(src)],
        check=True,
    )
    return where


def _site_copy(env: Env, tmp_path: Path) -> tuple[Path, Path]:
    """A site directory holding a copy of the environment's prefix: (site, prefix)."""
    site = tmp_path / "site"
    site.mkdir(parents=True)
    shutil.copytree(env.site / "nativelib.prefix", site / "nativelib.prefix", symlinks=True)
    return site, site / "nativelib.prefix"


def _rename_soname(prefix: Path, old: str, new: str) -> None:
    """Make the manifest and the loader's index of the runtime shipping ``old`` name
    ``new`` instead (consistently, as a hostile wheel would)."""
    runtimes = prefix / "share/nativelib/runtimes"
    for index in runtimes.glob("*.load"):
        text = index.read_text()
        if f"library\t{old}\t" in text:
            index.write_text(text.replace(f"library\t{old}\t", f"library\t{new}\t"))
            manifest = index.with_suffix(".json")
            manifest.write_text(
                manifest.read_text()
                .replace(f"lib/{old}", f"lib/{new}")
                .replace(f'"{old}"', f'"{new}"')
            )
            return
    raise AssertionError(f"no runtime ships {old}")


def _try(env: Env, site: Path, marker: Path, *steps: list[str]) -> dict[str, object]:
    proc = env.run(
        TRY_LOAD, str(site), str(marker), json.dumps(steps),
        extra_env={"HIJACK_MARKER": str(marker)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert not marker.exists(), "the evil library was loaded"
    out: dict[str, object] = json.loads(proc.stdout)
    assert out["marker"] is False
    return out


def _refused(out: dict[str, object], key: str, *words: str) -> str:
    """The error load() raised: a NativeLibError naming the reason, never a pip install
    hint for a runtime that is installed but refused."""
    error = out[key]
    assert isinstance(error, dict), error
    assert all(w in error["message"] for w in words), error
    assert "pip install nativelib-gomp" not in (error["hint"] or ""), error
    return str(error["message"])


def test_absolute_and_dotdot_sonames_are_refused(escape_env: Env, tmp_path: Path) -> None:
    marker = tmp_path / "HIJACKED"
    evil = _evil(tmp_path / "evil" / "libgomp.so.1")
    site, prefix = _site_copy(escape_env, tmp_path)
    _rename_soname(prefix, "libgomp.so.1", str(evil))
    out = _try(escape_env, site, marker, ["load", "abs", "gomp"])
    _refused(out, "abs", repr(str(evil)), "is an absolute path", "nativelib-gomp.load")
    assert out["abs"]["error"] == "ManifestError"  # type: ignore[index]
    assert any("skipping" in w and "absolute path" in w for w in out["warnings"])  # type: ignore[attr-defined]

    site2, prefix2 = _site_copy(escape_env, tmp_path / "dotdot")
    _evil(prefix2 / "evil" / "libgomp.so.1")
    _rename_soname(prefix2, "libgomp.so.1", "../evil/libgomp.so.1")
    out = _try(escape_env, site2, marker, ["load", "dotdot", "gomp"])
    _refused(out, "dotdot", "'../evil/libgomp.so.1'", "has a '/'")


def test_soname_in_a_subdirectory_of_lib_is_refused(escape_env: Env, tmp_path: Path) -> None:
    marker = tmp_path / "HIJACKED"
    site, prefix = _site_copy(escape_env, tmp_path)
    sub = prefix / "lib/sub"
    _evil(sub / "libgomp.so.1")
    sub.chmod(0o777)
    _rename_soname(prefix, "libgomp.so.1", "sub/libgomp.so.1")
    out = _try(escape_env, site, marker, ["load", "sub", "gomp"])
    _refused(out, "sub", "'sub/libgomp.so.1'", "has a '/'")


def test_lib_symlinked_elsewhere_is_refused(escape_env: Env, tmp_path: Path) -> None:
    marker = tmp_path / "HIJACKED"
    site, prefix = _site_copy(escape_env, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (prefix / "lib").rename(elsewhere / "lib")
    (elsewhere / "lib/libgomp.so.1").unlink()
    _evil(elsewhere / "lib/libgomp.so.1")
    (prefix / "lib").symlink_to(elsewhere / "lib")
    out = _try(escape_env, site, marker, ["load", "linked", "gomp"])
    message = _refused(out, "linked", "is a symbolic link", "refuses this prefix")
    assert out["linked"]["error"] == "UnsafeRuntimePath"  # type: ignore[index]
    assert str(prefix) in message


def test_library_symlinked_elsewhere_is_refused(escape_env: Env, tmp_path: Path) -> None:
    marker = tmp_path / "HIJACKED"
    site, prefix = _site_copy(escape_env, tmp_path)
    evil = _evil(tmp_path / "evil" / "libgomp.so.1")
    (prefix / "lib/libgomp.so.1").unlink()
    (prefix / "lib/libgomp.so.1").symlink_to(evil)
    out = _try(escape_env, site, marker, ["load", "linked", "gomp"])
    _refused(out, "linked", "libgomp.so.1", "is a symbolic link")


def test_lib_made_writable_after_a_first_load(escape_env: Env, tmp_path: Path) -> None:
    """The prefix check is not cached: a lib/ made 0777 after a first load() in the same
    process refuses the next one (by discovery, and by the fstat of the held lib/)."""
    marker = tmp_path / "HIJACKED"
    site, prefix = _site_copy(escape_env, tmp_path)
    evil = _evil(tmp_path / "evil" / "libgomp.so.1")
    lib = prefix / "lib"
    out = _try(
        escape_env, site, marker,
        ["load", "first", "cxx14"],
        ["loaded_path", "libstdc++.so.6"],
        ["chmod", str(lib), "777"],
        ["replace", str(lib / "libgomp.so.1"), str(evil)],
        ["load", "second", "gomp"],
        ["open", str(prefix), "libgomp.so.1"],
    )  # fmt: skip
    first = out["first"]
    assert isinstance(first, list) and [r[2] for r in first] == ["loaded"] * len(first)
    assert ["libstdc++.so.6", str(lib / "libstdc++.so.6"), "loaded"] in first
    # dlinfo reports the /proc/self/fd name it was opened by: the real path is reported.
    assert out["loaded_path"] == os.path.realpath(lib / "libstdc++.so.6")
    message = _refused(out, "second", "writable by group or others", "refuses this prefix")
    assert str(prefix) in message
    assert out["second"]["hint"].startswith(f"make {prefix} and its lib/")  # type: ignore[index]
    assert out["open"] == f"{lib}: it is writable by group or others"  # the held lib/ too
