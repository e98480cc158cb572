"""The ``pynativelib`` sdist and wheel of a checkout, built by the PEP 517 front end
``build`` (``python -m build``: an isolated environment with the backend pyproject.toml
names), reproducibly.

The wheel setuptools writes is byte-identical for one ``SOURCE_DATE_EPOCH``; its sdist is
not (each member carries the mtime of its file, PKG-INFO's is the time of the build, and
the gzip header holds the time too). The sdist is therefore rewritten once, member for
member and in the same order, with every mtime clamped to ``SOURCE_DATE_EPOCH``, owner
``root:root`` (0/0) and the gzip header's time set to it: what setuptools wrote, bytes of
every member unchanged, made deterministic (what ``strip-nondeterminism`` does for a
Debian package; setuptools has no switch for it).
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

from nativelib.errors import NativeLibError
from nativelib.leftovers import owner_tag, remove_stale, temporary_tree
from nativelib.wheelfile import copy_wheel

__all__ = [
    "ProjectBuildError",
    "ProjectFiles",
    "build_project",
    "find_project",
    "normalize_sdist",
    "project_epoch",
]

#: The earliest time a zip entry can hold (1980-01-01): the epoch when nothing gives one.
_ZIP_EPOCH = 315532800


#: The temporary name of an sdist being published (the rule of nativelib.leftovers).
_SDIST_TEMP = r"\..+\.tar\.gz\.[0-9a-f-]+\.tmp"


class ProjectBuildError(NativeLibError):
    """The project's sdist or wheel could not be built."""


@dataclass(frozen=True)
class ProjectFiles:
    sdist: Path
    wheel: Path
    epoch: int


def find_project(given: Path | None) -> Path:
    """The checkout to build: ``given``, else the one this ``nativelib`` is imported from
    (an editable install or a source tree); a ProjectBuildError when neither has a
    pyproject.toml naming ``pynativelib``."""
    import nativelib  # noqa: PLC0415

    root = given if given is not None else Path(nativelib.__file__).resolve().parents[2]
    pyproject = root / "pyproject.toml"
    try:
        text = pyproject.read_text("utf-8")
    except OSError:
        text = ""
    if 'name = "pynativelib"' not in text:
        raise ProjectBuildError(
            f"{root}: not a pynativelib checkout (no pyproject.toml naming pynativelib)",
            hint="run from an editable install of the checkout (pip install -e .), "
            "or give --project DIR",
        )
    return root


def project_epoch(root: Path) -> int:
    """``$SOURCE_DATE_EPOCH`` if set, else the time of the checkout's last commit (git),
    else 1980-01-01."""
    raw = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if raw:
        try:
            return int(raw)
        except ValueError as e:
            raise ProjectBuildError(
                f"SOURCE_DATE_EPOCH: {raw!r} is not an integer number of seconds"
            ) from e
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "log", "-1", "--format=%ct"],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return _ZIP_EPOCH
    text = out.stdout.strip()
    return int(text) if out.returncode == 0 and text.isdigit() else _ZIP_EPOCH


def normalize_sdist(source: Path, dest: Path, epoch: int) -> None:
    """Rewrite the sdist ``source`` as ``dest``: same members, same order, same bytes;
    mtimes clamped to ``epoch``, owner 0:0 without names, gzip time ``epoch``."""
    buf = io.BytesIO()
    with (
        tarfile.open(source, "r:gz") as src,
        tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as out,
    ):
        for info in src:
            info.mtime = min(int(info.mtime), epoch)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.pax_headers = {}
            data = src.extractfile(info) if info.isreg() else None
            out.addfile(info, data)
    tmp = dest.with_name(f".{dest.name}.{owner_tag()}.tmp")
    try:
        with (
            open(tmp, "wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=epoch, compresslevel=9) as gz,
        ):
            gz.write(buf.getvalue())
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


def build_project(root: Path, out: Path, epoch: int) -> ProjectFiles:
    """Build the sdist, and the wheel from it, with ``python -m build``; publish both into
    ``out`` (temporary file, then rename: a killed run never leaves half a file under
    a final name). A file already there with the same bytes is left as it is."""
    import importlib.util  # noqa: PLC0415

    if importlib.util.find_spec("build") is None:
        raise ProjectBuildError(
            "the PEP 517 front end 'build' is not installed (python -m build)",
            hint="pip install 'pynativelib[release]' (or pip install build)",
        )
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(epoch))
    with temporary_tree("release") as work:
        dist = Path(work) / "dist"
        proc = subprocess.run(
            [sys.executable, "-m", "build", "--outdir", str(dist), str(root)],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            raise ProjectBuildError(
                f"python -m build {root} failed (exit {proc.returncode}):\n{tail}",
                hint="run python -m build in the checkout to see the whole log",
            )
        sdists = sorted(dist.glob("*.tar.gz"))
        wheels = sorted(dist.glob("*.whl"))
        if len(sdists) != 1 or len(wheels) != 1:
            raise ProjectBuildError(
                f"python -m build {root} gave {[p.name for p in sdists + wheels]}, "
                "expected one sdist and one wheel"
            )
        out.mkdir(parents=True, exist_ok=True)
        normal = Path(work) / sdists[0].name
        normalize_sdist(sdists[0], normal, epoch)
        sdist = out / normal.name
        if not _same_bytes(normal, sdist):
            remove_stale(out, _SDIST_TEMP)
            tmp = out / f".{normal.name}.{owner_tag()}.tmp"
            try:
                shutil.copyfile(normal, tmp)
                os.replace(tmp, sdist)
            finally:
                if tmp.exists():
                    tmp.unlink()
        wheel = out / wheels[0].name
        if not _same_bytes(wheels[0], wheel):
            copy_wheel(wheels[0], out)
    return ProjectFiles(sdist, wheel, epoch)


def _same_bytes(a: Path, b: Path) -> bool:
    try:
        if a.stat().st_size != b.stat().st_size:
            return False
        with open(a, "rb") as fa, open(b, "rb") as fb:
            while True:
                x, y = fa.read(1 << 20), fb.read(1 << 20)
                if x != y:
                    return False
                if not x:
                    return True
    except OSError:
        return False
