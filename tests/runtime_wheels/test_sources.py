"""Resolving recipe sources: Debian Packages indexes, conda repodata, the simple API."""

from __future__ import annotations

import functools
import http.server
import itertools
import json
import lzma
import shutil
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.tags import parse_tag

from nativelib.catalog import PackageRef, Source, load_catalog
from nativelib.errors import SourceError
from nativelib.net.download import DownloadPolicy, get_document
from nativelib.net.simple import parse_simple_index
from nativelib.sources import resolve, upstream_version
from nativelib.sources.conda_index import parse_repodata, pick_conda
from nativelib.sources.deb_index import _debian_version_key, parse_debian_packages, pick_debian
from nativelib.sources.wheel import linux_wheel_tags, pick_wheel

SHA_A, SHA_B, SHA_C = "a" * 64, "b" * 64, "c" * 64


def _apt_show(*packages: str) -> str:
    if shutil.which("apt-cache") is None:
        pytest.skip("apt-cache is not available (not a Debian host)")
    proc = subprocess.run(["apt-cache", "show", *packages], capture_output=True, text=True)
    if proc.returncode != 0 or "SHA256:" not in proc.stdout:
        pytest.skip(f"apt has no package lists here (run apt-get update): {proc.stderr.strip()}")
    return proc.stdout


def test_real_debian_stanzas() -> None:
    """apt-cache prints real Packages stanzas from the lists apt downloaded."""
    entries = parse_debian_packages(_apt_show("libstdc++6", "libgomp1", "gcc-12-base"), "apt")
    names = {e.package for e in entries}
    assert {"libstdc++6", "libgomp1", "gcc-12-base"} <= names
    std = [e for e in entries if e.package == "libstdc++6" and e.architecture == "amd64"]
    assert std and all(e.filename.startswith("pool/main/g/gcc-12/") for e in std)
    ref = PackageRef(name="libstdc++6")
    picked = pick_debian(entries, ref, "amd64", "https://deb.debian.org/debian", "apt")
    newest = max((e for e in std), key=lambda e: _debian_version_key(e.version))
    assert picked.version == newest.version
    assert picked.url == f"https://deb.debian.org/debian/{newest.filename}"
    assert picked.sha256 == newest.sha256 and len(picked.sha256) == 64
    assert upstream_version("deb", picked.version) == "12.2.0"


def test_debian_version_order_matches_dpkg() -> None:
    if shutil.which("dpkg") is None:
        pytest.skip("dpkg is not installed")
    versions = [
        "12.2.0-14",
        "12.2.0-14+deb12u1",
        "1:1.0-1",
        "1.0~rc1-1",
        "1.0-1",
        "1.0-1~bpo1",
        "1.0a-1",
        "1.0+b1",
        "10.2.1-6",
        "2.36-9+deb12u4",
        "1.0",
        "1.0-0",
        "1.0.1",
        "1.0-1.1",
    ]
    for a, b in itertools.permutations(versions, 2):
        dpkg_says = subprocess.run(["dpkg", "--compare-versions", a, "gt", b]).returncode == 0
        assert dpkg_says == (_debian_version_key(a) > _debian_version_key(b)), (a, b)


STANZAS = f"""Package: libgomp1
Version: 12.2.0-14
Architecture: amd64
Filename: pool/main/g/gcc-12/libgomp1_12.2.0-14_amd64.deb
Size: 116036
SHA256: {SHA_A}
Description: GCC OpenMP (GOMP) support library
 continuation line

Package: libgomp1
Version: 12.2.0-14+deb12u1
Architecture: amd64
Filename: pool/main/g/gcc-12/libgomp1_12.2.0-14+deb12u1_amd64.deb
SHA256: {SHA_B}

Package: libgomp1
Version: 12.2.0-14+deb12u1
Architecture: arm64
Filename: pool/main/g/gcc-12/libgomp1_12.2.0-14+deb12u1_arm64.deb
SHA256: {SHA_C}
"""


