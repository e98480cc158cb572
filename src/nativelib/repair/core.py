"""Devendoring a wheel: plan, then apply.

:func:`plan_repair` reads a verified, extracted wheel (:mod:`.wheelio`) and decides
everything: which files are vendored runtime copies (:mod:`nativelib.vendored`), which
shared objects need them and how each one's DT_NEEDED and RPATH/RUNPATH change
(:mod:`.elfpatch`), the ``Requires-Dist`` lines (lower bounds from the resolver), the new
platform tag and file name, and the optional preload hook. :func:`apply_repair` runs the
editor once on each extracted copy that changes, checks every edit, and writes the new
wheel next to nothing else: a temporary file renamed into place, or nothing at all on
any error. Only what changes is written again (the edited ELF files, METADATA, WHEEL,
RECORD, hooks); every other member is copied compressed, byte for byte, from the input
(:class:`~nativelib.wheelfile.plan.StoredMember`).
"""

from __future__ import annotations

import ast
import json
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement
from packaging.requirements import Requirement as PkgRequirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from nativelib.catalog import Catalog
from nativelib.elf import ElfInfo, has_elf_magic, read_elf
from nativelib.errors import ElfError, RepairError, WheelError
from nativelib.prefix import LIB_DIR, PREFIX_DIRNAME
from nativelib.repair.elfpatch import Editor, ElfEdit, check_edit
from nativelib.repair.graft import classify_needs
from nativelib.resolver.candidates import Source
from nativelib.resolver.model import Need, Requirement
from nativelib.resolver.needs import Needs
from nativelib.resolver.target import TargetDecision, decide_target
from nativelib.vendored import RuntimeCopy, identify
from nativelib.wheelfile import WheelFile, write_members
from nativelib.wheelfile.read import Member, WheelContents

__all__ = [
    "PRELOAD_MODULE",
    "LinkOptions",
    "RepairPlan",
    "apply_repair",
    "declared_requirements",
    "plan_repair",
]

#: The hook module ``--add-preload`` adds to each package that holds repaired objects.
PRELOAD_MODULE = "_nativelib_preload"
_SO_NAME = re.compile(r"\.so(\.[0-9]+)*$|\.so\.")
_DATA_ROOTS = ("purelib", "platlib")


@dataclass
class RepairPlan:
    wheel: WheelContents
    copies: list[RuntimeCopy] = field(default_factory=list)
    edits: list[ElfEdit] = field(default_factory=list)
    infos: dict[str, ElfInfo] = field(default_factory=dict)  # arcname -> before the edit
    requirements: dict[str, Requirement] = field(default_factory=dict)
    requires_dist: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    old_platforms: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    filename: str = ""
    preload_hooks: dict[str, str] = field(default_factory=dict)  # package dir -> module text
    init_edits: dict[str, bytes] = field(default_factory=dict)  # arcname -> new __init__.py
    target: TargetDecision | None = None  # the tag and required runtimes, decided together
    choices: list[str] = field(default_factory=list)  # why each runtime is (not) required
    metadata_current: bool = True  # METADATA already has every Requires-Dist line

    @property
    def removed(self) -> set[str]:
        return {c.path for c in self.copies}

    @property
    def bytes_removed(self) -> int:
        return sum(m.size for m in self.wheel.members if m.arcname in self.removed)

    @property
    def changes_anything(self) -> bool:
        return bool(
            self.copies
            or self.edits
            or self.preload_hooks
            or self.platforms != self.old_platforms
            or not self.metadata_current
        )

    def describe(self) -> list[str]:
        lines = []
        for c in self.copies:
            size = next(m.size for m in self.wheel.members if m.arcname == c.path)
            lines.append(
                f"remove  {c.path}  (a copy of {c.soname}, shipped by {c.distribution}; "
                f"{size} bytes)"
            )
        for e in self.edits:
            lines += e.describe()
        for pkg in sorted(self.preload_hooks):
            lines.append(f"add     {pkg}/{PRELOAD_MODULE}.py (imported first by its __init__.py)")
        for line in self.requires_dist:
            lines.append(f"require Requires-Dist: {line}")
        old, new = ".".join(self.old_platforms), ".".join(self.platforms)
        if old != new:
            lines.append(f"tag     {old} -> {new}")
        lines += self.choices
        lines += [f"note    {n}" for n in self.notes]
        return lines


