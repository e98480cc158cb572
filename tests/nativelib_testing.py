"""Shared test support: real packages, real runtime wheels, real environments.

- ``make_deb``: a .deb made with dpkg-deb.
- ``host_library``: this host's copy of a runtime library, or a skip naming the Debian
  package that brings it (``.ci/run`` installs them all, so nothing skips there).
- ``host_runtime_wheels``: nativelib-cxx14 and nativelib-gomp built by ``nativelib build``
  from debs holding this host's own GCC runtime libraries (offline).
- ``make_venv``: a venv as ``python -m venv`` makes it (ensurepip's pip and setuptools),
  in a fraction of the time: ensurepip runs once per test process.
- ``Env``: a Python environment with pynativelib importable and runtime wheels installed
  with pip in one of the layouts users have: a venv, ``--user``, ``--target``, ``--prefix``.
- ``compile_extension``: a real extension module compiled with g++.
- ``omp_wheel`` and ``auditwheel_repair``: a real OpenMP extension wheel, and the same
  repaired by the real ``auditwheel`` (vendoring libgomp as auditwheel does).
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
HOST_LIBDIR = Path("/usr/lib/x86_64-linux-gnu")


def make_deb(dest: Path, package: str, version: str, files: dict[str, Path | str]) -> Path:
    """A real .deb made with dpkg-deb; a str value is a symlink target."""
    root = dest / f"{package}-root"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN/control").write_text(
        f"Package: {package}\nVersion: {version}\nArchitecture: amd64\n"
        "Maintainer: test <t@example.org>\nDescription: test package\n"
    )
    for name, what in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(what, str):
            target.symlink_to(what)
        else:
            shutil.copyfile(what, target)
    out = dest / f"{package}_{version}_amd64.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zxz", "--build", str(root), str(out)],
        check=True, capture_output=True,
    )  # fmt: skip
    return out


#: The Debian package that brings each host runtime library the fixtures build from.
HOST_PACKAGES = {
    "libstdc++.so.6": "libstdc++6",
    "libgcc_s.so.1": "libgcc-s1",
    "libatomic.so.1": "libatomic1",
    "libgomp.so.1": "libgomp1",
    "libgfortran.so.5": "libgfortran5",
    "libquadmath.so.0": "libquadmath0",
}


def host_library(soname: str) -> Path:
    """The real file of this host's ``soname``; the calling test (or fixture) is skipped,
    naming the Debian package to install, when the host has none."""
    import pytest  # noqa: PLC0415 (test helper: only when a fixture asks)

    path = HOST_LIBDIR / soname
    if not path.exists():
        package = HOST_PACKAGES.get(soname, "?")
        pytest.skip(f"needs the host's {soname} (Debian package {package}) in {HOST_LIBDIR}")
    return Path(os.path.realpath(path))


def _host(soname: str) -> Path:
    return host_library(soname)


def host_runtime_wheels(dest: Path) -> list[Path]:
    """nativelib-cxx14 and nativelib-gomp from this host's libraries, via real debs."""
    from nativelib.cli import main  # noqa: PLC0415 (test helper: import when used)

    debs = dest / "debs"
    debs.mkdir(parents=True)
    copyright_file = debs / "copyright"
    copyright_file.write_text("GCC RUNTIME LIBRARY EXCEPTION, test copy\n")
    lib = "usr/lib/x86_64-linux-gnu"
    cxx = [
        make_deb(debs, "libstdc++6", "12.2.0-14", {
            f"{lib}/{_host('libstdc++.so.6').name}": _host("libstdc++.so.6"),
            f"{lib}/libstdc++.so.6": _host("libstdc++.so.6").name,
            "usr/share/doc/libstdc++6/copyright": copyright_file,
        }),
        make_deb(debs, "libgcc-s1", "12.2.0-14", {f"{lib}/libgcc_s.so.1": _host("libgcc_s.so.1")}),
        make_deb(debs, "libatomic1", "12.2.0-14", {f"{lib}/{_host('libatomic.so.1').name}": _host("libatomic.so.1")}),
    ]  # fmt: skip
    gomp = [
        make_deb(debs, "libgomp1", "12.2.0-14", {
            f"{lib}/{_host('libgomp.so.1').name}": _host("libgomp.so.1"),
            "usr/share/doc/libgomp1/copyright": copyright_file,
        })
    ]  # fmt: skip
    out = dest / "wheelhouse"
    for runtime, packages in (("cxx14", cxx), ("gomp", gomp)):
        argv = ["build", runtime, "-o", str(out)]
        for deb in packages:
            argv += ["--from", f"deb:{deb}"]
        if main(argv) != 0:
            raise RuntimeError(f"building {runtime} from host libraries failed")
    return sorted(out.glob("*.whl"))


