"""External libraries that are no runtime's: grafted by ``auditwheel repair`` itself.

A wheel whose shared objects NEED a library that no runtime distribution owns, that no
manylinux policy lets the host provide and that the wheel does not carry (libpng, a
libfoo built next to the extension) is first given to the real ``auditwheel repair``,
with ``--exclude`` for every runtime soname so that it never vendors a runtime; nativelib
then links the runtimes in auditwheel's output. There is no second grafting
implementation here: this module finds whether the step is needed and runs it.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from nativelib.abi import load_policies
from nativelib.catalog import Catalog
from nativelib.elf import ElfInfo
from nativelib.errors import RepairError

__all__ = ["external_needs", "find_auditwheel", "graft_with_auditwheel"]


def external_needs(infos: dict[str, ElfInfo], catalog: Catalog) -> list[tuple[str, str]]:
    """``(member, soname)`` for each NEEDED library that auditwheel must graft: not a
    runtime's, not the host's by policy, not carried by the wheel."""
    policies = load_policies()
    host = set(policies.host_libraries) | set(policies.loaders.values())
    inside = {posixpath.basename(a) for a in infos} | {i.soname for i in infos.values() if i.soname}
    out = []
    for arcname, info in sorted(infos.items()):
        for soname in info.needed:
            if soname in host or soname in inside or catalog.owner_of(soname) is not None:
                continue
            if soname.startswith(("ld-linux", "libmvec.so", "libexpat.so")):
                continue
            out.append((arcname, soname))
    return out


def find_auditwheel() -> str:
    """The ``auditwheel`` of this environment (the ``repair`` extra), else on PATH."""
    here = Path(sys.executable).parent / "auditwheel"
    if here.exists():
        return str(here)
    found = shutil.which("auditwheel")
    if found is None:
        raise RepairError(
            "auditwheel",
            "not found (the wheel needs external libraries that auditwheel grafts)",
            hint="pip install 'pynativelib[repair]'",
        )
    return found


def graft_with_auditwheel(
    wheel: Path,
    dest: Path,
    runtime_sonames: Iterable[str],
    patchelf: str | None = None,
) -> Path:
    """``auditwheel repair --exclude <each runtime soname> -w dest wheel``; the wheel it
    wrote. Its platform tag does not matter: nativelib decides the tag afterwards."""
    binary = find_auditwheel()
    cmd = [binary, "repair", "-w", str(dest)]
    for soname in sorted(set(runtime_sonames)):
        cmd += ["--exclude", soname]
    cmd.append(str(wheel))
    env = dict(os.environ)
    if patchelf is not None:
        env["PATH"] = f"{Path(patchelf).parent}{os.pathsep}{env.get('PATH', '')}"
    dest.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise RepairError(
            str(wheel),
            "auditwheel repair (grafting the external libraries "
            f"the wheel needs) failed: {' / '.join(tail) or done.returncode}",
            hint="the libraries must be findable: set LD_LIBRARY_PATH (or "
            "AUDITWHEEL_LD_LIBRARY_PATH) to their directory",
        )
    written = sorted(dest.glob("*.whl"))
    if len(written) != 1:
        raise RepairError(str(wheel), f"auditwheel wrote {len(written)} wheels, expected 1")
    return written[0]