# --------------------------------------------------------------------------- planning


def _install_root(arcname: str, dist_info: str) -> str | None:
    """The directory (in wheel paths) that ``arcname`` is installed relative to:
    "" for the wheel root, ``x.data/platlib`` for those; None for scripts, data, headers."""
    data_dir = dist_info[: -len(".dist-info")] + ".data"
    if arcname.startswith(data_dir + "/"):
        parts = arcname.split("/")
        if len(parts) > 2 and parts[1] in _DATA_ROOTS:
            return f"{parts[0]}/{parts[1]}"
        return None
    return ""


def _relative(path: str, root: str) -> str:
    return path[len(root) + 1 :] if root else path


def _expand_origin(entry: str, member_dir: str) -> str | None:
    """A search path entry as a wheel path (relative to the install root), when it is
    ``$ORIGIN``-relative; None otherwise."""
    for token in ("$ORIGIN", "${ORIGIN}"):
        if entry == token or entry.startswith(token + "/"):
            rest = entry[len(token) :].lstrip("/")
            joined = posixpath.normpath(posixpath.join(member_dir, rest) if rest else member_dir)
            return "" if joined == "." else joined
    return None


def _prefix_entry(member_dir: str) -> str:
    depth = 0 if not member_dir else member_dir.count("/") + 1
    up = "/".join([".."] * depth)
    return (
        f"$ORIGIN/{up}/{PREFIX_DIRNAME}/{LIB_DIR}" if up else f"$ORIGIN/{PREFIX_DIRNAME}/{LIB_DIR}"
    )


def _new_search_path(
    info: ElfInfo,
    member_dir: str,
    kept_dirs: set[str],
    removed_dirs: set[str],
    *,
    prefix: bool = True,
) -> tuple[tuple[str, ...], str]:
    kind = "rpath" if info.rpath and not info.runpath else "runpath"
    old = info.rpath if kind == "rpath" else info.runpath
    out: list[str] = []
    for entry in old:
        target = _expand_origin(entry, member_dir)
        if target is not None and target.startswith("../"):
            target = None  # outside the wheel: not ours to judge
        if target is not None and target in removed_dirs and target not in kept_dirs:
            continue  # it only pointed at removed copies
        if entry not in out:
            out.append(entry)
    entry = _prefix_entry(member_dir)
    if prefix and entry not in out:
        out.append(entry)
    return tuple(out), kind


def _is_shared_object_name(name: str) -> bool:
    return bool(_SO_NAME.search(posixpath.basename(name)))


def _read_elves(wheel: WheelContents) -> dict[str, ElfInfo]:
    infos: dict[str, ElfInfo] = {}
    for m in wheel.members:
        if m.arcname.startswith(wheel.dist_info + "/"):
            continue
        elf = has_elf_magic(m.path)
        if not elf:
            if _is_shared_object_name(m.arcname):
                raise RepairError(
                    f"{wheel.source}!{m.arcname}",
                    "named like a shared object but not an ELF file",
                )
            continue
        try:
            infos[m.arcname] = read_elf(m.path)
        except ElfError as e:
            raise RepairError(f"{wheel.source}!{m.arcname}", e.reason) from e
    return infos


def _filename(wheel: WheelContents, platforms: tuple[str, ...]) -> str:
    pythons = ".".join(sorted({t.interpreter for t in wheel.tags}))
    abis = ".".join(sorted({t.abi for t in wheel.tags}))
    parts = [wheel.name_part, wheel.version_part]
    if wheel.build_part:
        parts.append(wheel.build_part)
    parts += [pythons, abis, ".".join(platforms)]
    return "-".join(parts) + ".whl"


