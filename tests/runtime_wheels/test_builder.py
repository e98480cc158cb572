"""Building runtime wheels from real packages made by the test (dpkg-deb), end to end."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest

from nativelib.catalog import Catalog, parse_catalog
from nativelib.cli import main
from nativelib.errors import NativeLibError
from nativelib.prefix import parse_manifest
from nativelib.runtime_wheels.builder import BuildError, Input, build, plan_build
from nativelib.wheelfile import validate_wheel
from nativelib_testing import make_deb, make_venv

pytestmark = pytest.mark.skipif(
    shutil.which("dpkg-deb") is None, reason="dpkg-deb is not installed"
)

FOO_C = "int foo_one(void) { return 1; }\nint foo_two(void) { return 2; }\n"
FOO_MAP = "FOO_1.0 { global: foo_one; local: *; };\nFOO_2.0 { global: foo_two; } FOO_1.0;\n"
BAR_C = (
    "#include <math.h>\nint foo_two(void);\ndouble bar(double x) { return sqrt(x) + foo_two(); }\n"
)
QUX_C = "double bar(double);\nint qux(void) { return (int)bar(4.0); }\n"


def _cc(out: Path, source: str, *args: str) -> None:
    src = out.with_suffix(".c")
    src.write_text(source)
    subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-o", str(out), str(src), *args], check=True)


@pytest.fixture(scope="module")
def debs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("debs")
    libs = d / "libs"
    libs.mkdir()
    (libs / "foo.map").write_text(FOO_MAP)
    _cc(
        libs / "libfoo.so.1.2.3",
        FOO_C,
        "-Wl,-soname,libfoo.so.1",
        f"-Wl,--version-script={libs / 'foo.map'}",
    )
    (libs / "libfoo.so.1").symlink_to("libfoo.so.1.2.3")
    _cc(
        libs / "libbar.so.1", BAR_C, "-Wl,-soname,libbar.so.1", f"-L{libs}", "-l:libfoo.so.1", "-lm"
    )
    _cc(
        libs / "libqux.so.1",
        QUX_C,
        "-Wl,-soname,libqux.so.1",
        "-Wl,--unresolved-symbols=ignore-all",
        f"-L{libs}",
        "-l:libbar.so.1",
    )
    (libs / "copyright").write_text("Copyright: the foo authors\nLicense: MIT\n")
    lib = "usr/lib/x86_64-linux-gnu"
    return {
        "foo": make_deb(d, "libfoo1", "1.2.3-4+deb12u1", {
            f"{lib}/libfoo.so.1.2.3": libs / "libfoo.so.1.2.3",
            f"{lib}/libfoo.so.1": "libfoo.so.1.2.3",
            "usr/share/doc/libfoo1/copyright": libs / "copyright",
        }),
        "bar": make_deb(d, "libbar1", "1.2.3-4", {f"{lib}/libbar.so.1": libs / "libbar.so.1"}),
        "qux": make_deb(d, "libqux1", "0.1-1", {f"{lib}/libqux.so.1": libs / "libqux.so.1"}),
        "nolicence": make_deb(d, "libfoo1-nolic", "1.2.3-4", {f"{lib}/libfoo.so.1": libs / "libfoo.so.1.2.3"}),
    }  # fmt: skip


def catalog(sonames: str = '["libfoo.so.1", "libbar.so.1"]', depends: str = "[]") -> Catalog:
    return parse_catalog(
        {
            "foo.toml": f"""
name = "nativelib-foo"
short = "foo"
summary = "The foo runtime"
sonames = {sonames}
depends = {depends}
license-expression = "MIT"
[[sources]]
name = "test"
kind = "deb"
suite = "bookworm"
packages = [{{ name = "libfoo1" }}, {{ name = "libbar1" }}]
version-from = "libfoo1"
license-files = ["usr/share/doc/*/copyright"]
""",
            "qux.toml": """
