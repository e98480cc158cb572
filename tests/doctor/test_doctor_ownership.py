"""Ownership across the environment: two distributions whose RECORDs list one file,
installed by real pip into a fresh venv (pip allows it: the second overwrites the file
without a word), and the CLI refusing to run when ``nativelib/__init__.py`` was replaced by
another distribution's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from doctor_support import run_doctor

from nativelib_testing import Env, write_wheel_members


def _wheel(dest: Path, name: str, version: str, files: dict[str, bytes], scripts: str = "") -> Path:
    """A real pure-Python wheel ``name-version`` holding ``files`` (and console scripts:
    ``entry_points.txt`` lines)."""
    stem = f"{name.replace('-', '_')}-{version}"  # as a wheel escapes the name
    dist_info = f"{stem}.dist-info"
    if scripts:
        files = {
            **files,
            f"{dist_info}/entry_points.txt": f"[console_scripts]\n{scripts}\n".encode(),
        }
    members = {
        **files,
        f"{dist_info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        ).encode(),
        f"{dist_info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
        f"{dist_info}/RECORD": b"",
    }
    return write_wheel_members(dest / f"{stem}-py3-none-any.whl", members)


def _install(env: Env, *wheels: Path) -> None:
    subprocess.run(
        [env.python, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
         "--disable-pip-version-check", *map(str, wheels)],
        check=True, env=env.env, capture_output=True,
    )  # fmt: skip


def test_two_distributions_owning_files(tmp_path: Path) -> None:
    """Two wheels that both install ``shared/`` files: pip installs both (and their
    ``.pyc`` files); the doctor names both distributions and the files, bounded, and
    nothing for a file only one owns."""
    env = Env(tmp_path / "env", "venv")
    shared = {f"shared/mod{i}.py": f"x = {i}\n".encode() for i in range(5)}
    one = _wheel(tmp_path / "wh", "alpha-tools", "1.0", {**shared, "alpha_only.py": b""})
    two = _wheel(tmp_path / "wh", "beta_tools", "2.1", {**shared, "beta_only.py": b""})
    _install(env, one)
    assert run_doctor(env).findings("file-claimed-twice") == []
    _install(env, two)
    result = run_doctor(env)
    (found,) = result.findings("file-claimed-twice")
    assert found["severity"] == "warning"
    assert found["message"].startswith(
        f"10 files in {env.site} are claimed by alpha-tools 1.0 and beta_tools 2.1 "
        "(shared/mod0.py, shared/mod1.py, shared/mod2.py, and 7 more): "
    )
    assert found["files"] == [
        str(env.site / "alpha_tools-1.0.dist-info/RECORD"),
        str(env.site / "beta_tools-2.1.dist-info/RECORD"),
        *(str(env.site / f"shared/mod{i}.py") for i in range(3)),
    ]
    assert found["hint"] == (
        "keep one of them: pip uninstall -y beta_tools && "
        'pip install --force-reinstall --no-deps "alpha-tools==1.0" '
        "(or pip uninstall -y alpha-tools && pip install --force-reinstall --no-deps "
        '"beta_tools==2.1")'
    )
    assert "import-name-clash" not in result.codes
    # What the finding says is so: uninstalling one deletes the other's files.
    subprocess.run(
        [env.python, "-m", "pip", "uninstall", "-q", "-y", "beta_tools"],
        check=True, env=env.env, capture_output=True,
    )  # fmt: skip
    assert not (env.site / "shared/mod0.py").exists()
    assert run_doctor(env).findings("file-claimed-twice") == []


def _console_script() -> str:
    """This tree's ``[project.scripts]`` line for the ``nativelib`` command."""
    from nativelib_testing import SRC  # noqa: PLC0415

    if sys.version_info >= (3, 11):
        import tomllib  # noqa: PLC0415
    else:
        import tomli as tomllib  # noqa: PLC0415
    project = tomllib.loads((SRC.parent / "pyproject.toml").read_text(encoding="utf-8"))
    return f"nativelib = {project['project']['scripts']['nativelib']}"


