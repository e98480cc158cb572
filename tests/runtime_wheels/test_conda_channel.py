"""Building from a conda channel made by the test and served over HTTP on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import json
import os
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from archive_corpus import Entry, conda_bytes, tar_bytes, tar_bz2_bytes
from nativelib.catalog import load_catalog
from nativelib.errors import SourceError
from nativelib.net.download import DownloadPolicy, fetch, get_document
from nativelib.prefix import parse_manifest
from nativelib.runtime_wheels.builder import Input, build, plan_build
from nativelib.sources import resolve
from nativelib.wheelfile import validate_wheel

HOST_GOMP = Path(os.path.realpath("/usr/lib/x86_64-linux-gnu/libgomp.so.1"))
LICENSE = b"GCC RUNTIME LIBRARY EXCEPTION\nVersion 3.1, 31 March 2009\n"
FAST = DownloadPolicy(retries=1, backoff=0.01, timeout=10, progress=False)


def _package(fmt: str, build_string: str, number: int) -> tuple[str, bytes]:
    lib = HOST_GOMP.read_bytes()
    payload = [
        Entry("lib", kind="dir"),
        Entry(f"lib/{HOST_GOMP.name}", data=lib, mode=0o755),
        Entry("lib/libgomp.so.1", kind="symlink", target=HOST_GOMP.name),
    ]
    index = {"name": "libgomp", "version": "14.2.0", "build": build_string, "build_number": number,
             "license": "GPL-3.0-only WITH GCC-exception-3.1", "subdir": "linux-64", "depends": []}  # fmt: skip
    paths = {"paths_version": 1, "paths": [
        {"_path": f"lib/{HOST_GOMP.name}", "path_type": "hardlink", "sha256": hashlib.sha256(lib).hexdigest(), "size_in_bytes": len(lib)},
        {"_path": "lib/libgomp.so.1", "path_type": "softlink"},
    ]}  # fmt: skip
    info = [
        Entry("info/index.json", data=json.dumps(index).encode()),
        Entry("info/paths.json", data=json.dumps(paths).encode()),
        Entry("info/licenses/COPYING.RUNTIME", data=LICENSE),
    ]
    stem = f"libgomp-14.2.0-{build_string}"
    if fmt == "conda":
        return f"{stem}.conda", conda_bytes(tar_bytes(payload), info_tar=tar_bytes(info), stem=stem)
    return f"{stem}.tar.bz2", tar_bz2_bytes(payload, info=info)


@pytest.fixture
def channel(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    if not HOST_GOMP.is_file():
        pytest.skip("no host libgomp to package")
    root = tmp_path / "channel"
    subdir = root / "linux-64"
    subdir.mkdir(parents=True)
    repodata: dict[str, dict[str, object]] = {
        "info": {"subdir": "linux-64"},
        "packages": {},
        "packages.conda": {},
    }  # type: ignore[dict-item]
    for fmt, build_string, number in (
        ("conda", "h77fa898_2", 2),
        ("tar.bz2", "h77fa898_2", 2),
        ("tar.bz2", "h77fa898_1", 1),
    ):
        name, data = _package(fmt, build_string, number)
        (subdir / name).write_bytes(data)
        section = "packages.conda" if fmt == "conda" else "packages"
        repodata[section][name] = {
            "name": "libgomp", "version": "14.2.0", "build": build_string, "build_number": number,
            "sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "subdir": "linux-64",
        }  # fmt: skip
    (subdir / "repodata.json").write_text(json.dumps(repodata))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _get(url: str) -> tuple[bytes, str]:
    return get_document(url, policy=FAST)


def test_packages_are_real_conda_packages(channel: tuple[Path, str], tmp_path: Path) -> None:
    """conda-package-handling, conda's own library, reads what the test wrote."""
    cph = pytest.importorskip("conda_package_handling.api")
    root, _ = channel
    for name in ("libgomp-14.2.0-h77fa898_2.conda", "libgomp-14.2.0-h77fa898_1.tar.bz2"):
        dest = tmp_path / name
        cph.extract(str(root / "linux-64" / name), dest_dir=str(dest))
        assert (dest / "lib" / HOST_GOMP.name).read_bytes() == HOST_GOMP.read_bytes()
        assert json.loads((dest / "info/index.json").read_text())["name"] == "libgomp"


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [(None, "libgomp-14.2.0-h77fa898_2.conda"), ("*_1", "libgomp-14.2.0-h77fa898_1.tar.bz2")],
)
def test_build_from_the_channel(
    channel: tuple[Path, str], tmp_path: Path, pattern: str | None, expected: str
) -> None:
    _root, base = channel
    catalog = load_catalog()
    recipe = catalog.get("gomp")
    shipped = recipe.source("conda-forge")
    source = dataclasses.replace(
        shipped, channel=base, packages=(dataclasses.replace(shipped.packages[0], build=pattern),)
    )
    (resolved,) = resolve(source, _get)
    assert resolved.filename == expected  # .conda preferred; a build pattern can pick a .tar.bz2
    path = fetch(resolved.url, resolved.sha256, cache=tmp_path / "cache", policy=FAST)
    kind = "conda" if expected.endswith(".conda") else "tar.bz2"
    plan = plan_build(
        recipe,
        [Input(path, kind, resolved.url, resolved.sha256)],
        catalog=catalog,
        workdir=tmp_path / "w",
        source=source,
    )
    assert plan.version == "14.2.0"
    wheel = build(plan, tmp_path / "out")
    validate_wheel(wheel)
    with zipfile.ZipFile(wheel) as zf:
        assert zf.read("nativelib.prefix/lib/libgomp.so.1") == HOST_GOMP.read_bytes()
        assert (
            zf.read(
                "nativelib_gomp-14.2.0.dist-info/licenses/libgomp/info/licenses/COPYING.RUNTIME"
            )
            == LICENSE
        )
        manifest = parse_manifest(
            zf.read("nativelib.prefix/share/nativelib/runtimes/nativelib-gomp.json"), "m"
        )
    assert manifest.provenance.kind == "conda" and manifest.provenance.source == "conda-forge"
    assert manifest.provenance.packages[0].url == f"{base}/linux-64/{expected}"
    assert manifest.provenance.packages[0].sha256 == resolved.sha256


def test_sha256_mismatch_gives_a_clear_error_and_no_wheel(
    channel: tuple[Path, str], tmp_path: Path
) -> None:
    root, base = channel
    repodata = json.loads((root / "linux-64/repodata.json").read_text())
    repodata["packages.conda"]["libgomp-14.2.0-h77fa898_2.conda"]["sha256"] = "0" * 64
    (root / "linux-64/repodata.json").write_text(json.dumps(repodata))
    source = dataclasses.replace(load_catalog().get("gomp").source("conda-forge"), channel=base)
    (resolved,) = resolve(source, _get)
    with pytest.raises(SourceError, match=r"sha256 mismatch: expected 0{64}, got [0-9a-f]{64}"):
        fetch(resolved.url, resolved.sha256, cache=tmp_path / "cache", policy=FAST)
    leftovers = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert leftovers == []  # neither the wrong file nor a partial is kept: nothing to build from