_VENV_TEMPLATE: list[Path] = []  # the venv ensurepip ran in, once per process
_PIP_SCRIPTS = ("pip", "pip3", f"pip{sys.version_info.major}.{sys.version_info.minor}")


def _venv_template() -> Path:
    if not _VENV_TEMPLATE:
        top = Path(tempfile.mkdtemp(prefix="nativelib-venv-template-"))
        atexit.register(shutil.rmtree, top, True)
        subprocess.run([sys.executable, "-m", "venv", str(top / "venv")], check=True)
        _VENV_TEMPLATE.append(top / "venv")
    return _VENV_TEMPLATE[0]


def make_venv(path: Path) -> None:
    """A venv at ``path`` with the pip and setuptools that ``python -m venv`` installs:
    ensurepip (~4-9 s a venv here) runs once per test process, into a template venv; each
    venv is made ``--without-pip`` and gets a copy of the template's site-packages (the
    files, dist-infos and RECORDs ensurepip's pip wrote) and of pip's console scripts with
    this venv's interpreter in the shebang (their RECORD rows rehashed, as pip writes
    them). Where pip would write another kind of script (a shebang over 127 bytes or with
    a space: distlib's /bin/sh wrapper), the venv is made by ``python -m venv`` itself."""
    path = Path(os.path.abspath(path))
    template = _venv_template()
    # pip writes "#!<venv>/bin/python3.11" (or python3): the template's line, this venv's
    # directory in it.
    first = (template / "bin" / _PIP_SCRIPTS[0]).read_bytes().split(b"\n", 1)[0].decode()
    assert first.startswith(f"#!{template}/bin/"), f"{template}/bin/pip: {first!r}"
    shebang = f"#!{path}{first[len(f'#!{template}') :]}\n"
    if len(shebang) > 127 or " " in str(path):
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
        return
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    py = f"python{sys.version_info.major}.{sys.version_info.minor}"
    shutil.copytree(template / "lib" / py / "site-packages", path / "lib" / py / "site-packages",
                    symlinks=True, dirs_exist_ok=True)  # fmt: skip
    rows: dict[str, str] = {}
    for name in _PIP_SCRIPTS:
        text = (template / "bin" / name).read_bytes()
        head, _, rest = text.partition(b"\n")
        assert head.decode() == first, f"{template}/bin/{name}: {head!r}"
        new = shebang.encode() + rest
        (path / "bin" / name).write_bytes(new)
        (path / "bin" / name).chmod(0o755)
        digest = base64.urlsafe_b64encode(hashlib.sha256(new).digest()).rstrip(b"=").decode()
        rows[f"../../../bin/{name}"] = f"sha256={digest},{len(new)}"
    (record,) = (path / "lib" / py / "site-packages").glob("pip-*.dist-info/RECORD")
    lines = record.read_bytes().decode().splitlines(keepends=True)  # pip ends them in \r\n
    for i, line in enumerate(lines):
        name = line.rsplit(",", 2)[0]
        if name in rows:
            lines[i] = f"{name},{rows.pop(name)}{line[len(line.rstrip()) :]}"
    assert not rows, f"{record}: no rows for {sorted(rows)}"
    record.write_bytes("".join(lines).encode())


@dataclass
class Env:
    """A Python environment in a layout, with pynativelib importable (from src/)."""

    root: Path
    layout: str  # "venv" | "user" | "target" | "prefix"
    python: str = ""
    env: dict[str, str] = field(default_factory=dict)
    site: Path = Path()

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        base = {
            k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "NATIVELIB", "LD_"))
        }
        py = f"python{sys.version_info.major}.{sys.version_info.minor}"
        if self.layout == "venv":
            make_venv(self.root / "venv")
            self.python = str(self.root / "venv/bin/python")
            self.site = self.root / "venv/lib" / py / "site-packages"
            (self.site / "pynativelib-src.pth").write_text(f"{SRC}\n")
            self.env = base
        else:
            self.python = sys._base_executable  # type: ignore[attr-defined]
            self.env = {**base, "PYTHONPATH": str(SRC), "PYTHONNOUSERSITE": "1"}
            if self.layout == "user":
                self.env["PYTHONUSERBASE"] = str(self.root / "userbase")
                del self.env["PYTHONNOUSERSITE"]
                self.site = self.root / "userbase/lib" / py / "site-packages"
            elif self.layout == "target":
                self.site = self.root / "target"
                self.env["PYTHONPATH"] = f"{self.site}{os.pathsep}{SRC}"
            elif self.layout == "prefix":
                self.site = self.root / "prefix/lib" / py / "site-packages"
                self.env["PYTHONPATH"] = f"{self.site}{os.pathsep}{SRC}"
            else:
                raise ValueError(self.layout)

    def install(self, *wheels: Path) -> None:
        args = [
            self.python,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-index",
            "--no-deps",
            "--disable-pip-version-check",
        ]
        if self.layout == "user":
            args.append("--user")
        elif self.layout == "target":
            args += ["--target", str(self.site)]
        elif self.layout == "prefix":
            args += ["--prefix", str(self.root / "prefix")]
        subprocess.run([*args, *map(str, wheels)], check=True, env=self.env)

    def run(
        self,
        code: str,
        *args: str,
        cwd: Path | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.python, "-c", code, *args], capture_output=True, text=True,
            env={**self.env, **(extra_env or {})}, cwd=cwd or self.root,
        )  # fmt: skip


