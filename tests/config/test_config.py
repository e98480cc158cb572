"""``nativelib config`` against real runtime wheels (nativelib-gomp and nativelib-cxx14
built here from this host's GCC 12 libraries, through real .debs), installed by pip into a
venv, the ``--user`` site and a ``--target`` directory; every flag's output used by a real
gcc (or pkg-config, or CMake) to build an extension that is then imported and run, and
``/proc/self/maps`` says which libgomp it uses."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

from nativelib.cli import main
from nativelib.elf import read_elf
from nativelib.prefix import parse_manifest
from nativelib.resolver.bounds import node_bound, short_version
from nativelib_testing import OMP_SOURCE, Env, host_runtime_wheels

pytestmark = pytest.mark.skipif(
    shutil.which("dpkg-deb") is None or shutil.which("gcc") is None,
    reason="needs dpkg-deb and gcc",
)

EXT = sysconfig.get_config_var("EXT_SUFFIX")
INCLUDE = sysconfig.get_paths()["include"]
PROBE = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[1])
    import _omp
    total, threads = _omp.total(1000)
    maps = {l.split()[-1] for l in open("/proc/self/maps") if ".so" in l}
    print(total, "|".join(sorted(p for p in maps if "libgomp" in p)))
    """
)


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    found = host_runtime_wheels(tmp_path_factory.mktemp("hostwheels"))
    return {w.name.split("-")[0]: w for w in found}


def _layout_flags(env: Env) -> list[str]:
    if env.layout == "user":
        return ["--user"]
    if env.layout == "target":
        return ["--target", str(env.site)]
    return []


def _config(env: Env, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [env.python, "-m", "nativelib", "config", *_layout_flags(env), *args],
        capture_output=True, text=True, env=env.env, cwd=env.root,
    )  # fmt: skip


def _compile(out_dir: Path, flags: list[str]) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    src = out_dir / "omp.c"
    src.write_text(OMP_SOURCE)
    ext = out_dir / f"_omp{EXT}"
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-O1", f"-I{INCLUDE}", "-o", str(ext), str(src), *flags],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return ext


@pytest.mark.parametrize("layout", ["venv", "user", "target"])
def test_every_flag_builds_an_extension_that_runs_on_the_prefix_copy(
    layout: str, wheels: dict[str, Path], tmp_path: Path
) -> None:
    env = Env(tmp_path / "env", layout)
    env.install(wheels["nativelib_gomp"])
    prefix = env.site / "nativelib.prefix"

    got = _config(env)
    assert got.returncode == 0, got.stderr
    assert got.stdout == f"{prefix}\n"  # found where pip put the wheel, not under sys.prefix
    out = _config(
        env, "--prefix", "gomp", "--libdir", "--cflags", "--libs", "gomp",
        "--rpath-from", "ompkg", "--pkg-config-path",
    ).stdout.splitlines()  # fmt: skip
    assert out == [
        str(prefix),
        str(prefix / "lib"),
        "-fopenmp",
        f"-Wl,-L{prefix / 'lib'} -Wl,-l:libgomp.so.1",
        "$ORIGIN/../nativelib.prefix/lib",
        str(prefix / "lib/pkgconfig"),
    ]
    # The extension installs to <site>/ompkg: gcc with exactly these flags (the prefix's
    # libgomp.so.1 as the link name; -fopenmp's own -lgomp is the host's, same soname).
    pkg = env.site / "ompkg"
    ext = _compile(pkg, [out[2], *out[3].split(), f"-Wl,-rpath,{out[4]}"])
    info = read_elf(ext)
    assert info.runpath == ("$ORIGIN/../nativelib.prefix/lib",)
    assert "libgomp.so.1" in info.needed
    run = env.run(PROBE, str(pkg))
    assert run.returncode == 0, run.stderr
    total, libs = run.stdout.split()
    assert int(total) == 1000 * 999 // 2
    assert libs == str(prefix / "lib/libgomp.so.1")  # only the prefix's copy is mapped

    # --libdir for -L, and pkg-config reading the prefix's .pc (the same link line).
    pc = subprocess.run(
        ["pkg-config", "--cflags", "--libs", "nativelib-gomp"], capture_output=True, text=True,
        env={**os.environ, "PKG_CONFIG_PATH": out[5]}, check=True,
    ).stdout.split()  # fmt: skip
    assert pc[0] == "-fopenmp" and pc[-1] == "-Wl,-l:libgomp.so.1"
    assert os.path.realpath(pc[1].removeprefix("-Wl,-L")) == str(prefix / "lib")
    other = tmp_path / "viapc"
    ext2 = _compile(
        other,
        [
            *pc,
            f"-L{out[1]}",
            "-Wl,-rpath," + _config(env, "--rpath-from", str(other)).stdout.strip(),
        ],
    )
    run = env.run(PROBE, str(other))
    assert run.returncode == 0, run.stderr
    assert run.stdout.split()[1] == str(prefix / "lib/libgomp.so.1")
    assert read_elf(ext2).runpath == (f"$ORIGIN/{os.path.relpath(prefix / 'lib', other)}",)
    if layout == "venv":
        # The doctor checks prefix files against the manifests: the build files are fine.
        doctor = subprocess.run(
            [env.python, "-m", "nativelib", "doctor"], capture_output=True, text=True,
            env=env.env, cwd=env.root,
        )  # fmt: skip
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr
        assert "Findings\n  none\n" in doctor.stdout


