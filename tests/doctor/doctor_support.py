"""Shared support of the doctor tests: running the real command, small real ELF files
compiled here (with version scripts where a version node matters), and a runtime wheel of
the host's libgfortran."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from nativelib.cli import main
from nativelib_testing import SRC, Env, host_library, make_deb, write_wheel_members

SCHEMA = json.loads(
    resources.files("nativelib").joinpath("data/schemas/doctor.schema.json").read_text("utf-8")
)
EXT_SUFFIX = sysconfig.get_config_var("EXT_SUFFIX")


@dataclass
class Result:
    code: int
    doc: dict[str, Any]
    stderr: str

    def findings(self, code: str) -> list[dict[str, Any]]:
        return [f for f in self.doc["findings"] if f["code"] == code]

    def one(self, code: str, containing: str = "") -> dict[str, Any]:
        """The single finding with this code whose message or files mention ``containing``."""
        found = [
            f
            for f in self.findings(code)
            if containing in f["message"] or any(containing in p for p in f["files"])
        ]
        assert len(found) == 1, (code, containing, self.doc["findings"])
        return found[0]

    @property
    def codes(self) -> set[str]:
        return {f["code"] for f in self.doc["findings"]}


def run_doctor(
    env: Env | None,
    *args: str,
    extra_env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 300,
    wrapper: tuple[str, ...] = (),
) -> Result:
    """``python -m nativelib doctor --json ARGS`` in ``env`` (or this Python), its JSON
    validated against the committed schema, and never a traceback. ``wrapper`` runs it
    under another command (setpriv)."""
    if env is None:
        python = sys.executable
        base = {k: v for k, v in os.environ.items() if not k.startswith("NATIVELIB")}
        environ = {**base, "PYTHONPATH": str(SRC)}
    else:
        python, environ = env.python, dict(env.env)
    proc = subprocess.run(
        [*wrapper, python, "-m", "nativelib", "doctor", "--json", *args],
        capture_output=True, text=True, env={**environ, **(extra_env or {})},
        cwd=cwd or (env.root if env else None), timeout=timeout,
    )  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode in (0, 1), (proc.returncode, proc.stderr)
    doc = json.loads(proc.stdout)
    jsonschema.validate(doc, SCHEMA)
    return Result(proc.returncode, doc, proc.stderr)


def gcc(out: Path, source: str, *flags: str, lang: str = "c") -> Path:
    """A shared object compiled from ``source`` (flags may name a version script)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    src = out.parent / f"{out.name}.src.{lang}"
    src.write_text(source)
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-O1", "-o", str(out), str(src), *flags],
        check=True, capture_output=True,
    )  # fmt: skip
    return out


def versioned_library(out: Path, soname: str, script: str, source: str) -> Path:
    """A library with this soname whose symbols are bound to the nodes of ``script``."""
    vmap = out.parent / f"{out.name}.map"
    out.parent.mkdir(parents=True, exist_ok=True)
    vmap.write_text(script)
    return gcc(out, source, f"-Wl,-soname,{soname}", f"-Wl,--version-script={vmap}")


def python_module(out_dir: Path, name: str, body: str, *flags: str) -> Path:
    """A real extension module ``name`` (C) whose init runs ``body``."""
    include = sysconfig.get_paths()["include"]
    source = (
        "#include <Python.h>\n"
        f"{body}\n"
        f'static struct PyModuleDef module = {{PyModuleDef_HEAD_INIT, "{name}", NULL, -1, NULL}};\n'
        f"PyMODINIT_FUNC PyInit_{name}(void) {{ touch(); return PyModule_Create(&module); }}\n"
    )
    return gcc(out_dir / f"{name}{EXT_SUFFIX}", source, f"-I{include}", *flags)


#: An Intel OpenMP stand-in: soname libiomp5.so, its symbols on the node OMP_1.0.
IOMP_MAP = "VERSION { local: *; };\nOMP_1.0 { global: omp_get_max_threads; };\n"
IOMP_SRC = "int omp_get_max_threads(void) { return 1; }\n"