def compile_extension(dest: Path, name: str, source: str, *flags: str) -> Path:
    """A real CPython extension module ``name`` built with g++ from C++ ``source``."""
    dest.mkdir(parents=True, exist_ok=True)
    src = dest / f"{name}.cpp"
    src.write_text(source)
    out = dest / f"{name}{sysconfig.get_config_var('EXT_SUFFIX')}"
    include = sysconfig.get_paths()["include"]
    subprocess.run(
        ["g++", "-shared", "-fPIC", "-O1", f"-I{include}", "-o", str(out), str(src), *flags],
        check=True, capture_output=True,
    )  # fmt: skip
    return out


OMP_SOURCE = r"""
#include <Python.h>
#include <omp.h>
static PyObject *total(PyObject *self, PyObject *args) {
    long n;
    if (!PyArg_ParseTuple(args, "l", &n)) return NULL;
    long long s = 0;
#pragma omp parallel for reduction(+ : s)
    for (long i = 0; i < n; i++) s += i;
    return Py_BuildValue("Li", s, omp_get_max_threads());
}
static PyMethodDef methods[] = {{"total", total, METH_VARARGS, "sum of range(n), in parallel"},
                                {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_omp", NULL, -1, methods};
PyMODINIT_FUNC PyInit__omp(void) { return PyModule_Create(&module); }
"""


def write_wheel_members(out: Path, members: dict[str, bytes]) -> Path:
    """A zip at ``out`` with ``members`` and a RECORD that lists them all with their
    sha256 and size (the ``.dist-info`` directory is found among the members)."""
    import base64  # noqa: PLC0415
    import hashlib  # noqa: PLC0415
    import zipfile  # noqa: PLC0415

    dist_info = next(n.split("/", 1)[0] for n in members if ".dist-info/" in n)
    record = f"{dist_info}/RECORD"
    rows = []
    for name, data in members.items():
        if name != record:
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            rows.append(f"{name},sha256={digest.decode()},{len(data)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            if name != record:
                zf.writestr(name, data)
        zf.writestr(record, "\n".join([*rows, f"{record},,"]) + "\n")
    return out


def omp_wheel(dest: Path, package: str = "ompdemo", version: str = "1.0") -> Path:
    """A real wheel ``<package>-<version>-cp3X-cp3X-linux_x86_64.whl`` whose extension
    ``<package>._omp`` (``total(n)`` -> ``(sum(range(n)), omp_get_max_threads())``) is
    compiled here with ``gcc -fopenmp``; it NEEDs libgomp.so.1 (not vendored yet)."""

    dest.mkdir(parents=True, exist_ok=True)
    build = dest / f"{package}-build"
    build.mkdir(exist_ok=True)
    src = build / "_omp.c"
    src.write_text(OMP_SOURCE)
    ext_name = f"_omp{sysconfig.get_config_var('EXT_SUFFIX')}"
    ext = build / ext_name
    include = sysconfig.get_paths()["include"]
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-O2", "-fopenmp", f"-I{include}", "-o", str(ext), str(src)],
        check=True, capture_output=True,
    )  # fmt: skip
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    dist_info = f"{package}-{version}.dist-info"
    files = {
        f"{package}/__init__.py": b"from ._omp import total\n",
        f"{package}/{ext_name}": ext.read_bytes(),
        f"{dist_info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n"
        ).encode(),
        f"{dist_info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: nativelib-tests\nRoot-Is-Purelib: false\n"
            f"Tag: {tag}-{tag}-linux_x86_64\n"
        ).encode(),
    }
    return write_wheel_members(dest / f"{package}-{version}-{tag}-{tag}-linux_x86_64.whl", files)


def auditwheel_repair(wheel: Path, dest: Path) -> Path:
    """``auditwheel repair`` (the real one, a test dependency) of ``wheel`` into ``dest``:
    the result vendors libgomp as ``<package>.libs/libgomp-<hash>.so.1.0.0``."""
    bindir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    subprocess.run(
        [str(bindir / "auditwheel"), "repair", "-w", str(dest), str(wheel)],
        check=True, capture_output=True, env=env,
    )  # fmt: skip
    (out,) = (p for p in dest.glob("*.whl") if p.name.split("-")[0] == wheel.name.split("-")[0])
    return out