def test_pick_debian_version_and_arch() -> None:
    entries = parse_debian_packages(STANZAS, "Packages")
    newest = pick_debian(entries, PackageRef(name="libgomp1"), "amd64", "https://m/debian/", "P")
    assert (newest.version, newest.sha256) == ("12.2.0-14+deb12u1", SHA_B)
    assert newest.url == "https://m/debian/pool/main/g/gcc-12/libgomp1_12.2.0-14+deb12u1_amd64.deb"
    pinned = pick_debian(
        entries, PackageRef(name="libgomp1", version="12.2.0-14"), "amd64", "https://m", "P"
    )
    assert (pinned.sha256, pinned.size) == (SHA_A, 116036)
    arm = pick_debian(entries, PackageRef(name="libgomp1"), "arm64", "https://m", "P")
    assert arm.sha256 == SHA_C
    with pytest.raises(SourceError, match=r"no package 'libgomp1 13\.1' for amd64"):
        pick_debian(entries, PackageRef(name="libgomp1", version="13.1"), "amd64", "https://m", "P")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Package: x\nVersion: 1\nFilename: f\n", r"stanza 1 \(x\): missing SHA256"),
        (
            f"Package: x\nVersion: 1\nFilename: f\nSHA256: {SHA_A}\n\nno colon here\n",
            "stanza 2: malformed line",
        ),
        ("Package: x\nVersion: 1\nFilename: f\nSHA256: xyz\n", "bad SHA256 'xyz'"),
    ],
)
def test_bad_debian_index(text: str, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        parse_debian_packages(text, "Packages")


def repodata() -> dict[str, object]:
    def rec(name: str, version: str, build: str, number: int, sha: str) -> dict[str, object]:
        return {
            "name": name,
            "version": version,
            "build": build,
            "build_number": number,
            "sha256": sha,
            "size": 10,
        }

    return {
        "info": {"subdir": "linux-64"},
        "packages": {
            "libgomp-14.2.0-h77fa898_1.tar.bz2": rec("libgomp", "14.2.0", "h77fa898_1", 1, SHA_A),
            "libgomp-14.2.0-h77fa898_2.tar.bz2": rec("libgomp", "14.2.0", "h77fa898_2", 2, SHA_B),
        },
        "packages.conda": {
            "libgomp-14.2.0-h77fa898_2.conda": rec("libgomp", "14.2.0", "h77fa898_2", 2, SHA_C),
            "libgomp-13.2.0-h807b86a_5.conda": rec("libgomp", "13.2.0", "h807b86a_5", 5, SHA_A),
        },
    }


def test_pick_conda_prefers_highest_build_then_conda_format() -> None:
    entries = parse_repodata(json.dumps(repodata()).encode(), "repodata.json")
    assert len(entries) == 4
    best = pick_conda(
        entries, PackageRef(name="libgomp", version="14.2.0"), "https://ch/", "linux-64", "r"
    )
    assert best.filename == "libgomp-14.2.0-h77fa898_2.conda" and best.sha256 == SHA_C
    assert best.url == "https://ch/linux-64/libgomp-14.2.0-h77fa898_2.conda"
    old_build = pick_conda(
        entries,
        PackageRef(name="libgomp", version="14.2.0", build="*_1"),
        "https://ch",
        "linux-64",
        "r",
    )
    assert old_build.filename.endswith("_1.tar.bz2")
    with pytest.raises(SourceError, match=r"no conda package 'libgomp 15\.1\.0'"):
        pick_conda(
            entries, PackageRef(name="libgomp", version="15.1.0"), "https://ch", "linux-64", "r"
        )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "invalid repodata.json"),
        (b"[]", "not an object"),
        (
            json.dumps({"packages": {"x.tar.bz2": {"name": "x"}}}).encode(),
            "x.tar.bz2: record lacks",
        ),
        (
            json.dumps(
                {"packages": {"x.tar.bz2": {"name": "x", "version": "1", "sha256": "no"}}}
            ).encode(),
            "bad sha256",
        ),
    ],
)
def test_bad_repodata(body: bytes, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        parse_repodata(body, "repodata.json")


HTML = f"""<!DOCTYPE html><html><body>
<a href="https://files.example/p/nvidia_cuda_runtime_cu12-12.9.79-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl#sha256={SHA_A}">w1</a>
<a href="../../p/nvidia_cuda_runtime_cu12-12.9.79-py3-none-manylinux2014_aarch64.manylinux_2_17_aarch64.whl#sha256={SHA_B}">w2</a>
<a href="https://files.example/p/nvidia_cuda_runtime_cu12-12.9.79-py3-none-win_amd64.whl#sha256={SHA_C}">w3</a>
<a href="https://files.example/p/nvidia_cuda_runtime_cu12-12.8.57-py3-none-manylinux2014_x86_64.whl" data-yanked="">old</a>
</body></html>""".encode()


def test_simple_index_html_and_json() -> None:
    base = "https://index.example/simple/nvidia-cuda-runtime-cu12/"
    files = parse_simple_index(HTML, "text/html", base)
    assert [f.sha256 for f in files[:3]] == [SHA_A, SHA_B, SHA_C]
    assert (
        files[1].url
        == "https://index.example/p/nvidia_cuda_runtime_cu12-12.9.79-py3-none-manylinux2014_aarch64.manylinux_2_17_aarch64.whl"
    )
    assert files[3].yanked and files[3].sha256 is None
    as_json = json.dumps(
        {
            "meta": {"api-version": "1.0"},
            "name": "x",
            "files": [
                {
                    "filename": f.filename,
                    "url": f.url,
                    "hashes": {"sha256": f.sha256} if f.sha256 else {},
                    "yanked": f.yanked,
                }
                for f in files
            ],
        }
    ).encode()
    assert parse_simple_index(as_json, "application/vnd.pypi.simple.v1+json", base) == files
    with pytest.raises(SourceError, match="invalid PEP 691"):
        parse_simple_index(b"{}", "application/vnd.pypi.simple.v1+json", base)


def test_pick_wheel_by_platform() -> None:
    files = parse_simple_index(HTML, "text/html", "https://index.example/simple/x/")
    ref = PackageRef(name="nvidia-cuda-runtime-cu12", version="12.9.79")
    x86 = pick_wheel(files, ref, linux_wheel_tags("x86_64"), "idx")
    assert "x86_64" in x86.filename and x86.sha256 == SHA_A
    arm = pick_wheel(files, ref, linux_wheel_tags("aarch64"), "idx")
    assert "aarch64" in arm.filename and arm.sha256 == SHA_B
    with pytest.raises(SourceError, match=r"no wheel of 'nvidia-cuda-runtime-cu12 12\.8\.57'"):
        pick_wheel(
            files,
            PackageRef(name="nvidia-cuda-runtime-cu12", version="12.8.57"),
            linux_wheel_tags(),
            "idx",
        )
    no_hash = parse_simple_index(
        HTML.replace(f"#sha256={SHA_A}".encode(), b""), "text/html", "https://i/"
    )
    with pytest.raises(SourceError, match="gives no sha256"):
        pick_wheel(no_hash, ref, linux_wheel_tags("x86_64"), "idx")
    # manylinux_2_17 glibc floor: a 2_28-only host list still accepts it, a 2_5 one does not.
    assert pick_wheel(
        files,
        ref,
        list(parse_tag("py3-none-manylinux_2_28_x86_64"))
        + list(parse_tag("py3-none-manylinux_2_17_x86_64")),
        "i",
    )
    with pytest.raises(SourceError):
        pick_wheel(files, ref, list(parse_tag("py3-none-manylinux_2_5_x86_64")), "idx")


@pytest.mark.parametrize(
    ("kind", "version", "upstream"),
    [
        ("deb", "12.2.0-14+deb12u1", "12.2.0"),
        ("deb", "1:10.2.1-6", "10.2.1"),
        ("deb", "2.36", "2.36"),
        ("conda", "14.2.0", "14.2.0"),
        ("wheel", "12.9.79", "12.9.79"),
        ("rpm", "8.5.0", "8.5.0"),
    ],
)
def test_upstream_version(kind: str, version: str, upstream: str) -> None:
    assert upstream_version(kind, version) == upstream


def test_upstream_version_not_pep440() -> None:
    with pytest.raises(SourceError, match="not a PEP 440 version"):
        upstream_version("conda", "one point oh")


# --------------------------------------------------------------------------- resolve over HTTP


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def guess_type(self, path: str) -> str:  # type: ignore[override]
        return (
            "text/html"
            if str(path).endswith("/") or str(path).endswith(".html")
            else super().guess_type(path)
        )


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    handler = functools.partial(_Quiet, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _get(url: str) -> tuple[bytes, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read(), response.headers.get("Content-Type", "")


def test_resolve_over_http(served: tuple[Path, str]) -> None:
    root, base = served
    pkgs = root / "debian/dists/bookworm/main/binary-amd64"
    pkgs.mkdir(parents=True)
    (pkgs / "Packages.xz").write_bytes(lzma.compress(STANZAS.encode()))
    (root / "conda/linux-64").mkdir(parents=True)
    (root / "conda/linux-64/repodata.json").write_text(json.dumps(repodata()))
    (root / "simple/nvidia-cuda-runtime-cu12").mkdir(parents=True)
    (root / "simple/nvidia-cuda-runtime-cu12/index.html").write_bytes(HTML)

    deb = Source(
        name="d",
        kind="deb",
        suite="bookworm",
        mirror=f"{base}/debian",
        packages=(PackageRef(name="libgomp1"),),
    )
    (got,) = resolve(deb, _get)
    assert got.url.startswith(f"{base}/debian/pool/") and got.sha256 == SHA_B
    conda = Source(
        name="c",
        kind="conda",
        channel=f"{base}/conda",
        packages=(PackageRef(name="libgomp", version="13.2.0"),),
    )
    (got,) = resolve(conda, _get)
    assert got.url == f"{base}/conda/linux-64/libgomp-13.2.0-h807b86a_5.conda"
    wheel = Source(
        name="w",
        kind="wheel",
        index_url=f"{base}/simple",
        packages=(PackageRef(name="nvidia_cuda_runtime_cu12", version="12.9.79"),),
    )
    (got,) = resolve(wheel, _get)
    assert got.sha256 == SHA_A
    rpm = Source(
        name="r",
        kind="rpm",
        packages=(PackageRef(url=f"{base}/x/libgomp-8.5.0-1.el8.x86_64.rpm", sha256=SHA_C),),
    )
    (got,) = resolve(rpm, _get)
    assert (got.filename, got.sha256) == ("libgomp-8.5.0-1.el8.x86_64.rpm", SHA_C)
    (pkgs / "Packages.xz").write_bytes(b"not xz")
    with pytest.raises(SourceError, match="cannot decompress the Packages index"):
        resolve(deb, _get)


# --------------------------------------------------------------------------- the real indexes


def _real_get(url: str) -> tuple[bytes, str]:
    """What ``nativelib build`` reads indexes with: our own client, over real HTTPS."""
    return get_document(url, policy=DownloadPolicy(retries=2, timeout=60, progress=False))


@pytest.mark.network
@pytest.mark.parametrize(
    ("runtime", "source", "upstream"),
    [("cxx14", "debian-bookworm", "12.2.0"), ("cxx14", "debian-bullseye", "10.2.1")],
)
def test_resolve_real_debian(runtime: str, source: str, upstream: str) -> None:
    resolved = resolve(load_catalog().get(runtime).source(source), _real_get)
    assert [r.name for r in resolved] == [
        p.name for p in load_catalog().get(runtime).source(source).packages
    ]
    assert all(r.url.startswith("https://deb.debian.org/debian/pool/main/g/") for r in resolved)
    assert upstream_version("deb", resolved[0].version) == upstream


@pytest.mark.network
def test_resolve_real_pypi() -> None:
    runtime, crt = resolve(load_catalog().get("cudart-cu12").source(), _real_get)
    assert (
        runtime.filename.startswith("nvidia_cuda_runtime_cu12-12.9.79-")
        and "x86_64" in runtime.filename
    )
    # The crt/ headers cuda_runtime_api.h includes: CUDA 12 ships them with nvcc.
    assert crt.filename.startswith("nvidia_cuda_nvcc_cu12-12.9.86-") and "x86_64" in crt.filename
    assert len(runtime.sha256) == len(crt.sha256) == 64
