"""The release file: the project's own parses; every kind of bad entry is an ``error:``
naming the file and the entry, exit 2, and nothing is built or written (offline, except
the one test marked network: a version the source does not have needs the source's
index)."""

from __future__ import annotations

import io
import json
import tarfile
import time
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from nativelib.catalog import load_catalog
from nativelib.cli import main
from nativelib.release.coverage import CoverageError, normalize_platform, pip_platform_args
from nativelib.release.project import normalize_sdist
from nativelib.release.releasefile import (
    ReleaseFileError,
    default_release_file,
    load_release_file,
)


def test_the_projects_release_file_parses() -> None:
    release = load_release_file(default_release_file(), load_catalog())
    assert release.runtimes == ("nativelib-cxx14", "nativelib-gfortran5", "nativelib-gomp")
    by = {(e.runtime, e.source): e.version for e in release.entries}
    # Debian 11 and 12 for every runtime: the floors pip needs (manylinux2014..2_31, 2_34+).
    for runtime in release.runtimes:
        assert by[(runtime, "debian-bullseye")] == "10.2.1"
        assert by[(runtime, "debian-bookworm")] == "12.2.0"
    # Dependencies first: gfortran5 needs cxx14's libgcc_s.
    order = [e.runtime for e in release.entries]
    assert order.index("nativelib-cxx14") < order.index("nativelib-gfortran5")
    assert release.yanked == ()


def _release(tmp_path: Path, text: str, *extra: str) -> tuple[int, Path]:
    path = tmp_path / "release.toml"
    path.write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    return main(["release", str(path), "-o", str(out), *extra]), out