#: A C++ runtime stand-in whose only job is to be linked against: it defines the node
#: GLIBCXX_3.4.32 (GCC 13.2), which Debian 12's libstdc++ (GCC 12.2) lacks.
STUB_LIBSTDCXX_MAP = """\
GLIBCXX_3.4 { global: nl_old_thing; local: *; };
GLIBCXX_3.4.32 { global: nl_new_thing; } GLIBCXX_3.4;
"""
STUB_LIBSTDCXX_SRC = "int nl_old_thing(void) { return 1; }\nint nl_new_thing(void) { return 2; }\n"


def needs_glibcxx_3_4_32(build: Path, out_dir: Path, name: str = "_needy") -> Path:
    """An extension module that needs GLIBCXX_3.4.32 from libstdc++.so.6 (linked against
    a stub made with a version script, then left without it)."""
    stub = versioned_library(
        build / "stub" / "libstdc++.so.6", "libstdc++.so.6", STUB_LIBSTDCXX_MAP, STUB_LIBSTDCXX_SRC
    )
    return python_module(
        out_dir,
        name,
        "int nl_new_thing(void);\nstatic void touch(void) { nl_new_thing(); }",
        f"-L{stub.parent}",
        "-l:libstdc++.so.6",
    )


def host_gfortran_wheel(dest: Path) -> Path:
    """nativelib-gfortran5 built by ``nativelib build`` from debs of this host's
    libgfortran and libquadmath (offline); skips the caller when the host has neither."""
    reals = {soname: host_library(soname) for soname in ("libgfortran.so.5", "libquadmath.so.0")}
    debs = dest / "debs"
    debs.mkdir(parents=True)
    copyright_file = debs / "copyright"
    copyright_file.write_text("GCC RUNTIME LIBRARY EXCEPTION, test copy\n")
    lib = "usr/lib/x86_64-linux-gnu"
    packages = []
    for package, soname in (
        ("libgfortran5", "libgfortran.so.5"),
        ("libquadmath0", "libquadmath.so.0"),
    ):
        real = reals[soname]
        packages.append(
            make_deb(debs, package, "12.2.0-14", {
                f"{lib}/{real.name}": real,
                f"{lib}/{soname}": real.name,
                f"usr/share/doc/{package}/copyright": copyright_file,
            })
        )  # fmt: skip
    out = dest / "wheelhouse"
    argv = ["build", "gfortran5", "-o", str(out)]
    for deb in packages:
        argv += ["--from", f"deb:{deb}"]
    assert main(argv) == 0
    (wheel,) = out.glob("nativelib_gfortran5-*.whl")
    return wheel


def plain_wheel(dest: Path, name: str, version: str, files: dict[str, bytes]) -> Path:
    """A real wheel (purelib, any platform) holding ``files``, with a correct RECORD."""
    dist_info = f"{name}-{version}.dist-info"
    members = {
        **files,
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: doctor-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    return write_wheel_members(dest / f"{name}-{version}-py3-none-any.whl", members)


def stub_cudart_wheel(dest: Path) -> Path:
    """nativelib-cudart-cu12 12.9.79 built by ``nativelib build`` from a deb holding a
    stand-in libcudart.so.12 compiled here (soname libcudart.so.12, its symbols on the
    node of the same name, as NVIDIA's are): a CUDA runtime cannot exist on this machine."""
    stub = versioned_library(
        dest / "stub" / "libcudart.so.12.9.79", "libcudart.so.12",
        "libcudart.so.12 { global: cudaGetDeviceCount; local: *; };\n",
        "int cudaGetDeviceCount(int *n) { *n = 0; return 100; }\n",
    )  # fmt: skip
    notice = dest / "copyright"
    notice.write_text("test stand-in\n")
    lib = "usr/lib/x86_64-linux-gnu"
    deb = make_deb(dest, "cuda-cudart-12-9", "12.9.79-1", {
        f"{lib}/libcudart.so.12.9.79": stub,
        f"{lib}/libcudart.so.12": "libcudart.so.12.9.79",
        "usr/share/doc/cuda-cudart-12-9/copyright": notice,
    })  # fmt: skip
    out = dest / "wheelhouse"
    assert main(["build", "cudart-cu12", "-o", str(out), "--from", f"deb:{deb}"]) == 0
    (wheel,) = out.glob("nativelib_cudart_cu12-12.9.79-*.whl")
    return wheel
