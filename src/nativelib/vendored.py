"""Recognise vendored copies of runtime libraries.

A wheel built with ``auditwheel repair`` carries its own copy of a runtime, renamed with a
hash (``pkg.libs/libgomp-f9a9ad78.so.1.0.0``, whose soname auditwheel rewrote to that file
name); others ship the file as it is (``torch/lib/libgomp.so.1``). A copy is identified by
its soname family (the soname it carries, else its file name, with auditwheel's hash
removed) *and* by the version nodes it defines (the recipe's ``signatures``), never by the
file name alone: ``libgomp.so.1`` that is really LLVM's ``libomp`` (conda's
``_openmp_mutex``) carries the soname ``libomp.so`` and is not taken for GNU libgomp.

Used by ``nativelib repair`` (what to remove) and ``nativelib doctor`` (what to report).
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass

from nativelib.catalog import Catalog
from nativelib.elf import ElfInfo

__all__ = ["RuntimeCopy", "canonical_name", "identify"]

# auditwheel names a grafted library <stem>-<first 8 hex digits of its sha256>.so<suffix>; a
# copy grafted twice (scipy-openblas vendored it, then numpy's repair) has two hashes:
# libgfortran-040039e1-0352e75f.so.5.0.0.
_HASHED = re.compile(
    r"^(?P<stem>.+?)-(?P<hash>[0-9a-f]{8}(?:-[0-9a-f]{8})*)(?P<rest>\.so(?:\..*)?)$"
)


@dataclass(frozen=True)
class RuntimeCopy:
    """A file that is a copy of a runtime library the catalog owns."""

    path: str
    #: The canonical soname it is a copy of, e.g. ``libgomp.so.1``.
    soname: str
    #: The soname the file itself carries (``libgomp-f9a9ad78.so.1.0.0``), if any.
    file_soname: str | None
    #: The runtime distribution that ships the canonical soname, e.g. ``nativelib-gomp``.
    distribution: str
    #: True when auditwheel renamed it (a hash in its name).
    renamed: bool
    definitions: frozenset[str]


def canonical_name(name: str) -> tuple[str, bool]:
    """``name`` without auditwheel's ``-<hash>``: ``("libgomp.so.1.0.0", True)``."""
    m = _HASHED.match(name)
    if m is None:
        return name, False
    return m["stem"] + m["rest"], True


def _match(name: str, pattern: str) -> str | None:
    """The canonical soname if ``name`` (hash removed) belongs to ``pattern``'s family:
    same stem, and a suffix that starts with the pattern's (``libgomp.so.1.0.0`` is in
    ``libgomp.so.1``'s family, ``libgfortran.so.3`` is not in ``libgfortran.so.5``'s)."""
    if ".so" not in name or ".so" not in pattern:
        return None
    stem, _, rest = name.partition(".so")
    p_stem, _, p_rest = pattern.partition(".so")
    if not fnmatch.fnmatchcase(stem, p_stem):
        return None
    if rest != p_rest and not rest.startswith(p_rest + "."):
        return None
    return f"{stem}.so{p_rest}"


def identify(path: str, info: ElfInfo, catalog: Catalog) -> RuntimeCopy | None:
    """The runtime ``path`` is a copy of, or None."""
    name = info.soname or os.path.basename(path)
    plain, renamed = canonical_name(name)
    defined = frozenset(info.version_definitions)
    for recipe in catalog.recipes.values():
        for pattern in recipe.sonames:
            soname = _match(plain, pattern)
            if soname is None or not recipe.owns(soname):
                continue
            if not defined.issuperset(recipe.signatures.get(soname, ())):
                continue
            return RuntimeCopy(
                path=path,
                soname=soname,
                file_soname=info.soname,
                distribution=recipe.name,
                renamed=renamed,
                definitions=defined,
            )
    return None