name = "nativelib-qux"
short = "qux"
summary = "owns libqux"
sonames = ["libqux.so.1"]
[[sources]]
name = "test"
kind = "deb"
suite = "bookworm"
packages = [{ name = "libqux1" }]
""",
        }
    )


def inputs(*paths: Path) -> list[Input]:
    return [Input(p, "deb", p.as_uri(), hashlib.sha256(p.read_bytes()).hexdigest()) for p in paths]


def test_plan_then_build_then_pip_install(debs: dict[str, Path], tmp_path: Path) -> None:
    cat = catalog()
    recipe = cat.get("foo")
    plan = plan_build(
        recipe,
        inputs(debs["foo"], debs["bar"]),
        catalog=cat,
        workdir=tmp_path / "w",
        source=recipe.source(),
    )
    assert plan.version == "1.2.3"  # the upstream version of libfoo1's 1.2.3-4+deb12u1
    assert [lib.soname for lib in plan.libraries] == ["libfoo.so.1", "libbar.so.1"]  # recipe order
    # One real file per soname: the symlink's target, never a second copy.
    foo = next(lib for lib in plan.libraries if lib.soname == "libfoo.so.1")
    assert foo.origin.endswith("!usr/lib/x86_64-linux-gnu/libfoo.so.1.2.3")
    assert foo.info.version_definitions == ("FOO_1.0", "FOO_2.0")
    assert plan.manifest.load_order == ("libfoo.so.1", "libbar.so.1")
    assert plan.wheel.tag.startswith("py3-none-manylinux_2_")
    text = plan.describe()
    assert "libfoo.so.1" in text and plan.wheel.filename in text
    assert not list((tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else True

    wheel = build(plan, tmp_path / "out")
    validate_wheel(wheel)
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        manifest = parse_manifest(
            zf.read("nativelib.prefix/share/nativelib/runtimes/nativelib-foo.json"), "m"
        )
        metadata = zf.read("nativelib_foo-1.2.3.dist-info/METADATA").decode()
    assert sorted(n for n in names if n.startswith("nativelib.prefix/lib/")) == [
        "nativelib.prefix/lib/libbar.so.1", "nativelib.prefix/lib/libfoo.so.1",
        "nativelib.prefix/lib/pkgconfig/nativelib-foo.pc",  # issue 15: for builds against it
    ]  # fmt: skip
    assert manifest.build_files == (
        "lib/pkgconfig/nativelib-foo.pc", "share/cmake/nativelib/nativelib-foo.cmake",
    )  # fmt: skip
    assert "nativelib_pkgconfig/nativelib-foo.pc" in names  # the pkgconf wheel's copy
    assert not [n for n in names if n.startswith("nativelib/")]  # not pynativelib's package
    assert "nativelib_foo-1.2.3.dist-info/licenses/libfoo1/usr/share/doc/libfoo1/copyright" in names
    assert manifest.provenance.packages[0].version == "1.2.3-4+deb12u1"
    assert manifest.provenance.packages[0].sha256 == inputs(debs["foo"])[0].sha256
    assert manifest.library("libfoo.so.1") is not None
    assert "Requires-Dist: pynativelib" in metadata and "License-Expression: MIT" in metadata

    venv = tmp_path / "venv"
    make_venv(venv)
    subprocess.run(
        [str(venv / "bin/pip"), "install", "-q", "--no-index", "--no-deps", str(wheel)], check=True
    )
    site = subprocess.run(
        [str(venv / "bin/python"), "-c", "import sysconfig; print(sysconfig.get_path('platlib'))"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    installed = Path(site) / "nativelib.prefix/lib"
    assert sorted(p.name for p in installed.iterdir() if p.is_file()) == [
        "libbar.so.1",
        "libfoo.so.1",
    ]
    # The installed library loads, and its dependency resolves from the same prefix.
    probe = (
        "import ctypes, sys; d = sys.argv[1]; "
        "ctypes.CDLL(d + '/libfoo.so.1'); bar = ctypes.CDLL(d + '/libbar.so.1'); "
        "bar.bar.restype = ctypes.c_double; bar.bar.argtypes = [ctypes.c_double]; print(bar.bar(16.0))"
    )
    out = subprocess.run(
        [str(venv / "bin/python"), "-c", probe, str(installed)],
        check=True,
        capture_output=True,
        text=True,
    )
    assert out.stdout.strip() == "6.0"


def test_reproducible_across_workdirs_and_umask(debs: dict[str, Path], tmp_path: Path) -> None:
    cat = catalog()
    recipe = cat.get("foo")
    digests = []
    for i, mask in enumerate((0o022, 0o077)):
        old = os.umask(mask)
        try:
            plan = plan_build(
                recipe,
                inputs(debs["foo"], debs["bar"]),
                catalog=cat,
                workdir=tmp_path / f"w{i}",
                source=recipe.source(),
            )
            wheel = build(plan, tmp_path / f"out{i}")
        finally:
            os.umask(old)
        digests.append(hashlib.sha256(wheel.read_bytes()).hexdigest())
    assert digests[0] == digests[1]


def test_missing_soname(debs: dict[str, Path], tmp_path: Path) -> None:
    cat = catalog(sonames='["libfoo.so.1", "libbaz.so.1"]')
    with pytest.raises(
        BuildError,
        match=r"no library with soname 'libbaz\.so\.1' in libfoo1_.*\(shared objects found: libfoo\.so\.1\)",
    ):
        plan_build(
            cat.get("foo"),
            inputs(debs["foo"]),
            catalog=cat,
            workdir=tmp_path / "w",
            source=cat.get("foo").source(),
        )


def test_needed_must_come_from_host_or_dependency(debs: dict[str, Path], tmp_path: Path) -> None:
    # libbar NEEDs libfoo: owned by this recipe, fine. libqux NEEDs libbar, which
    # nativelib-foo owns, without declaring it.
    cat = catalog()
    qux = cat.get("qux")
    with pytest.raises(
        BuildError,
        match=r"libqux\.so\.1 NEEDs libbar\.so\.1, which nativelib-foo owns: declare it in 'depends'",
    ):
        plan_build(
            qux, inputs(debs["qux"]), catalog=cat, workdir=tmp_path / "w", source=qux.source()
        )
    # libbar on its own NEEDs libfoo.so.1, which nothing provides when the recipe only owns libbar.
    only_bar = parse_catalog(
        {
            "b.toml": 'name = "nativelib-bar"\nshort = "bar"\nsummary = "s"\nsonames = ["libbar.so.1"]\n[[sources]]\nname = "t"\nkind = "deb"\nsuite = "x"\npackages = [{ name = "libbar1" }]\nlicense-files = ["*"]\n'
        }
    )
    with pytest.raises(
        BuildError, match=r"libbar\.so\.1 NEEDs libfoo\.so\.1, which neither the host provides"
    ):
        plan_build(
            only_bar.get("bar"),
            inputs(debs["bar"], debs["foo"]),
            catalog=only_bar,
            workdir=tmp_path / "w2",
            source=only_bar.get("bar").source(),
        )


def test_no_licence_is_an_error(debs: dict[str, Path], tmp_path: Path) -> None:
    cat = catalog(sonames='["libfoo.so.1"]')
    with pytest.raises(BuildError, match="no licence file matched"):
        plan_build(
            cat.get("foo"),
            inputs(debs["nolicence"]),
            catalog=cat,
            workdir=tmp_path / "w",
            source=cat.get("foo").source(),
        )


def test_cli_build_from_local_debs(
    debs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The shipped catalog's gomp recipe, fed a libgomp copied from the host into a deb.
    host = Path(os.path.realpath("/usr/lib/x86_64-linux-gnu/libgomp.so.1"))
    if not host.exists():
        pytest.skip("no host libgomp")
    gomp = make_deb(tmp_path, "libgomp1", "12.2.0-14", {
        f"usr/lib/x86_64-linux-gnu/{host.name}": host,
        "usr/lib/x86_64-linux-gnu/libgomp.so.1": host.name,
        "usr/share/doc/libgomp1/copyright": debs["foo"],  # any file: only its presence matters
    })  # fmt: skip
    out = tmp_path / "wheelhouse"
    assert main(["build", "gomp", "--from", f"deb:{gomp}", "--plan", "-o", str(out)]) == 0
    planned = capsys.readouterr().out
    assert "nativelib-gomp 12.2.0 from local" in planned and not out.exists()
    assert main(["build", "gomp", "--from", f"deb:{gomp}", "-o", str(out)]) == 0
    (wheel,) = out.iterdir()
    assert capsys.readouterr().out.strip() == str(wheel)
    assert wheel.name.startswith("nativelib_gomp-12.2.0-py3-none-manylinux_2_")
    with zipfile.ZipFile(wheel) as zf:
        doc = json.loads(zf.read("nativelib.prefix/share/nativelib/runtimes/nativelib-gomp.json"))
    assert (
        doc["libraries"][0]["soname"] == "libgomp.so.1"
        and "GOMP_4.5" in doc["libraries"][0]["version_definitions"]
    )
    # Usage errors.
    assert main(["build", "gomp", "cxx14", "--from", f"deb:{gomp}"]) == 2
    assert main(["build", "gomp", "--from", "zip:/x"]) == 2
    assert main(["build", "gomp", "--from", "deb:https://example.org/x.deb"]) == 2
    assert main(["build"]) == 2
    err = capsys.readouterr().err
    assert "name exactly one" in err and "unknown kind 'zip'" in err and "needs its sha256" in err


def test_error_classes_are_nativelib_errors() -> None:
    assert issubclass(BuildError, NativeLibError)


RPM_SPEC = """\
Name: libfoo
Version: 1.2.3
Release: 4.el8
Summary: test library
License: MIT
AutoReqProv: no
%define debug_package %{nil}
%define __os_install_post %{nil}
%define _build_id_links none