def _insert_import(arcname: str, source: bytes) -> bytes:
    """``source`` with ``from . import _nativelib_preload`` after its docstring and
    ``from __future__`` imports (both must stay first)."""
    try:
        tree = ast.parse(source, arcname)
    except (SyntaxError, ValueError) as e:
        raise RepairError(arcname, f"--add-preload: cannot parse it: {e}") from e
    line = 0
    for i, node in enumerate(tree.body):
        docstring = (
            i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        )  # fmt: skip
        future = isinstance(node, ast.ImportFrom) and node.module == "__future__"
        if not (docstring or future):
            break
        line = node.end_lineno or line
    lines = source.splitlines(keepends=True)
    if lines and not lines[-1].endswith(b"\n") and line >= len(lines):
        lines[-1] += b"\n"
    hook = f"from . import {PRELOAD_MODULE}  # noqa: F401 (nativelib repair)\n".encode()
    return b"".join([*lines[:line], hook, *lines[line:]])


def _preload_text(distributions: Iterable[str]) -> str:
    names = ", ".join(repr(d) for d in sorted(distributions))
    return (
        '"""Added by nativelib repair: load the shared runtime libraries this package\'s\n'
        "extension modules need before any of them is imported (for installs that their\n"
        'RUNPATH cannot reach: --user, --target, a different prefix)."""\n\n'
        "import nativelib\n\n"
        f"nativelib.load({names})\n"
    )


def _text(wheel: WheelContents, member: Member) -> str:
    try:
        return member.path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise RepairError(str(wheel.source), f"{member.arcname} is not UTF-8: {e}") from e


def _import_packages(wheel: WheelContents) -> dict[str, str]:
    """The wheel's top-level import packages: name -> the directory (a wheel path) that
    holds its ``__init__.py``, below the wheel root or ``.data/platlib``/``purelib``.
    Names come from ``top_level.txt`` where it lists any such package, else from the
    members; ``.libs`` folders (auditwheel's, numpy's runtime copies) and the
    ``.dist-info``/``.data`` directories are never packages."""
    found: dict[str, str] = {}
    for m in wheel.members:
        if not m.arcname.endswith("/__init__.py"):
            continue
        root = _install_root(m.arcname, wheel.dist_info)
        if root is None:
            continue
        parts = _relative(m.arcname, root).split("/")
        if len(parts) != 2 or parts[0].endswith((".libs", ".dist-info", ".data")):
            continue
        if parts[0] == PREFIX_DIRNAME or not parts[0].isidentifier():
            continue
        found.setdefault(parts[0], f"{root}/{parts[0]}" if root else parts[0])
    top_level = wheel.member(f"{wheel.dist_info}/top_level.txt")
    if top_level is not None:
        listed = {ln.strip() for ln in _text(wheel, top_level).splitlines()}
        chosen = {k: v for k, v in found.items() if k in listed}
        if chosen:
            return chosen
    return found


def _plan_preload(plan: RepairPlan, users: Mapping[str, set[str]]) -> None:
    """The ``--add-preload`` hooks: ``users`` maps the first path component (below the
    install root) of each object that needs a runtime to the runtime distributions. An
    object inside an import package gets the hook in that package; one elsewhere (a
    ``.libs`` folder: ``numpy.libs/libscipy_openblas...so`` needing libgfortran) may be
    loaded by any package, so every top-level package gets its runtimes."""
    wheel = plan.wheel
    tops = _import_packages(wheel)
    hooks: dict[str, set[str]] = {}
    shared: set[str] = set()
    for key, dists in users.items():
        if key in tops:
            hooks.setdefault(key, set()).update(dists)
        else:
            shared |= dists
    if shared:
        for pkg in tops:
            hooks.setdefault(pkg, set()).update(shared)
    if not hooks:
        raise RepairError(
            str(wheel.source),
            "--add-preload: the wheel has no top-level import package (a directory with an "
            "__init__.py; from top_level.txt or the members, .libs folders left out) to "
            "import the hook from",
        )
    for pkg in sorted(hooks):
        directory = tops[pkg]
        init = f"{directory}/__init__.py"
        member = wheel.member(init)
        assert member is not None  # _import_packages found it
        plan.preload_hooks[directory] = _preload_text(hooks[pkg])
        plan.init_edits[init] = _insert_import(init, member.read_bytes())


