"""The command line's shape: one error format for every command, -v/-q, the parser."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from nativelib.cli import COMMANDS, build_parser, log_level, main


def _fails(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[str, str]:
    """Run ``argv``; it must exit 2 with exactly an error: line and a hint: line."""
    assert main(list(argv)) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 2, err
    assert lines[0].startswith("error: ") and lines[1].startswith("hint: ")
    return lines[0], lines[1]


def test_inspect_error_and_hint(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    error, hint = _fails(capsys, "inspect", str(tmp_path / "nope.so"))
    assert error == f"error: no such file or directory: {str(tmp_path / 'nope.so')!r}"
    assert hint == "hint: PATH is a shared object, a directory to walk, or a .whl file"


def test_build_error_and_hint(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "libgomp1.deb"
    error, hint = _fails(capsys, "build", "gomp", "--from", f"deb:{missing}")
    assert error == f"error: nativelib-gomp: --from 'deb:{missing}': no such file: {str(missing)!r}"
    assert "https:// URL with #sha256=HEX" in hint


@pytest.mark.parametrize("command", ["resolve", "requires"])
def test_resolve_and_requires_error_and_hint(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str
) -> None:
    missing = tmp_path / "wheels"
    error, hint = _fails(capsys, command, "nativelib-cxx14>=12", "--find-links", str(missing))
    assert error == f"error: --find-links {str(missing)!r}: not a directory"
    assert hint == "hint: --find-links names a directory of wheels (as pip's does)"


def test_repair_error_and_hint(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "wheels"
    wheel = tmp_path / "x-1.0-py3-none-any.whl"
    error, hint = _fails(capsys, "repair", str(wheel), "--find-links", str(missing))
    assert error == f"error: --find-links {str(missing)!r}: not a directory"
    assert hint.startswith("hint: --find-links names a directory")


def test_doctor_error_and_hint(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    error, hint = _fails(capsys, "doctor", "--path", str(tmp_path / "gone"))
    assert error == f"error: --path {str(tmp_path / 'gone')!r}: no such file or directory"
    assert hint.startswith("hint: --path names a directory to scan")


def test_usage_error_and_hint(capsys: pytest.CaptureFixture[str]) -> None:
    error, hint = _fails(capsys, "inspect", "--no-such-flag", "x")
    assert error == "error: unrecognized arguments: --no-such-flag"
    assert hint == "hint: see 'nativelib --help'"


def test_every_command_has_configure_and_run() -> None:
    for command in COMMANDS:
        configure, run = command.load()
        assert callable(configure) and callable(run)
    _parser, runs = build_parser([c.name for c in COMMANDS][:1])
    assert set(runs) == {"inspect"}  # only the command asked for is imported


def test_build_wheel_dir_and_the_old_spelling() -> None:
    parser, _runs = build_parser(["build"])
    assert parser.parse_args(["build", "gomp", "-w", "d1"]).wheel_dir == "d1"
    assert parser.parse_args(["build", "gomp", "--wheel-dir", "d2"]).wheel_dir == "d2"
    assert parser.parse_args(["build", "gomp", "-o", "d3"]).wheel_dir == "d3"
    assert parser.parse_args(["build", "gomp", "--output", "d4"]).wheel_dir == "d4"
    assert parser.parse_args(["build", "gomp"]).wheel_dir == "wheelhouse"


def test_verbosity_before_or_after_the_command() -> None:
    parser, _runs = build_parser(["inspect"])
    before = parser.parse_args(["-v", "inspect", "x"])
    after = parser.parse_args(["inspect", "x", "-vv"])
    quiet = parser.parse_args(["inspect", "-q", "x"])
    assert log_level(before.verbose + before.verbose_after, 0) == logging.INFO
    assert log_level(after.verbose + after.verbose_after, 0) == logging.DEBUG
    assert log_level(0, quiet.quiet + quiet.quiet_after) == logging.ERROR
    assert log_level(0, 0) == logging.WARNING


def test_build_without_its_extra_names_the_extra(tmp_path: Path) -> None:
    """A base install (no ``build`` extra: zstandard absent) gets an error and the pip
    command, not a traceback. zstandard is hidden in a child process (None in
    sys.modules makes its import fail as if it were not installed)."""
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    code = (
        "import sys; sys.modules['zstandard'] = None\n"
        "from nativelib.cli import main\n"
        f"sys.exit(main(['build', 'gomp', '-w', {str(tmp_path)!r}]))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    assert run.stderr.splitlines() == [
        "error: nativelib build needs the Python module 'zstandard', which is not installed",
        "hint: install the 'build' extra: pip install 'pynativelib[build]'",
    ]
    assert list(tmp_path.iterdir()) == []