def test_requires_is_the_bound_rule_over_the_nodes_the_installed_copy_defines(
    wheels: dict[str, Path], tmp_path: Path
) -> None:
    env = Env(tmp_path / "env", "target")
    env.install(wheels["nativelib_gomp"], wheels["nativelib_cxx14"])
    got = _config(env, "--requires", "gomp", "nativelib-cxx14")
    assert got.returncode == 0, got.stderr
    lines = got.stdout.splitlines()
    # Recomputed from the installed files' own version definitions (read by the ELF
    # reader, not from the manifest): no build linked against these copies can need more.
    lib = env.site / "nativelib.prefix/lib"
    gomp = node_bound("nativelib-gomp", read_elf(lib / "libgomp.so.1").version_definitions)
    assert gomp is not None
    cxx_nodes = [
        n
        for so in ("libstdc++.so.6", "libgcc_s.so.1", "libatomic.so.1")
        for n in read_elf(lib / so).version_definitions
    ]
    cxx = node_bound("nativelib-cxx14", cxx_nodes)
    assert cxx is not None
    assert lines == [
        f"nativelib-gomp>={short_version(gomp)}",
        f"nativelib-cxx14>={short_version(cxx)}",
    ]
    # GCC 12's libgomp defines GOMP_5.1 (first in GCC 12) and GLIBCXX_3.4.30 (12.1).
    assert lines == ["nativelib-gomp>=12.1", "nativelib-cxx14>=12.1"]