def _metadata(wheel: WheelContents, requires: Sequence[str]) -> bytes:
    member = wheel.member(f"{wheel.dist_info}/METADATA")
    if member is None:
        raise RepairError(str(wheel.source), f"{wheel.dist_info}/METADATA is missing")
    text = _text(wheel, member)
    head, sep, body = text.partition("\n\n")
    lines = head.split("\n")
    names = {canonicalize_name(PkgRequirement(r).name) for r in requires}
    kept = []
    for line in lines:
        if line.lower().startswith("requires-dist:"):
            value = line.split(":", 1)[1].strip()
            try:
                req = PkgRequirement(value)
            except InvalidRequirement:
                kept.append(line)
                continue
            if canonicalize_name(req.name) in names and req.marker is None and not req.extras:
                continue  # replaced by ours
        kept.append(line)
    # Requires-Dist after the last existing one (or at the end of the headers).
    last = max(
        (i for i, ln in enumerate(kept) if ln.lower().startswith("requires-dist:")), default=-1
    )
    at = last + 1 if last >= 0 else len(kept)
    while at > 0 and at == len(kept) and kept[at - 1] == "":
        at -= 1
    new = [*kept[:at], *(f"Requires-Dist: {r}" for r in requires), *kept[at:]]
    return ("\n".join(new) + sep + body).encode("utf-8")


def _wheel_file(wheel: WheelContents, platforms: tuple[str, ...]) -> bytes:
    member = wheel.member(f"{wheel.dist_info}/WHEEL")
    if member is None:
        raise RepairError(str(wheel.source), f"{wheel.dist_info}/WHEEL is missing")
    lines = _text(wheel, member).splitlines()
    out = [ln for ln in lines if not ln.lower().startswith("tag:")]
    while out and out[-1] == "":
        out.pop()
    for py in sorted({t.interpreter for t in wheel.tags}):
        for abi in sorted({t.abi for t in wheel.tags}):
            for plat in platforms:
                out.append(f"Tag: {py}-{abi}-{plat}")
    return ("\n".join(out) + "\n\n").encode("utf-8")


@dataclass(frozen=True)
class LinkOptions:
    """How repair links a wheel to the runtime wheels: the candidates to cross-check the
    bounds and the tag against (None: none known), the target tag (``--plat``, None: the
    lowest that works) and the runtimes required even where the policy would do
    (``--runtime``)."""

    candidates: Source | None = None
    plat: str | None = None
    forced: frozenset[str] = frozenset()


def _requires_dist(wheel: WheelContents) -> list[PkgRequirement]:
    """METADATA's ``Requires-Dist`` lines, parsed (a line that does not parse left out)."""
    member = wheel.member(f"{wheel.dist_info}/METADATA")
    if member is None:
        return []
    out = []
    for line in _text(wheel, member).partition("\n\n")[0].split("\n"):
        if line.lower().startswith("requires-dist:"):
            try:
                out.append(PkgRequirement(line.split(":", 1)[1].strip()))
            except InvalidRequirement:
                continue
    return out


def declared_requirements(wheel: WheelContents) -> dict[str, SpecifierSet]:
    """The unconditional ``Requires-Dist`` specifiers on ``nativelib-*`` in METADATA."""
    return {
        canonicalize_name(req.name): req.specifier
        for req in _requires_dist(wheel)
        if canonicalize_name(req.name).startswith("nativelib-")
        and req.marker is None
        and not req.extras
    }


def requirement_names(wheel: WheelContents) -> frozenset[str]:
    """The canonical names of the distributions METADATA's ``Requires-Dist`` lines name
    whatever the platform (those only under an extra left out: they may not be
    installed)."""
    return frozenset(
        canonicalize_name(req.name)
        for req in _requires_dist(wheel)
        if req.marker is None or "extra" not in str(req.marker)
    )


