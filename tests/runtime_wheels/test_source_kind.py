"""The source-kind seam: a toy kind registered in a few lines is validated by the catalog,
opened by open_archive and built into a valid runtime wheel by the real builder."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from nativelib.archive import Member, MemberKind, PackageInfo, open_archive
from nativelib.catalog import parse_catalog
from nativelib.cli import main
from nativelib.errors import CatalogError
from nativelib.sources import SourceKind, register, unregister
from nativelib.wheelfile import validate_wheel


class ToyArchive:
    """A ``.toy`` package: a zip whose members are the payload, as regular files."""

    def __init__(self, path: str) -> None:
        self.path = path

    def info(self) -> PackageInfo:
        return PackageInfo("toy", "libgomp-toy", "12.2.0", "GPL-3.0-or-later", "x86_64")

    def members(self) -> Iterator[tuple[Member, IO[bytes] | None]]:
        with zipfile.ZipFile(self.path) as zf:
            for info in zf.infolist():
                with zf.open(info) as stream:
                    yield Member(info.filename, MemberKind.FILE, 0o644, info.file_size), stream


class ToyKind(SourceKind):
    name = "toy"
    suffixes = (".toy",)

    def open(self, path: str, spelled: str) -> ToyArchive:  # type: ignore[override]
        return ToyArchive(path)


@pytest.fixture
def toy() -> Iterator[None]:
    register(ToyKind())
    yield
    unregister("toy")


def test_toy_kind_in_the_catalog(toy: None) -> None:
    recipe = (
        'name = "nativelib-t"\nshort = "t"\nsummary = "s"\nsonames = ["libt.so.1"]\n'
        '[[sources]]\nname = "s"\nkind = "toy"\npackages = [{ name = "libt" }]\n'
    )
    # The kind's default rule: a package of a kind without an index needs a URL.
    with pytest.raises(CatalogError, match="toy package 'libt' needs a 'url'"):
        parse_catalog({"t.toml": recipe})
    ok = recipe.replace(
        '{ name = "libt" }', f'{{ url = "https://x/t.toy", sha256 = "{"a" * 64}" }}'
    )
    assert parse_catalog({"t.toml": ok}).get("t").source().kind == "toy"


def test_unknown_kind_without_registration() -> None:
    with pytest.raises(CatalogError, match="unknown source kind 'toy'"):
        parse_catalog(
            {
                "t.toml": 'name = "nativelib-t"\nshort = "t"\nsummary = "s"\n'
                'sonames = ["libt.so.1"]\n[[sources]]\nname = "s"\nkind = "toy"\n'
                'packages = [{ name = "libt" }]\n'
            }
        )


def test_toy_kind_built_end_to_end(
    toy: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host = Path(os.path.realpath("/usr/lib/x86_64-linux-gnu/libgomp.so.1"))
    if not host.exists():
        pytest.skip("no host libgomp")
    package = tmp_path / "libgomp.toy"
    with zipfile.ZipFile(package, "w") as zf:
        zf.write(host, f"usr/lib/{host.name}")
        zf.writestr("usr/share/doc/libgomp1/copyright", "GPL-3.0-or-later WITH GCC-exception-3.1\n")
    assert isinstance(open_archive(package), ToyArchive)  # found by its suffix
    out = tmp_path / "wheelhouse"
    assert main(["build", "gomp", "--from", f"toy:{package}", "-o", str(out)]) == 0
    (wheel,) = out.iterdir()
    assert capsys.readouterr().out.strip() == str(wheel)
    assert wheel.name.startswith("nativelib_gomp-12.2.0-py3-none-manylinux_2_")
    validate_wheel(wheel)
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    assert "nativelib.prefix/lib/libgomp.so.1" in names