def test_python_api_matches_the_command(
    wheels: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nativelib import config  # noqa: PLC0415

    target = tmp_path / "t"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
         "--target", str(target), str(wheels["nativelib_gomp"])],
        check=True,
    )  # fmt: skip
    where = config.layout(target=target)
    prefix = target / "nativelib.prefix"
    assert config.prefix(where=where) == str(prefix)
    assert config.libs("gomp", where=where) == [f"-Wl,-L{prefix / 'lib'}", "-Wl,-l:libgomp.so.1"]
    assert config.cflags("nativelib-gomp", where=where) == ["-fopenmp"]
    assert config.rpath_from("a/b", where=where) == "$ORIGIN/../../nativelib.prefix/lib"
    assert config.pkg_config_path(where=where) == str(prefix / "lib/pkgconfig")
    assert Path(config.cmake_dir(), "nativelibConfig.cmake").is_file()

    # The console script answers the common queries before argparse (config.query): the
    # same lines as the full command line, whose argparse reads what the short way leaves.
    from nativelib.config import query  # noqa: PLC0415

    t = ["--target", str(target)]
    for argv in (
        [*t, "--libs", "gomp"], [*t, "--cflags", "--libs", "nativelib-gomp"],
        [*t, "--prefix", "--libdir", "--pkg-config-path", "--cmake-dir"], t,
        [*t, "--prefix", "gomp", "--libdir", "gomp", "--rpath-from", "a/b"],
    ):  # fmt: skip
        assert query.main(argv) == 0
        short = capsys.readouterr().out
        assert main(["config", *argv]) == 0
        assert short == capsys.readouterr().out and short, argv
    for left in (
        [*t, "gomp", "--libs"], [*t, "--requires", "gomp"], ["-h"], [*t, "--libs", "-v"],
        ["--libs", "gomp", "--libs", "gomp"], ["--user", *t], ["--target=x"], ["--lib", "g"],
        ["--rpath-from", ""], ["--includedir"], ["--cmake-dir", "x"],
    ):  # fmt: skip
        assert query.parse(left) is None, left
    assert query.main([*t, "--libs", "nosuch"]) is None  # the error is the CLI's to report
    assert capsys.readouterr().out == ""

    # ... importing none of what the full command line needs (each costs more than the
    # whole answer; scripts/bench_config.py): the modules it adds to the process.
    code = (
        "import sys; before = set(sys.modules); from nativelib.__main__ import main; "
        f"assert main(['config', '--target', {str(target)!r}, '--cflags', '--libs', 'gomp']) "
        "== 0; print(*sorted(set(sys.modules) - before), file=sys.stderr)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"-fopenmp\n-Wl,-L{prefix / 'lib'} -Wl,-l:libgomp.so.1\n"
    added = set(done.stderr.split())
    assert "nativelib.config.query" in added
    heavy = {"argparse", "logging", "json", "re", "dataclasses", "pathlib", "typing", "shlex",
             "tomllib", "tomli", "nativelib.catalog", "nativelib.cli", "packaging"}  # fmt: skip
    assert not added & heavy, added & heavy


def test_import_nativelib_does_not_import_config() -> None:
    code = (
        "import sys, nativelib; print(any(m.startswith('nativelib.config') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ----------------------------------------------------------------------------- errors


def test_a_runtime_not_installed_is_exit_2_naming_it_and_the_layout(
    wheels: dict[str, Path], tmp_path: Path
) -> None:
    env = Env(tmp_path / "env", "target")
    env.install(wheels["nativelib_gomp"])
    got = _config(env, "--libs", "cxx14")
    assert got.returncode == 2 and got.stdout == ""
    assert got.stderr == (
        f"error: nativelib-cxx14: is not installed in --target {env.site}\n"
        f"hint: pip install --target {env.site} nativelib-cxx14 (for a build: list it in "
        "build-system.requires)\n"
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["config", "--target", str(empty)]) == 2
    assert main(["config", "--target", str(empty), "--pkg-config-path"]) == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--libs", "nosuch"], "error: 'nosuch' is not a runtime: unknown runtime (known: "),
        (
            ["--includedir", "gomp"],
            "error: nativelib-gomp ships no headers\nhint: its headers come with the compiler",
        ),
        (
            ["--rpath-from", "../up"],
            "error: --rpath-from '../up' leaves the site directory\nhint: ",
        ),
        (["--cflags"], "error: --cflags needs a runtime\nhint: nativelib config --cflags gomp"),
        (["--user", "--target", "x"], "error: argument --target: not allowed with argument --user"),
        (["--target", "/nonexistent/dir"], "error: --target '/nonexistent/dir' is not a directory"),
    ],
)
def test_bad_input_is_an_error_and_a_hint(
    argv: list[str], message: str, wheels: dict[str, Path], tmp_path: Path
) -> None:
    env = Env(tmp_path / "env", "target")
    env.install(wheels["nativelib_gomp"])
    flags = [] if "--target" in argv or "--user" in argv else ["--target", str(env.site)]
    got = subprocess.run(
        [env.python, "-m", "nativelib", "config", *flags, *argv],
        capture_output=True, text=True, env=env.env, cwd=env.root,
    )  # fmt: skip
    assert got.returncode == 2 and got.stdout == ""
    assert got.stderr.startswith(message), got.stderr
    assert "Traceback" not in got.stderr


# ------------------------------------------------------- what the runtime wheels ship


def test_build_files_are_listed_in_the_manifest_and_record_and_relative(
    wheels: dict[str, Path],
) -> None:
    with zipfile.ZipFile(wheels["nativelib_gomp"]) as zf:
        names = zf.namelist()
        manifest = parse_manifest(
            zf.read("nativelib.prefix/share/nativelib/runtimes/nativelib-gomp.json"), "m"
        )
        record = zf.read(next(n for n in names if n.endswith("/RECORD"))).decode()
        points = zf.read(next(n for n in names if n.endswith("/entry_points.txt"))).decode()
        files = {n: zf.read(n).decode() for n in names if n.endswith((".pc", ".cmake"))}
    assert manifest.build_files == (
        "lib/pkgconfig/nativelib-gomp.pc",
        "share/cmake/nativelib/nativelib-gomp.cmake",
    )
    assert sorted(files) == [
        "nativelib.prefix/lib/pkgconfig/nativelib-gomp.pc",
        "nativelib.prefix/share/cmake/nativelib/nativelib-gomp.cmake",
        "nativelib_pkgconfig/nativelib-gomp.pc",
    ]
    for name, text in files.items():
        assert f"\n{name},sha256=" in "\n" + record
        assert "/tmp" not in text and "/usr" not in text  # relative paths only
    assert (
        "prefix=${pcfiledir}/../..\n" in files["nativelib.prefix/lib/pkgconfig/nativelib-gomp.pc"]
    )
    assert (
        "prefix=${pcfiledir}/../nativelib.prefix\n"
        in files["nativelib_pkgconfig/nativelib-gomp.pc"]
    )
    assert points == (
        "[cmake.prefix]\nnativelib = nativelib\n\n[pkg_config]\nnativelib = nativelib_pkgconfig\n"
    )


def test_pc_and_cmake_files_survive_pip_install_target_and_a_move(
    wheels: dict[str, Path], tmp_path: Path
) -> None:
    """``pip install --target`` to one directory, then the directory moved: pkg-config
    and CMake still find the libraries where they are now."""
    first = tmp_path / "first"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
         "--target", str(first), str(wheels["nativelib_gomp"])],
        check=True,
    )  # fmt: skip
    moved = tmp_path / "elsewhere/moved"
    moved.parent.mkdir()
    first.rename(moved)
    lib = moved / "nativelib.prefix/lib"
    for pcdir in (lib / "pkgconfig", moved / "nativelib_pkgconfig"):
        got = subprocess.run(
            ["pkg-config", "--libs", "nativelib-gomp"], capture_output=True, text=True,
            env={**os.environ, "PKG_CONFIG_PATH": str(pcdir)}, check=True,
        ).stdout.split()  # fmt: skip
        assert os.path.realpath(got[0].removeprefix("-Wl,-L")) == str(lib)
        assert got[1] == "-Wl,-l:libgomp.so.1"
    if shutil.which("cmake") is None:
        pytest.skip("needs cmake for the CMake half")
    located = _cmake_locate(
        tmp_path / "cm", ["-Dnativelib_PREFIX=" + str(moved / "nativelib.prefix")]
    )
    assert located == str(lib / "libgomp.so.1")