def _already(wheel: WheelContents, requires: Sequence[str]) -> bool:
    """Whether METADATA already has exactly these Requires-Dist lines."""
    member = wheel.member(f"{wheel.dist_info}/METADATA")
    if member is None:
        return False
    head = _text(wheel, member).partition("\n\n")[0].split("\n")
    have = {ln.split(":", 1)[1].strip() for ln in head if ln.lower().startswith("requires-dist:")}
    return all(r in have for r in requires)


def _linux_arch(wheel: WheelContents, infos: Iterable[ElfInfo]) -> str | None:
    """The architecture when every platform tag is ``linux_*``/``manylinux*``."""
    platforms = {t.platform for t in wheel.tags}
    if not platforms or not all(p.startswith(("manylinux", "linux_")) for p in platforms):
        return None
    machines = {i.machine_name for i in infos}
    return machines.pop() if len(machines) == 1 else None


def plan_repair(
    wheel: WheelContents,
    catalog: Catalog,
    *,
    link: LinkOptions | None = None,
    add_preload: bool = False,
) -> RepairPlan:
    """Everything :func:`apply_repair` will do; nothing is changed here.

    Every ELF member's NEEDED sonames that the catalog owns are linked: a vendored copy
    is removed (DT_NEEDED renamed back to the soname); an object that needs a runtime
    the wheel requires gets the prefix entry in its RPATH/RUNPATH. Which runtimes are
    required and the tag are decided together (:func:`nativelib.resolver.target.
    decide_target`), with the bounds of :mod:`nativelib.resolver.bounds`."""
    link = link or LinkOptions()
    plan = RepairPlan(wheel)
    plan.infos = infos = _read_elves(wheel)
    for arcname, info in infos.items():
        copy = identify(arcname, info, catalog)
        if copy is not None:
            plan.copies.append(copy)
    plan.old_platforms = plan.platforms = tuple(sorted({t.platform for t in wheel.tags}))
    plan.filename = wheel.filename
    removed = plan.removed
    by_name: dict[str, RuntimeCopy] = {}
    for c in plan.copies:
        by_name[posixpath.basename(c.path)] = c
        if c.file_soname:
            by_name[c.file_soname] = c
    removed_dirs = {posixpath.dirname(c.path) for c in plan.copies}
    kept_dirs = {posixpath.dirname(a) for a in infos if a not in removed}
    inside = {posixpath.basename(a) for a in infos if a not in removed} | {
        i.soname for a, i in infos.items() if i.soname and a not in removed
    }

    def under(dirs: set[str], root: str) -> set[str]:
        """``dirs`` below the install root ``root``, relative to it."""
        return {
            _relative(d, root) for d in dirs if not root or d == root or d.startswith(root + "/")
        }

    # A runtime soname that a required upstream distribution provides through RUNPATH
    # (classify_needs' rule) is left to it: not required, not linked.
    members = (m.arcname for m in wheel.members)
    classes = classify_needs(infos, catalog, members, requirement_names(wheel))
    provided = {(a, s) for a, s, _ in classes.provided}
    plan.notes += [n for n in classes.notes() if n.startswith("provided by")]
    # What each kept object needs of each runtime: (arcname, soname used, runtime copy?).
    needs = Needs()
    uses_of: dict[str, list[tuple[str, str, str]]] = {}  # arcname -> (used, soname, dist)
    for arcname, info in infos.items():
        if arcname in removed:
            continue
        wanted = info.version_needs
        for n in info.needed:
            copy = by_name.get(n)
            if copy is not None:
                soname, dist = copy.soname, copy.distribution
                nodes = frozenset(wanted.get(n, ()))
                missing = nodes - copy.definitions
                if missing:
                    raise RepairError(
                        f"{wheel.source}!{arcname}",
                        f"needs {', '.join(sorted(missing))} from {n}, which its own copy lacks",
                    )
            else:
                owner = catalog.owner_of(n)
                if owner is None or n in inside or (arcname, n) in provided:
                    continue  # not a runtime's, provided inside the wheel or upstream
                soname, dist = n, owner.name
                nodes = frozenset(wanted.get(n, ()))
            uses_of.setdefault(arcname, []).append((n, soname, dist))
            needs.add(
                Requirement.of(dist, nodes={soname: nodes}, needs=(Need(arcname, soname, nodes),))
            )
    for c in plan.copies:
        if canonicalize_name(c.distribution) not in needs.requirements:
            needs.add(Requirement.of(c.distribution, nodes={c.soname: frozenset()}))
            plan.notes.append(f"nothing in the wheel NEEDs {c.path}; removed all the same")
    plan.requirements = needs.requirements
    kept_infos = [i for a, i in infos.items() if a not in removed]
    arch = _linux_arch(wheel, kept_infos) or (kept_infos[0].machine_name if kept_infos else None)
    if not needs.requirements or arch is None:
        return plan
    declared = declared_requirements(wheel)
    try:
        decision = decide_target(
            needs.requirements, kept_infos, arch, candidates=link.candidates,
            forced=link.forced, declared=declared, plat=link.plat,
        )  # fmt: skip
    except ValueError as e:
        raise RepairError(str(wheel.source), f"--plat: {e}") from e
    if decision.refusal is not None:
        floor = "" if link.plat else " (give --find-links/--index-url with newer runtime wheels)"
        raise RepairError(
            str(wheel.source),
            decision.refusal,
            hint=(
                "choose a higher --plat, or supply runtime wheels built for it"
                if link.plat
                else f"no runtime wheel known satisfies the wheel on any manylinux tag{floor}"
            ),
        )
    plan.target = decision
    required = decision.required
    for name in sorted(set(link.forced) - set(needs.requirements)):
        plan.notes.append(f"--runtime {name}: nothing in the wheel needs it; not required")
    packages: dict[str, set[str]] = {}
    for arcname, uses in uses_of.items():
        info = infos[arcname]
        root = _install_root(arcname, wheel.dist_info)
        linked = [u for u in uses if canonicalize_name(u[2]) in required]
        rename = tuple((n, soname) for n, soname, _ in uses if soname != n)
        if root is None:
            if linked or rename:
                raise RepairError(
                    f"{wheel.source}!{arcname}",
                    "installed outside site-packages (scripts, data or headers): no RUNPATH "
                    "can reach the runtime from there",
                )
            continue
        rel = _relative(arcname, root)
        member_dir = posixpath.dirname(rel)
        old = info.rpath if info.rpath and not info.runpath else info.runpath
        search: tuple[str, ...] | None = None
        kind = "rpath" if info.rpath and not info.runpath else "runpath"
        if linked or any(n in by_name for n, _, _ in uses):
            new, kind = _new_search_path(
                info, member_dir, under(kept_dirs, root), under(removed_dirs, root),
                prefix=bool(linked),
            )  # fmt: skip
            search = None if new == old else new
        if rename or search is not None:
            plan.edits.append(ElfEdit(arcname, rename, search, old, kind))
        if linked:
            package = rel.split("/", 1)[0] if "/" in rel else ""
            packages.setdefault(package, set()).update(u[2] for u in linked)
    plan.requires_dist = decision.requires_dist()
    for name, d in sorted(required.items()):
        if d.kept_declared:
            plan.notes.append(
                f"{name}: the declared bound {d.declared} is tighter than what the nodes "
                f"need ({d.rule.bound}); kept"
            )
        elif d.bound is None:
            plan.notes.append(
                f"{name}: {d.rule.describe()}, and no runtime wheels were found to take a "
                "lower bound from (give --find-links or --index-url); the requirement has none"
            )
    plan.choices = decision.describe()
    if _linux_arch(wheel, kept_infos) is not None and decision.platforms:
        plan.platforms = decision.platforms
    if add_preload:
        _plan_preload(plan, packages)
        plan.requires_dist.insert(0, "pynativelib")  # the others are all nativelib-*
    plan.metadata_current = _already(wheel, plan.requires_dist)
    plan.filename = _filename(wheel, plan.platforms)
    return plan