BAD = {
    "unknown runtime": (
        '[runtimes]\nlibfoo = { debian-bookworm = "1.0" }\n',
        "runtimes.libfoo: unknown runtime",
    ),
    "unknown source": (
        '[runtimes]\ngomp = { debian-wheezy = "4.7.2" }\n',
        "runtimes.gomp.debian-wheezy: nativelib-gomp has no source 'debian-wheezy'",
    ),
    "source of another runtime": (
        '[runtimes]\ngfortran5 = { debian-trixie = "14.2.0" }\ncxx14 = { debian-trixie = "14.2.0" }\n',
        "runtimes.gfortran5.debian-trixie: nativelib-gfortran5 has no source 'debian-trixie'",
    ),
    "not a version": (
        '[runtimes]\ngomp = { debian-bookworm = "twelve" }\n',
        "runtimes.gomp.debian-bookworm: 'twelve' is not a PEP 440 version",
    ),
    "dependency not released": (
        '[runtimes]\ngfortran5 = { debian-bookworm = "12.2.0" }\n',
        "nativelib-gfortran5 depends on nativelib-cxx14, which the release does not build",
    ),
    "runtime twice": (
        '[runtimes]\ngomp = { debian-bookworm = "12.2.0" }\nnativelib-gomp = { debian-bullseye = "10.2.1" }\n',
        "runtimes.nativelib-gomp: nativelib-gomp is listed twice",
    ),
    "unknown key": (
        '[runtimes]\ngomp = { debian-bookworm = "12.2.0" }\n[release]\n',
        "unknown key 'release'",
    ),
    "no runtimes": ("yanked = []\n", "no [runtimes] table"),
    "yanked names nothing built": (
        '[runtimes]\ngomp = { debian-bookworm = "12.2.0" }\n'
        '[[yanked]]\nname = "nativelib-gomp"\nversion = "10.2.1"\nreason = "old"\n',
        "yanked[0]: the release builds no nativelib-gomp 10.2.1",
    ),
    "yanked without reason": (
        '[runtimes]\ngomp = { debian-bookworm = "12.2.0" }\n'
        '[[yanked]]\nname = "nativelib-gomp"\nversion = "12.2.0"\n',
        "yanked[0].reason: expected a non-empty string",
    ),
    "not TOML": ("[runtimes\n", "not valid TOML"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_release_file_is_refused_before_anything_is_built(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text, reason = BAD[case]
    code, out = _release(tmp_path, text)
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"error: {tmp_path / 'release.toml'}: "), err
    assert reason in err
    assert "Traceback" not in err
    assert not out.exists()


def test_missing_release_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.toml"
    assert main(["release", str(missing), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"error: {missing}: cannot read the release file" in err
    assert "hint:" in err
    assert not (tmp_path / "out").exists()


def test_bad_platform_is_refused_before_anything_is_built(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _release(
        tmp_path,
        '[runtimes]\ngomp = { debian-bookworm = "12.2.0" }\n',
        "--check-platforms",
        "win_amd64",
    )
    assert code == 2
    assert "error: --check-platforms: 'win_amd64' is not a manylinux platform" in (
        capsys.readouterr().err
    )
    assert not out.exists()


def test_output_that_is_a_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "release.toml"
    path.write_text('[runtimes]\ngomp = { debian-bookworm = "12.2.0" }\n', encoding="utf-8")
    target = tmp_path / "file"
    target.write_text("x")
    assert main(["release", str(path), "-o", str(target)]) == 2
    assert f"error: {target}: not a directory" in capsys.readouterr().err
    assert target.read_text() == "x"


@pytest.mark.network
def test_a_version_the_source_does_not_have(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _release(
        tmp_path,
        '[runtimes]\ncxx14 = { debian-bullseye = "10.2.1", debian-bookworm = "12.1.0" }\n',
    )
    err = capsys.readouterr().err
    assert code == 2
    assert (
        f"error: {tmp_path / 'release.toml'}: runtimes.cxx14.debian-bookworm: the source gives "
        "nativelib-cxx14 12.2.0 (libstdc++6 12.2.0-14" in err
    )
    assert "hint: write '12.2.0' for it in the release file" in err
    # Checked before anything is built: not even the bullseye wheel, listed first.
    assert not out.exists()


def test_platforms_are_spelled_out_for_pip() -> None:
    assert normalize_platform("manylinux2014") == "manylinux_2_17"
    assert normalize_platform("manylinux_2_28_x86_64") == "manylinux_2_28"
    with pytest.raises(CoverageError):
        normalize_platform("linux_x86_64")
    args = pip_platform_args("manylinux_2_17", "x86_64")
    tags = args[1::2]
    assert set(args[0::2]) == {"--platform"}
    assert tags[0] == "manylinux_2_17_x86_64"
    assert "manylinux_2_5_x86_64" in tags
    assert "manylinux_2_18_x86_64" not in tags
    assert {"manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"} <= set(tags)
    assert "manylinux2014_x86_64" not in pip_platform_args("manylinux_2_12", "x86_64")


def test_release_error_pickles() -> None:
    import pickle  # noqa: PLC0415

    e = ReleaseFileError("r.toml", "runtimes.x: bad", hint="h")
    again = pickle.loads(pickle.dumps(e))
    assert (again.where, again.reason, again.hint) == ("r.toml", "runtimes.x: bad", "h")


def test_schema_is_a_valid_json_schema() -> None:
    schema = json.loads(
        resources.files("nativelib").joinpath("data/schemas/release.schema.json").read_text()
    )
    jsonschema.Draft202012Validator.check_schema(schema)


def test_not_a_checkout_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "release.toml"
    path.write_text('[runtimes]\ngomp = { debian-bookworm = "12.2.0" }\n', encoding="utf-8")
    code = main(["release", str(path), "-o", str(tmp_path / "out"), "--project", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"error: {tmp_path}: not a pynativelib checkout" in err
    assert "hint: run from an editable install" in err
    assert not (tmp_path / "out").exists()


def test_bad_source_date_epoch_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    code, out = _release(tmp_path, '[runtimes]\ngomp = { debian-bookworm = "12.2.0" }\n')
    assert code == 2
    assert "error: SOURCE_DATE_EPOCH: 'yesterday' is not an integer" in capsys.readouterr().err
    assert not out.exists()


def _tarball(path: Path, mtime: int, uid: int) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in (("p-1/PKG-INFO", b"Name: p\n"), ("p-1/src/a.py", b"x = 1\n")):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.uid, info.uname = len(data), mtime, uid, "someone"
            tar.addfile(info, io.BytesIO(data))


def test_sdist_is_made_deterministic(tmp_path: Path) -> None:
    """What setuptools varies between two builds (member mtimes, owner, the gzip header's
    time) is fixed; the members and their bytes are not changed."""
    epoch = 1_700_000_000
    for i, (mtime, uid) in enumerate(((epoch + 50, 1000), (epoch + 99, 0))):
        _tarball(tmp_path / f"in{i}.tar.gz", mtime, uid)
        time.sleep(1.1 if i == 0 else 0)  # gzip's own header time would differ
        normalize_sdist(tmp_path / f"in{i}.tar.gz", tmp_path / f"out{i}.tar.gz", epoch)
    assert (tmp_path / "in0.tar.gz").read_bytes() != (tmp_path / "in1.tar.gz").read_bytes()
    assert (tmp_path / "out0.tar.gz").read_bytes() == (tmp_path / "out1.tar.gz").read_bytes()
    with tarfile.open(tmp_path / "out0.tar.gz") as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == ["p-1/PKG-INFO", "p-1/src/a.py"]
        assert {(m.mtime, m.uid, m.gid, m.uname) for m in members} == {(epoch, 0, 0, "")}
        assert tar.extractfile(members[1]).read() == b"x = 1\n"  # type: ignore[union-attr]
    # An older member keeps its time (clamped, not raised).
    _tarball(tmp_path / "old.tar.gz", 1000, 0)
    normalize_sdist(tmp_path / "old.tar.gz", tmp_path / "old-out.tar.gz", epoch)
    with tarfile.open(tmp_path / "old-out.tar.gz") as tar:
        assert {m.mtime for m in tar.getmembers()} == {1000}
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