CMAKE_LOCATE = """
cmake_minimum_required(VERSION 3.15)
project(locate C)
find_package(nativelib REQUIRED COMPONENTS gomp)
get_target_property(loc nativelib::gomp IMPORTED_LOCATION)
file(WRITE "${CMAKE_BINARY_DIR}/where.txt" "${loc}")
"""


def _cmake_locate(work: Path, defines: list[str]) -> str:
    from nativelib import config  # noqa: PLC0415

    (work / "src").mkdir(parents=True)
    (work / "src/CMakeLists.txt").write_text(CMAKE_LOCATE)
    got = subprocess.run(
        ["cmake", "-S", str(work / "src"), "-B", str(work / "build"),
         f"-Dnativelib_DIR={config.cmake_dir()}", *defines],
        capture_output=True, text=True,
    )  # fmt: skip
    assert got.returncode == 0, got.stdout + got.stderr
    return (work / "build/where.txt").read_text()


@pytest.mark.skipif(shutil.which("cmake") is None, reason="needs cmake")
def test_cmake_package_builds_and_links_an_extension_with_the_runpath(
    wheels: dict[str, Path], tmp_path: Path
) -> None:
    """find_package(nativelib COMPONENTS gomp), nativelib::gomp and nativelib_runtime_rpath:
    built and installed by CMake into a --target site, imported and run there; a component
    that is not installed fails find_package naming it."""
    env = Env(tmp_path / "env", "target")
    env.install(wheels["nativelib_gomp"])
    src = tmp_path / "src"
    src.mkdir()
    (src / "omp.c").write_text(OMP_SOURCE)
    (src / "CMakeLists.txt").write_text(
        textwrap.dedent(
            f"""
            cmake_minimum_required(VERSION 3.15)
            project(omp C)
            find_package(nativelib REQUIRED COMPONENTS gomp)
            add_library(_omp MODULE omp.c)
            set_target_properties(_omp PROPERTIES PREFIX "" SUFFIX "{EXT}")
            target_include_directories(_omp PRIVATE "{INCLUDE}")
            target_link_libraries(_omp PRIVATE nativelib::gomp)
            nativelib_runtime_rpath(_omp DESTINATION ompkg)
            install(TARGETS _omp DESTINATION ompkg)
            """
        )
    )
    prefix_dir = _config(env, "--prefix").stdout.strip()
    configure = subprocess.run(
        ["cmake", "-S", str(src), "-B", str(tmp_path / "b"),
         "-Dnativelib_DIR=" + _config(env, "--cmake-dir").stdout.strip(),
         "-Dnativelib_PREFIX=" + prefix_dir, f"-DCMAKE_INSTALL_PREFIX={env.site}"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert configure.returncode == 0, configure.stdout + configure.stderr
    for step in (["--build", str(tmp_path / "b")], ["--install", str(tmp_path / "b")]):
        done = subprocess.run(["cmake", *step], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    ext = env.site / f"ompkg/_omp{EXT}"
    assert read_elf(ext).runpath == ("$ORIGIN/../nativelib.prefix/lib",)
    run = env.run(PROBE, str(env.site / "ompkg"))
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [str(1000 * 999 // 2), f"{prefix_dir}/lib/libgomp.so.1"]

    missing = subprocess.run(
        ["cmake", "-S", str(src), "-B", str(tmp_path / "b2"),
         "-Dnativelib_DIR=" + _config(env, "--cmake-dir").stdout.strip(),
         "-Dnativelib_PREFIX=" + prefix_dir, "-DCMAKE_PREFIX_PATH=/nonexistent"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert missing.returncode == 0  # gomp is there: now ask for one that is not
    (src / "CMakeLists.txt").write_text(
        (src / "CMakeLists.txt").read_text().replace("COMPONENTS gomp", "COMPONENTS gomp cxx14")
    )
    missing = subprocess.run(
        ["cmake", "-S", str(src), "-B", str(tmp_path / "b3"),
         "-Dnativelib_DIR=" + _config(env, "--cmake-dir").stdout.strip(),
         "-Dnativelib_PREFIX=" + prefix_dir],
        capture_output=True, text=True,
    )  # fmt: skip
    assert missing.returncode != 0
    assert "not installed: nativelib-cxx14" in missing.stderr.replace("\n", " ")
