"""``nativelib resolve`` / ``requires`` against real runtime wheels (Debian bookworm and
bullseye builds of nativelib-cxx14) served from a simple index on 127.0.0.1 (network:
the wheels are built from Debian's packages)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from nativelib.cli import main
from nativelib.elf import read_elf
from nativelib_testing import compile_extension

pytestmark = pytest.mark.network

EXT_CV = r"""
#include <Python.h>
#include <condition_variable>
#include <mutex>
void never_called(std::condition_variable &cv, std::unique_lock<std::mutex> &lock) { cv.wait(lock); }
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_cv", NULL, -1, NULL};
PyMODINIT_FUNC PyInit__cv(void) { return PyModule_Create(&module); }
"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def index_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("index")
    files = root / "files"
    for suite in ("bookworm", "bullseye"):
        assert main(["build", "cxx14", "--source", f"debian-{suite}", "-o", str(files)]) == 0
    # /simple offers PEP 658 metadata files; /plain does not (wheels are downloaded).
    for flavour in ("simple", "plain"):
        page = root / flavour / "nativelib-cxx14"
        page.mkdir(parents=True)
        links = []
        for w in sorted(files.glob("*.whl")):
            sha = hashlib.sha256(w.read_bytes()).hexdigest()
            attr = ""
            if flavour == "simple":
                with zipfile.ZipFile(w) as zf:
                    meta = zf.read(
                        next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
                    )
                (files / f"{w.name}.metadata").write_bytes(meta)
                attr = f' data-core-metadata="sha256={hashlib.sha256(meta).hexdigest()}"'
            links.append(f'<a href="../../files/{w.name}#sha256={sha}"{attr}>{w.name}</a>')
        (page / "index.html").write_text(
            "<!DOCTYPE html><html><body>\n" + "\n".join(links) + "\n</body></html>\n"
        )
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def ext(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = compile_extension(tmp_path_factory.mktemp("ext"), "_cv", EXT_CV)
    assert "GLIBCXX_3.4.30" in read_elf(path).version_needs["libstdc++.so.6"]
    return path


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NATIVELIB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NATIVELIB_CUDA_DRIVER", "none")


def test_resolves_to_the_bookworm_build(
    index_url: str, ext: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["resolve", str(ext), "--index-url", index_url, "--glibc", "2.36", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (entry,) = doc["resolved"]
    assert (entry["name"], entry["version"]) == ("nativelib-cxx14", "12.2.0")
    assert entry["url"].startswith(index_url.rsplit("/", 1)[0]) and len(entry["sha256"]) == 64
    assert "GLIBCXX_3.4.30" in entry["reason"] and "_cv" in entry["reason"]
    # A requirements file with hashes.
    out = tmp_path / "requirements.txt"
    assert (
        main(["resolve", str(ext), "--index-url", index_url, "--glibc", "2.36", "-o", str(out)])
        == 0
    )
    lines = out.read_text().splitlines()
    assert lines[1] == f"nativelib-cxx14==12.2.0 --hash=sha256:{entry['sha256']}"


def test_older_glibc_is_explained(
    index_url: str, ext: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["resolve", str(ext), "--index-url", index_url, "--glibc", "2.31"]) == 1
    err = capsys.readouterr().err
    assert "_cv" in err and "needs GLIBCXX_3.4.30" in err
    assert (
        "the newest nativelib-cxx14 that runs on glibc 2.31 is 10.2.1, which provides up to GLIBCXX_3.4.28"
        in err
    )
    assert "12.2.0 provides it but needs glibc 2.36" in err


def test_requires_lower_bound_from_the_nodes_checked_against_the_candidates(
    index_url: str, ext: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The bound is GLIBCXX_3.4.30's first release (GCC 12.1), not the oldest candidate
    that has it (12.2.0); with a target below that candidate's floor, a warning."""
    assert main(["requires", str(ext), "--index-url", index_url]) == 0
    assert capsys.readouterr().out.strip() == "Requires-Dist: nativelib-cxx14>=12.1"
    assert main(["requires", str(ext), "--index-url", index_url, "--glibc", "2.34"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == "Requires-Dist: nativelib-cxx14>=12.1"
    assert captured.err.startswith("warning: manylinux_2_34_x86_64: nativelib-cxx14>=12.1 ")
    assert "candidate floor is manylinux_2_36_x86_64 (nativelib-cxx14 12.2.0)" in captured.err
    # On manylinux_2_35 the policy guarantees GLIBCXX_3.4.30: nothing to require.
    assert (
        main(["requires", str(ext), "--index-url", index_url, "--plat", "manylinux_2_35_x86_64"])
        == 0
    )
    captured = capsys.readouterr()
    assert captured.out == "" and "not needed on manylinux_2_35_x86_64" in captured.err


def test_pep658_metadata_spares_the_download(
    index_url: str, ext: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    downloads = tmp_path / "cache/downloads"

    def wheels() -> list[str]:
        return sorted(p.name for p in downloads.rglob("*.whl")) if downloads.exists() else []

    assert main(["resolve", str(ext), "--index-url", index_url, "--glibc", "2.36", "--json"]) == 0
    (with_metadata,) = json.loads(capsys.readouterr().out)["resolved"]
    assert wheels() == []  # METADATA was enough: no wheel downloaded
    plain = index_url.rsplit("/", 1)[0] + "/plain"
    assert main(["resolve", str(ext), "--index-url", plain, "--glibc", "2.36", "--json"]) == 0
    (without,) = json.loads(capsys.readouterr().out)["resolved"]
    assert len(wheels()) == 1  # only the newest, which satisfies, is fetched (lazily)
    assert (with_metadata["version"], with_metadata["sha256"]) == (
        without["version"],
        without["sha256"],
    )
    assert with_metadata["version"] == "12.2.0"