%description
A shared library built by the tests.

%install
mkdir -p %{buildroot}/usr/lib64 %{buildroot}/usr/share/licenses/libfoo
install -m 755 %{_sourcedir}/libfoo.so.1.2.3 %{buildroot}/usr/lib64/libfoo.so.1.2.3
ln -s libfoo.so.1.2.3 %{buildroot}/usr/lib64/libfoo.so.1
install -m 644 %{_sourcedir}/LICENSE %{buildroot}/usr/share/licenses/libfoo/LICENSE

%files
/usr/lib64/libfoo.so.1.2.3
/usr/lib64/libfoo.so.1
/usr/share/licenses/libfoo/LICENSE
"""


def test_build_from_a_real_rpm(tmp_path: Path) -> None:
    if shutil.which("rpmbuild") is None:
        pytest.skip("rpmbuild is not installed (CI installs Debian's rpm package)")
    top = tmp_path / "rpm"
    (top / "SOURCES").mkdir(parents=True)
    (top / "SOURCES/foo.map").write_text(FOO_MAP)
    _cc(
        top / "SOURCES/libfoo.so.1.2.3",
        FOO_C,
        "-Wl,-soname,libfoo.so.1",
        f"-Wl,--version-script={top / 'SOURCES/foo.map'}",
    )
    (top / "SOURCES/LICENSE").write_text("MIT License\n")
    (top / "libfoo.spec").write_text(RPM_SPEC)
    subprocess.run(
        ["rpmbuild", "-bb", "--define", f"_topdir {top}", "--define", "_binary_payload w2.xzdio", str(top / "libfoo.spec")],
        check=True, capture_output=True, env={**os.environ, "HOME": str(top)},
    )  # fmt: skip
    (rpm,) = (top / "RPMS").glob("*/*.rpm")
    cat = parse_catalog(
        {
            "foo.toml": 'name = "nativelib-foo"\nshort = "foo"\nsummary = "s"\nsonames = ["libfoo.so.1"]\nlicense-expression = "MIT"\n[[sources]]\nname = "t"\nkind = "rpm"\npackages = [{ url = "https://example.invalid/libfoo.rpm", sha256 = "'
            + "0" * 64
            + '" }]\n'
        }
    )
    recipe = cat.get("foo")
    rpm_input = Input(rpm, "rpm", rpm.as_uri(), hashlib.sha256(rpm.read_bytes()).hexdigest())
    plan = plan_build(
        recipe, [rpm_input], catalog=cat, workdir=tmp_path / "w"
    )  # local: default licence globs
    assert plan.version == "1.2.3"  # RPM VERSION, without the release
    assert plan.libraries[0].origin.endswith("!usr/lib64/libfoo.so.1.2.3")
    wheel = build(plan, tmp_path / "out")
    validate_wheel(wheel)
    with zipfile.ZipFile(wheel) as zf:
        assert (
            "nativelib_foo-1.2.3.dist-info/licenses/libfoo/usr/share/licenses/libfoo/LICENSE"
            in zf.namelist()
        )
        manifest = parse_manifest(
            zf.read("nativelib.prefix/share/nativelib/runtimes/nativelib-foo.json"), "m"
        )
    assert manifest.provenance.kind == "rpm" and manifest.library("libfoo.so.1") is not None


def test_two_builds_at_once_share_cache_and_output(debs: dict[str, Path], tmp_path: Path) -> None:
    """Two processes build the same runtime from the same URL into one cache and one dir."""
    host = Path(os.path.realpath("/usr/lib/x86_64-linux-gnu/libgomp.so.1"))
    if not host.exists():
        pytest.skip("no host libgomp")
    served = tmp_path / "served"
    served.mkdir()
    deb = make_deb(served, "libgomp1", "12.2.0-14", {
        f"usr/lib/x86_64-linux-gnu/{host.name}": host,
        "usr/share/doc/libgomp1/copyright": debs["foo"],
    })  # fmt: skip
    sha = hashlib.sha256(deb.read_bytes()).hexdigest()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{deb.name}#sha256={sha}"
        env = {**os.environ, "NATIVELIB_CACHE_DIR": str(tmp_path / "cache")}
        out = tmp_path / "wheelhouse"
        cmd = [
            sys.executable,
            "-m",
            "nativelib",
            "build",
            "gomp",
            "--from",
            f"deb:{url}",
            "-o",
            str(out),
        ]
        procs = [
            subprocess.Popen(
                cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            for _ in range(2)
        ]
        results = [p.communicate(timeout=120) for p in procs]
    finally:
        server.shutdown()
        server.server_close()
    assert [p.returncode for p in procs] == [0, 0], [r[1] for r in results]
    paths = {r[0].strip() for r in results}
    assert len(paths) == 1  # the same wheel path, published atomically by both
    (wheel,) = out.iterdir()  # and nothing else: no temporary files left
    validate_wheel(wheel)
    assert [p.name for p in (tmp_path / "cache/downloads" / sha).iterdir()] == [deb.name]


def test_cli_licence_hint_names_the_package_the_doc_dir_links_to(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Debian's libstdc++6/libgomp1 ship usr/share/doc/<pkg> as a symlink to gcc-12-base,
    which holds the copyright: without that package the hint names it."""
    host = Path(os.path.realpath("/usr/lib/x86_64-linux-gnu/libgomp.so.1"))
    if not host.exists():
        pytest.skip("no host libgomp")
    gomp = make_deb(tmp_path, "libgomp1", "12.2.0-14", {
        f"usr/lib/x86_64-linux-gnu/{host.name}": host,
        "usr/lib/x86_64-linux-gnu/libgomp.so.1": host.name,
        "usr/share/doc/libgomp1": "gcc-12-base",
    })  # fmt: skip
    assert main(["build", "gomp", "--from", f"deb:{gomp}", "-w", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("error: nativelib-gomp: no licence file matched [")
    assert err[1].startswith("hint: libgomp1_12.2.0-14_amd64.deb keeps its licence in Debian's ")
    assert "'gcc-12-base' package" in err[1] and "--from deb:gcc-12-base_" in err[1]
    assert len(err) == 2


def _headers_catalog(roots: str) -> Catalog:
    return parse_catalog(
        {
            "foo.toml": f"""
name = "nativelib-foo"
short = "foo"
summary = "The foo runtime"
sonames = ["libfoo.so.1"]
license-expression = "MIT"
[[sources]]
name = "test"
kind = "deb"
suite = "bookworm"
packages = [{{ name = "libfoo1" }}, {{ name = "foo-crt" }}]
version-from = "libfoo1"
headers-root = {roots}
headers = ["usr/include/foo/*.h", "opt/sdk/include/crt/*.h"]
license-files = ["usr/share/doc/*/copyright"]
"""
        }
    )


def test_headers_from_two_packages_under_their_own_roots(
    debs: dict[str, Path], tmp_path: Path
) -> None:
    """CUDA 12's shape: the runtime package has foo.h, another package the crt/ headers
    it includes, each below its own folder; both land in include/<short>/. The same
    header from both packages is an error, not a silent overwrite."""
    h = tmp_path / "h.h"
    h.write_text("#define FOO 1\n")
    lib = "usr/lib/x86_64-linux-gnu"
    runtime = make_deb(tmp_path, "libfoo1", "1.2.3-4", {
        f"{lib}/libfoo.so.1": debs["foo"].parent / "libs/libfoo.so.1.2.3",
        "usr/share/doc/libfoo1/copyright": debs["foo"].parent / "libs/copyright",
        "usr/include/foo/foo.h": h,
    })  # fmt: skip
    crt = make_deb(tmp_path, "foo-crt", "1.2.9-1", {
        "opt/sdk/include/crt/host_defines.h": h, "opt/sdk/include/other.h": h,
    })  # fmt: skip
    cat = _headers_catalog('["usr/include/foo", "opt/sdk/include"]')
    recipe = cat.get("foo")
    plan = plan_build(
        recipe, inputs(runtime, crt), catalog=cat, workdir=tmp_path / "w", source=recipe.source()
    )
    assert plan.version == "1.2.3"
    assert plan.manifest.headers == ("include/foo/crt/host_defines.h", "include/foo/foo.h")

    (tmp_path / "c").mkdir()
    clash = make_deb(tmp_path / "c", "foo-crt", "1.2.9-1", {"usr/include/foo/foo.h": h})
    with pytest.raises(BuildError, match=r"two upstream packages ship the header 'foo\.h'"):
        plan_build(
            recipe, inputs(runtime, clash), catalog=cat, workdir=tmp_path / "w2",
            source=recipe.source(),
        )  # fmt: skip
