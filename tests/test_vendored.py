"""nativelib.vendored: runtime copies recognised by soname family and version nodes, on
this host's real runtime libraries and on small libraries compiled here."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from nativelib.catalog import load_catalog
from nativelib.elf import read_elf
from nativelib.repair.elfpatch import find_patchelf
from nativelib.vendored import canonical_name, identify
from nativelib_testing import HOST_PACKAGES

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")


def _host(name: str) -> Path:
    out = subprocess.run(
        ["gcc", f"-print-file-name={name}"], capture_output=True, text=True, check=True
    ).stdout.strip()
    path = Path(out)
    if not path.is_absolute() or not path.exists():
        pytest.skip(f"this host has no {name} (Debian package {HOST_PACKAGES[name]})")
    return path.resolve()


def _lib(tmp: Path, soname: str, nodes: list[str]) -> Path:
    """A shared library with this soname defining these version nodes."""
    src = tmp / "x.c"
    src.write_text("".join(f"int f{i}(void) {{ return {i}; }}\n" for i in range(len(nodes) + 1)))
    out = tmp / soname
    args = ["gcc", "-shared", "-fPIC", f"-Wl,-soname,{soname}", "-o", str(out), str(src)]
    if nodes:
        script = tmp / "x.map"
        script.write_text("".join(f"{n} {{ global: f{i}; }};\n" for i, n in enumerate(nodes)))
        args.append(f"-Wl,--version-script={script}")
    subprocess.run(args, check=True, capture_output=True)
    return out


@pytest.mark.parametrize(
    ("name", "soname", "dist"),
    [
        ("libgomp.so.1", "libgomp.so.1", "nativelib-gomp"),
        ("libstdc++.so.6", "libstdc++.so.6", "nativelib-cxx14"),
        ("libgcc_s.so.1", "libgcc_s.so.1", "nativelib-cxx14"),
        ("libatomic.so.1", "libatomic.so.1", "nativelib-cxx14"),
        ("libgfortran.so.5", "libgfortran.so.5", "nativelib-gfortran5"),
        ("libquadmath.so.0", "libquadmath.so.0", "nativelib-gfortran5"),
    ],
)
def test_host_runtime_libraries(name: str, soname: str, dist: str) -> None:
    path = _host(name)
    copy = identify(str(path), read_elf(path), load_catalog())
    assert copy is not None
    assert (copy.soname, copy.distribution, copy.renamed) == (soname, dist, False)


def test_auditwheel_style_rename(tmp_path: Path) -> None:
    binary, _ = find_patchelf()
    renamed = tmp_path / "libstdc++-0a1b2c3d.so.6.0.30"
    shutil.copyfile(_host("libstdc++.so.6"), renamed)
    subprocess.run([binary, "--set-soname", renamed.name, str(renamed)], check=True)
    copy = identify(str(renamed), read_elf(renamed), load_catalog())
    assert copy is not None and copy.renamed
    assert (copy.soname, copy.file_soname) == ("libstdc++.so.6", renamed.name)
    assert canonical_name(renamed.name) == ("libstdc++.so.6.0.30", True)
    assert canonical_name("libgomp.so.1") == ("libgomp.so.1", False)


def test_name_alone_is_not_enough(tmp_path: Path) -> None:
    catalog = load_catalog()
    # A libgomp.so.1 without GNU libgomp's version nodes.
    bare = _lib(tmp_path, "libgomp.so.1", [])
    assert identify(str(bare), read_elf(bare), catalog) is None
    # LLVM's libomp under the file name libgomp.so.1 (conda's _openmp_mutex): its soname
    # is libomp.so, whatever nodes it defines.
    (tmp_path / "o").mkdir()
    omp = _lib(tmp_path / "o", "libomp.so", ["OMP_1.0", "GOMP_1.0"])
    as_gomp = tmp_path / "o" / "libgomp.so.1"
    omp.rename(as_gomp)
    assert identify(str(as_gomp), read_elf(as_gomp), catalog) is None
    # Another soname major of the same family: libgfortran.so.3 is not libgfortran 5.
    (tmp_path / "f").mkdir()
    old = _lib(tmp_path / "f", "libgfortran.so.3", ["GFORTRAN_1.0", "GFORTRAN_8"])
    assert identify(str(old), read_elf(old), catalog) is None


def test_signature_nodes_identify_a_compiled_copy(tmp_path: Path) -> None:
    fake = _lib(tmp_path, "libgomp.so.1", ["OMP_1.0", "GOMP_1.0"])
    copy = identify(str(fake), read_elf(fake), load_catalog())
    assert copy is not None and copy.distribution == "nativelib-gomp"
