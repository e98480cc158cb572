"""Benchmark: ``nativelib resolve`` against ``pip install --dry-run``, and reading the
needs of many downstream wheels.

(a) A local simple index on 127.0.0.1 (PEP 503 HTML with PEP 658 metadata files) holds
    7 runtime distributions x 60 versions of synthetic runtime wheels (written with the
    project's own wheel writer: manifest, provides block, dependencies between them) and a
    ``pynativelib`` wheel. The same requirement strings are resolved by
    ``nativelib resolve STRINGS --index-url URL --json`` and by
    ``pip --isolated install --dry-run --ignore-installed --report FILE --index-url URL
    STRINGS``, each in a fresh process with an empty cache, best of ``--repeat``.
    Target: at least 10x faster than pip.
(b) The ELF needs of 100 downstream wheels (each holding a C++ extension compiled here and
    an OpenMP one): ``nativelib.resolver.needs.read_targets`` over them, in-process, best
    of ``--repeat``. Target: under 0.3 s.

    python scripts/bench_resolve.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

from nativelib.catalog import load_catalog
from nativelib.prefix import (
    Dependency,
    Library,
    Manifest,
    PackageProvenance,
    Provenance,
    index_filename,
    load_order,
    loader_index,
)
from nativelib.resolver.host import detect_host
from nativelib.resolver.needs import read_targets
from nativelib.runtime_wheels.builder import PROVIDES_BEGIN, PROVIDES_END
from nativelib.wheelfile import WheelFile, WheelPlan, write_wheel

SRC = Path(__file__).resolve().parent.parent / "src"
DISTS = {
    "nativelib-cxx14": (["libstdc++.so.6", "libgcc_s.so.1"], "GLIBCXX_3.4.", []),
    "nativelib-gomp": (["libgomp.so.1"], "GOMP_4.", []),
    "nativelib-gfortran5": (["libgfortran.so.5"], "GFORTRAN_", ["nativelib-cxx14"]),
    "nativelib-cudart-cu12": (["libcudart.so.12"], None, []),
    "nativelib-cudart-cu13": (["libcudart.so.13"], None, ["nativelib-cxx14"]),
    "nativelib-iomp": (["libiomp5.so"], "OMP_", []),
    "nativelib-mkl": (["libmkl_rt.so.2"], "MKL_", ["nativelib-iomp", "nativelib-gomp"]),
}
STRINGS = [
    "nativelib-cxx14>=1.10",
    "nativelib-gomp",
    "nativelib-gfortran5",
    "nativelib-cudart-cu12",
    "nativelib-cudart-cu13",
    "nativelib-mkl",
]


def _version(dist: str, i: int) -> str:
    if dist.startswith("nativelib-cudart-cu"):
        return f"{dist[-2:]}.{i // 10}.{i % 10}"
    return f"{1 + i // 20}.{i % 20}.0"


def _runtime_wheel(dist: str, i: int, out: Path) -> Path:
    sonames, family, deps = DISTS[dist]
    version = _version(dist, i)
    nodes = tuple(f"{family}{n}" for n in range(i + 1)) if family else (sonames[0],)
    libs = tuple(Library(s, f"lib/{s}", "0" * 64, 16, nodes, (), {}) for s in sonames)
    manifest = Manifest(
        dist, version, libs, load_order(libs), tuple(Dependency(d) for d in deps),
        Provenance("bench", "wheel", (PackageProvenance("x", version, "https://x", "0" * 64, "x"),),
                   "MIT", ()),
        "manylinux_2_17_x86_64",
    )  # fmt: skip
    files = [WheelFile(f"nativelib.prefix/lib/{s}", data=b"\x7fELF-fake-library") for s in sonames]
    files += [
        WheelFile(f"nativelib.prefix/{manifest.filename}", data=manifest.to_json().encode()),
        WheelFile(f"nativelib.prefix/{index_filename(dist)}", data=loader_index(manifest).encode()),
    ]
    block = "\n".join([PROVIDES_BEGIN, *(f"{s}: {' '.join(nodes)}" for s in sonames), PROVIDES_END])
    plan = WheelPlan(
        name=dist, version=version, tag="py3-none-manylinux_2_17_x86_64", files=tuple(files),
        summary=f"bench {dist}", requires_dist=("pynativelib", *deps), description=block,
    )  # fmt: skip
    return write_wheel(plan, out)


def _index(root: Path) -> None:
    """PEP 503 pages with PEP 658 metadata files for every wheel in root/files."""
    files = root / "files"
    by_project: dict[str, list[Path]] = {}
    for wheel in sorted(files.glob("*.whl")):
        project = wheel.name.split("-")[0].replace("_", "-").lower()
        by_project.setdefault(project, []).append(wheel)
        with zipfile.ZipFile(wheel) as zf:
            meta = zf.read(next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA")))
        (files / f"{wheel.name}.metadata").write_bytes(meta)
    for project, wheels in by_project.items():
        page = root / "simple" / project
        page.mkdir(parents=True)
        links = []
        for w in wheels:
            sha = hashlib.sha256(w.read_bytes()).hexdigest()
            msha = hashlib.sha256((files / f"{w.name}.metadata").read_bytes()).hexdigest()
            attrs = f'href="../../files/{w.name}#sha256={sha}" data-core-metadata="sha256={msha}"'
            links.append(f"<a {attrs}>{w.name}</a>")
        (page / "index.html").write_text("<html><body>\n" + "\n".join(links) + "\n</body></html>\n")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    latency = 0.0  # seconds added before each response (--latency)

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.latency:
            time.sleep(self.latency)
        super().do_GET()


def _best(fn: object, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - start)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--latency", type=float, default=0.0, metavar="MS",
        help="milliseconds the index waits before each response, as a remote index would "
        "(default 0: the issue's local index)",
    )  # fmt: skip
    args = parser.parse_args()
    _Quiet.latency = args.latency / 1000
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = root / "index/files"
        files.mkdir(parents=True)
        for dist in DISTS:
            for i in range(60):
                _runtime_wheel(dist, i, files)
        write_wheel(
            WheelPlan(
                name="pynativelib",
                version="0.1.0",
                tag="py3-none-any",
                files=(WheelFile("pynativelib_stub.py", data=b""),),
                summary="stub",
            ),
            files,
        )
        _index(root / "index")
        server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root / "index"))
        )
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/simple"
        # Both sides with bytecode, as pip installs leave them (PYTHONDONTWRITEBYTECODE in
        # the environment would otherwise make every run of ours compile its modules).
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(SRC)], check=True)
        pip_dir = subprocess.run(
            [sys.executable, "-c", "import os, pip; print(os.path.dirname(pip.__file__))"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        subprocess.run([sys.executable, "-m", "compileall", "-q", pip_dir], check=False)
        env = {
            **os.environ,
            "PYTHONPATH": str(SRC),
            "NATIVELIB_CUDA_DRIVER": "999.0",
            "NO_PROXY": "127.0.0.1",
        }

        def ours() -> None:
            cache = tempfile.mkdtemp(dir=tmp)
            argv = ["resolve", *STRINGS, "--index-url", url, "--json"]
            out = subprocess.run(
                [sys.executable, "-m", "nativelib", *argv], capture_output=True, text=True,
                env={**env, "NATIVELIB_CACHE_DIR": cache}, check=True,
            )  # fmt: skip
            ours.result = {e["name"]: e["version"] for e in json.loads(out.stdout)["resolved"]}  # type: ignore[attr-defined]

        def pip() -> None:
            report = Path(tempfile.mkdtemp(dir=tmp)) / "report.json"
            argv = ["--isolated", "install", "--dry-run", "--ignore-installed", "--no-cache-dir",
                    "--quiet", "--report", str(report), "--index-url", url, *STRINGS]  # fmt: skip
            subprocess.run(
                [sys.executable, "-m", "pip", *argv], capture_output=True, text=True, env=env,
                check=True,
            )  # fmt: skip
            doc = json.loads(report.read_text())
            pip.result = {i["metadata"]["name"]: i["metadata"]["version"] for i in doc["install"]}  # type: ignore[attr-defined]

        t_ours = _best(ours, args.repeat)
        t_pip = _best(pip, args.repeat)

        def floor() -> None:  # interpreter start-up and the imports resolve needs
            code = "import nativelib.cli, nativelib.resolver.command, nativelib.net.download"
            subprocess.run([sys.executable, "-c", code], env=env, check=True)

        t_floor = _best(floor, args.repeat)
        server.shutdown()

        # (b) the needs of 100 downstream wheels.
        exts = root / "exts"
        exts.mkdir()
        cpp = exts / "ext.cpp"
        cpp.write_text(
            "#include <string>\n#include <omp.h>\n"
            'extern "C" int f(const char *s) { std::string t(s); int n = 0;\n'
            "#pragma omp parallel for reduction(+ : n)\n"
            "for (int i = 0; i < 10; i++) n += t.size(); return n; }\n"
        )
        subprocess.run(
            ["g++", "-shared", "-fPIC", "-fopenmp", "-o", str(exts / "ext.so"), str(cpp)],
            check=True,
        )
        wheels = []
        for i in range(100):
            w = exts / f"pkg{i}-1.0-cp311-cp311-linux_x86_64.whl"
            with zipfile.ZipFile(w, "w", zipfile.ZIP_DEFLATED) as zf:
                zf.write(exts / "ext.so", f"pkg{i}/_ext.cpython-311-x86_64-linux-gnu.so")
                zf.writestr(f"pkg{i}/__init__.py", "")
            wheels.append(str(w))
        catalog, host = load_catalog(), detect_host()
        needs_box: dict[str, object] = {}
        t_needs = _best(
            lambda: needs_box.update(n=read_targets(wheels, catalog, host)), args.repeat
        )
        needed = sorted(needs_box["n"].requirements)  # type: ignore[attr-defined]

    print(f"python {sys.version.split()[0]}, best of {args.repeat}")
    print(f"(a) index: {len(DISTS)} distributions x 60 versions (+ pynativelib), PEP 658 metadata")
    print(f"    requirement strings: {' '.join(STRINGS)}")
    print(f"    nativelib resolve: {t_ours:.3f} s  -> {ours.result}")  # type: ignore[attr-defined]
    theirs = {k: v for k, v in pip.result.items() if k != "pynativelib"}  # type: ignore[attr-defined]
    print(f"    pip --dry-run:     {t_pip:.3f} s  -> {theirs}")
    print(f"    pip / ours: {t_pip / t_ours:.1f}x (target >= 10x)")
    print(
        f"    start-up floor (python + the imports resolve needs, nothing fetched): "
        f"{t_floor:.3f} s; pip / floor = {t_pip / t_floor:.1f}x"
    )
    if args.latency:
        print(f"    index latency: {args.latency:g} ms per request")
    print(f"(b) needs of 100 downstream wheels (C++ and OpenMP extension each): {t_needs:.3f} s")
    print("    (target < 0.3 s)")
    print(f"    runtimes needed: {', '.join(needed)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