def test_the_cli_refuses_a_foreign_nativelib_package(tmp_path: Path) -> None:
    """A distribution that installs ``nativelib/__init__.py`` over ours (as PyPI's
    unrelated ``nativelib`` 0.2.2.6 does; its ``__init__`` imports pandas, and fails
    here as it does without it): the ``nativelib`` command (pip's console script, this
    tree's entry point: the ``_pynativelib_main`` launcher) refuses with a clear error, exit
    2, before that ``__init__`` runs; the autoload's start-up never runs it; ``python -m
    nativelib`` cannot be protected (the other ``__init__`` runs first). With a foreign
    ``__init__`` that imports cleanly, our ``cli.py`` and ``__main__.py``, still there,
    refuse too. The doctor names the clash from the RECORDs. (pynativelib is installed
    by pip from a wheel of this tree's modules, so that the other wheel really
    overwrites its ``__init__.py``.)"""
    from nativelib.autoload import PTH_NAME, pth_text  # noqa: PLC0415
    from nativelib_testing import SRC  # noqa: PLC0415

    env = Env(tmp_path / "env", "venv")
    (env.site / "pynativelib-src.pth").unlink()
    ours = {
        str(p.relative_to(SRC)): p.read_bytes()
        for p in sorted([*SRC.glob("_pynativelib*.py"), *(SRC / "nativelib").rglob("*")])
        if p.is_file() and "__pycache__" not in p.parts
    }
    failing = b"raise ImportError('nativelib 0.2.2.6 needs pandas')\n"
    theirs = {"nativelib/__init__.py": failing, "nativelib/reader.py": b""}
    _install(
        env,
        _wheel(tmp_path / "wh", "pynativelib", "0.1.0", ours, _console_script()),
        _wheel(tmp_path / "wh", "nativelib", "0.2.2.6", theirs),
    )
    assert (env.site / "nativelib/__init__.py").read_bytes() == failing
    refusal = (
        f"error: {env.site / 'nativelib/__init__.py'}: this nativelib package is not "
        "pynativelib's: another distribution (nativelib 0.2.2.6) installed its own "
        "nativelib/__init__.py over it\n"
        "hint: pip uninstall nativelib && pip install --force-reinstall pynativelib\n"
    )
    command = str(Path(env.python).parent / "nativelib")
    for args in (["--version"], ["autoload", "enable"]):
        script = subprocess.run([command, *args], capture_output=True, text=True, env=env.env)
        assert (script.returncode, script.stdout, script.stderr) == (2, "", refusal)
    assert not (env.site / PTH_NAME).exists()
    # python -m nativelib runs the other __init__ before any module of ours: its error.
    module = subprocess.run(
        [env.python, "-m", "nativelib", "doctor"], capture_output=True, text=True, env=env.env
    )  # fmt: skip
    assert module.returncode == 1
    assert module.stderr.rstrip().endswith("ImportError: nativelib 0.2.2.6 needs pandas")
    # An autoload file (here one without a stored plan: the full path, which would import
    # nativelib) never runs the other __init__ at interpreter start.
    (env.site / PTH_NAME).write_text(pth_text(None))
    probe = "import sys; print('nativelib' in sys.modules)"
    start = subprocess.run([env.python, "-c", probe], capture_output=True, text=True, env=env.env)
    assert (start.returncode, start.stdout, start.stderr) == (0, "False\n", "")
    debug = subprocess.run(
        [env.python, "-c", "pass"], capture_output=True, text=True,
        env={**env.env, "NATIVELIB_AUTOLOAD_DEBUG": "1"},
    )  # fmt: skip
    assert debug.stderr.startswith("nativelib autoload: nothing in "), debug.stderr
    assert "not run: " in debug.stderr and "is not pynativelib's" in debug.stderr
    (env.site / PTH_NAME).unlink()

    # A foreign __init__ that imports cleanly: our own modules refuse too.
    theirs["nativelib/__init__.py"] = b"'a ClickHouse reader'\n"
    (env.site / "nativelib/__init__.py").write_bytes(theirs["nativelib/__init__.py"])
    for args in (
        ["-m", "nativelib", "doctor"],
        ["-m", "nativelib", "config", "--cmake-dir"],  # the short way defers to the CLI
        ["-c", "import nativelib.cli as c; raise SystemExit(c.main())"],
    ):
        out = subprocess.run(
            [env.python, *args], capture_output=True, text=True, env=env.env, cwd=tmp_path
        )
        assert (out.returncode, out.stdout, out.stderr) == (2, "", refusal)
    script = subprocess.run([command, "--version"], capture_output=True, text=True, env=env.env)
    assert (script.returncode, script.stdout, script.stderr) == (2, "", refusal)
    # The doctor (run from this tree) names the clash from the RECORDs: the import-name
    # finding, not a second one for the same files.
    result = run_doctor(env, extra_env={"PYTHONPATH": str(SRC)})
    found = result.one("import-name-clash")
    assert found["message"].startswith(
        "nativelib 0.2.2.6 installs files in nativelib/ (nativelib/__init__.py, "
        "nativelib/reader.py, nativelib/__pycache__/__init__.cpython-"
    )
    assert "file-claimed-twice" not in result.codes


def test_unsorted_and_quoted_records_are_split_whole(tmp_path: Path) -> None:
    """The owner map reads the top-level names of a RECORD by bisection where pip wrote it
    sorted; a RECORD whose lines are not (written by hand, by another installer) or that
    quotes a path is split whole, and its shared files are found all the same."""
    from nativelib.wheelfile.record import record_path_set, record_top_runs  # noqa: PLC0415

    env = Env(tmp_path / "env", "venv")
    _install(env, _wheel(tmp_path / "wh", "alpha", "1.0", {"pkg/a.py": b"", "z.py": b""}))
    for name, rows in (
        ("unsorted", ["pkg/b.py,,", "other/x.py,,", "pkg/a.py,,"]),
        ("quoted", ['"z.py",,', "quoted_only/y.py,,"]),
    ):
        info = env.site / f"{name}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        raw = "".join(f"{row}\n" for row in [*rows, f"{info.name}/RECORD,,"])
        (info / "RECORD").write_text(raw)
        assert record_top_runs(raw.encode()) is None
        assert b"pkg/a.py" in record_path_set(raw.encode(), "RECORD") or name == "quoted"
    result = run_doctor(env)
    messages = sorted(f["message"] for f in result.findings("file-claimed-twice"))
    assert len(messages) == 2, messages
    assert messages[0].startswith(
        f"1 file in {env.site} is claimed by alpha 1.0 and quoted 1.0 (z.py)"
    )
    assert messages[1].startswith(
        f"1 file in {env.site} is claimed by alpha 1.0 and unsorted 1.0 (pkg/a.py)"
    )