# --------------------------------------------------------------------------- applying


def _package_stem(name: str) -> str:
    """A distro package name as a library stem: libgomp1 -> libgomp, libgcc-s1 -> libgcc_s."""
    return re.sub(r"[-_.]?[0-9]+$", "", name).replace("-", "_")


def _update_sbom(data: bytes, plan: RepairPlan) -> bytes:
    """auditwheel's CycloneDX SBOM without the components of the removed copies, naming
    the new file. auditwheel records the package each grafted library came from (its
    bom-ref ends with the sha256 of the file before grafting, which cannot be recomputed),
    so a component is matched by its package name's library stem (``libgomp1`` for a
    libgomp copy, ``libgcc-s1`` for libgcc_s)."""
    try:
        doc = json.loads(data)
    except ValueError:
        return data
    if not isinstance(doc, dict):
        return data
    stems = {c.soname.split(".so", 1)[0] for c in plan.copies}
    refs = set()
    if isinstance(doc.get("components"), list):
        kept = []
        for comp in doc["components"]:
            name = str(comp.get("name", "")) if isinstance(comp, dict) else ""
            ref = str(comp.get("bom-ref", "")) if isinstance(comp, dict) else ""
            if name and _package_stem(name) in stems and not ref.startswith("pkg:pypi/"):
                refs.add(ref)
            else:
                kept.append(comp)
        doc["components"] = kept
    if isinstance(doc.get("dependencies"), list):
        deps = []
        for d in doc["dependencies"]:
            if not isinstance(d, dict) or d.get("ref") in refs:
                continue
            if isinstance(d.get("dependsOn"), list):
                d["dependsOn"] = [x for x in d["dependsOn"] if x not in refs]
            deps.append(d)
        doc["dependencies"] = deps
    text = json.dumps(doc, indent=2) + "\n"
    return text.replace(plan.wheel.filename, plan.filename).encode("utf-8")


