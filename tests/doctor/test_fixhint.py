"""The doctor's ``nativelib fix`` hints: where the runtime wheels are known to be.

Real directories and files (wheel files, static index pages, pip configuration files);
the environment is given as a mapping, so the user's own pip configuration is not read
(``HOME`` points into the test directory). That the commands run is tested in
tests/repair/test_fix.py, with the doctor and fix of a real venv."""

from __future__ import annotations

from pathlib import Path

from nativelib.doctor.fixhint import FixHints, openmp_hint, pip_config_files


def _dirs(tmp_path: Path) -> tuple[Path, Path, Path]:
    wheels = tmp_path / "wheels"  # a --find-links directory with the runtime wheel
    wheels.mkdir()
    (wheels / "nativelib_gomp-12.2.0-py3-none-manylinux_2_34_x86_64.whl").write_bytes(b"")
    index = tmp_path / "release/simple"  # a static index with its page
    (index / "nativelib-gomp").mkdir(parents=True)
    (index / "nativelib-gomp/index.html").write_text("<a href='x'>x</a>")
    other = tmp_path / "other"  # neither
    (other / "numpy").mkdir(parents=True)
    return wheels, index, other


def _hints(tmp_path: Path, **environ: str) -> FixHints:
    env = {"HOME": str(tmp_path / "home"), "XDG_CONFIG_DIRS": str(tmp_path / "etc-xdg")}
    return FixHints({**env, **environ}, prefix=str(tmp_path / "venv"))


def test_unknown_index_means_build(tmp_path: Path) -> None:
    assert _hints(tmp_path).command(["ompdemo"], ["nativelib-gomp"]) == (
        "nativelib fix ompdemo --build"
    )


def test_nativelib_index_url(tmp_path: Path) -> None:
    wheels, index, other = _dirs(tmp_path)
    url = "https://example.org/runtimes/simple"
    assert _hints(tmp_path, NATIVELIB_INDEX_URL=url).command(["a"], ["nativelib-gomp"]) == (
        f"nativelib fix a --index-url {url}"
    )
    local = _hints(tmp_path, NATIVELIB_INDEX_URL=index.as_uri())
    assert (
        local.command(["a"], ["nativelib-gomp"]) == f"nativelib fix a --index-url {index.as_uri()}"
    )
    as_dir = _hints(tmp_path, NATIVELIB_INDEX_URL=str(wheels))
    assert as_dir.command(["a"], ["nativelib-gomp"]) == f"nativelib fix a --find-links {wheels}"
    # A local one without the runtime is not pointed at.
    missing = _hints(tmp_path, NATIVELIB_INDEX_URL=other.as_uri())
    assert missing.command(["a"], ["nativelib-gomp"]) == "nativelib fix a --build"
    assert local.command(["a"], ["nativelib-gomp", "nativelib-cxx14"]) == "nativelib fix a --build"


def test_pip_environment_variables(tmp_path: Path) -> None:
    wheels, index, other = _dirs(tmp_path)
    hints = _hints(
        tmp_path, PIP_FIND_LINKS=f"{other} {wheels}", PIP_INDEX_URL="https://pypi.org/simple"
    )
    assert (
        hints.command(["a", "b"], ["nativelib-gomp"]) == f"nativelib fix a b --find-links {wheels}"
    )
    hints = _hints(tmp_path, PIP_EXTRA_INDEX_URL=f"https://x.example/simple {index.as_uri()}")
    assert (
        hints.command(["a"], ["nativelib-gomp"]) == f"nativelib fix a --index-url {index.as_uri()}"
    )
    # Remote pip indexes are not pointed at (whether they hold it is not known offline).
    hints = _hints(tmp_path, PIP_INDEX_URL="https://mirror.example/simple")
    assert hints.command(["a"], ["nativelib-gomp"]) == "nativelib fix a --build"


def test_pip_configuration_files(tmp_path: Path) -> None:
    wheels, index, other = _dirs(tmp_path)
    site = tmp_path / "venv/pip.conf"
    site.parent.mkdir()
    site.write_text(f"[install]\nfind_links =\n    {other}\n    {wheels}\n")
    assert (
        _hints(tmp_path).command(["a"], ["nativelib-gomp"])
        == f"nativelib fix a --find-links {wheels}"
    )
    site.unlink()
    user = tmp_path / "home/.config/pip/pip.conf"
    user.parent.mkdir(parents=True)
    user.write_text(f"[global]\nindex-url = {index.as_uri()}\n")
    assert _hints(tmp_path).command(["a"], ["nativelib-gomp"]) == (
        f"nativelib fix a --index-url {index.as_uri()}"
    )
    # PIP_CONFIG_FILE=/dev/null: pip reads no file; an existing PIP_CONFIG_FILE replaces
    # the user's files.
    assert _hints(tmp_path, PIP_CONFIG_FILE="/dev/null").command(["a"], ["nativelib-gomp"]) == (
        "nativelib fix a --build"
    )
    own = tmp_path / "own.conf"
    own.write_text("[global]\nfind-links = /nonexistent\n")
    assert str(user) not in pip_config_files(
        {"HOME": str(tmp_path / "home"), "PIP_CONFIG_FILE": str(own)}, "/p"
    )
    assert _hints(tmp_path, PIP_CONFIG_FILE=str(own)).command(["a"], ["nativelib-gomp"]) == (
        "nativelib fix a --build"
    )
    # A broken file is skipped, not an error.
    user.write_text("not = an ini file\n[")
    assert _hints(tmp_path).command(["a"], ["nativelib-gomp"]) == "nativelib fix a --build"


def test_openmp_hint(tmp_path: Path) -> None:
    hints = _hints(tmp_path)
    text = openmp_hint(hints, {"torch": "nativelib-gomp", "scikit-learn": "nativelib-gomp"})
    assert text.startswith("nativelib fix scikit-learn torch --build (one copy of each")
    assert "MKL_THREADING_LAYER=GNU" in text and "<" not in text
    assert (
        openmp_hint(hints, {}) == "keep one family: MKL_THREADING_LAYER=GNU makes MKL use libgomp"
    )


def test_quoted_when_the_shell_needs_it(tmp_path: Path) -> None:
    wheels = tmp_path / "my wheels"
    wheels.mkdir()
    (wheels / "nativelib_gomp-12.2.0-py3-none-any.whl").write_bytes(b"")
    hints = _hints(tmp_path, NATIVELIB_INDEX_URL=str(wheels))
    assert hints.command(["a"], ["nativelib-gomp"]) == f"nativelib fix a --find-links '{wheels}'"


def test_pip_install_hints_name_the_index(tmp_path: Path) -> None:
    wheels, index, _other = _dirs(tmp_path)
    assert _hints(tmp_path).pip_install("nativelib-gomp>=12") == 'pip install "nativelib-gomp>=12"'
    hints = _hints(tmp_path, NATIVELIB_INDEX_URL=index.as_uri())
    assert hints.pip_install("nativelib-gomp>=12") == (
        f'pip install --index-url {index.as_uri()} "nativelib-gomp>=12"'
    )
    hints = _hints(tmp_path, PIP_FIND_LINKS=str(wheels))
    assert (
        hints.pip_install("nativelib-gomp") == f"pip install --find-links {wheels} nativelib-gomp"
    )