def apply_repair(plan: RepairPlan, out_dir: Path, editor: Editor) -> Path:
    """Edit the extracted copies, check each edit, and write the repaired wheel."""
    wheel = plan.wheel
    final = out_dir / plan.filename
    if final.resolve() == wheel.source.resolve():
        raise RepairError(
            str(wheel.source), "the repaired wheel would replace the input; choose another -w"
        )
    by_member = {m.arcname: m for m in wheel.members}
    for edit in plan.edits:  # one editor run per file, with all its edits
        member = by_member[edit.member]
        editor(member.path, edit)
        check_edit(member.path, plan.infos[edit.member], edit)
    edited = {e.member for e in plan.edits}
    files: list[WheelFile] = []
    for m in wheel.members:
        if m.arcname in plan.removed:
            continue
        if m.arcname == f"{wheel.dist_info}/METADATA":
            files.append(WheelFile(m.arcname, data=_metadata(wheel, plan.requires_dist)))
        elif m.arcname == f"{wheel.dist_info}/WHEEL":
            files.append(WheelFile(m.arcname, data=_wheel_file(wheel, plan.platforms)))
        elif m.arcname in plan.init_edits:
            files.append(WheelFile(m.arcname, data=plan.init_edits[m.arcname]))
        elif m.arcname.startswith(f"{wheel.dist_info}/sboms/") and m.arcname.endswith(".json"):
            files.append(WheelFile(m.arcname, data=_update_sbom(m.read_bytes(), plan)))
        elif m.arcname in edited or m.stored is None:
            files.append(WheelFile(m.arcname, source=m.path, executable=m.executable))
        else:  # unchanged: its compressed bytes are copied as they are
            files.append(WheelFile(m.arcname, stored=m.stored, executable=m.executable))
    for pkg, text in sorted(plan.preload_hooks.items()):
        files.append(WheelFile(f"{pkg}/{PRELOAD_MODULE}.py", data=text.encode()))

    try:
        return write_members(out_dir, plan.filename, files, record=f"{wheel.dist_info}/RECORD")
    except WheelError as e:
        raise RepairError(e.path, e.reason) from e
