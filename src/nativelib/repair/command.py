"""``nativelib repair WHEEL... [-w OUTDIR] [--runtime ...] [--plan] [--add-preload]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from nativelib.catalog import Catalog, load_catalog
from nativelib.errors import (
    NativeLibError,
    RepairError,
    WheelError,
    report_error,
)
from nativelib.leftovers import temporary_tree
from nativelib.repair.core import (
    LinkOptions,
    RepairPlan,
    _read_elves,
    apply_repair,
    plan_repair,
    requirement_names,
)
from nativelib.repair.elfpatch import Editor, find_patchelf, patchelf_editor
from nativelib.repair.graft import classify_needs, graft_with_auditwheel
from nativelib.resolver.target import target_candidates
from nativelib.wheelfile import copy_wheel, validate_layout
from nativelib.wheelfile.read import read_wheel

__all__ = ["configure_parser", "repair_wheel", "run"]


def _extracted(name: str) -> bool:
    """The members repair reads from disk besides the ELF files (which are always
    extracted): the .dist-info files, files named like shared objects (to refuse those
    that are not ELF), and ``__init__.py`` files (``--add-preload`` edits them). The
    others are verified as they stream by and copied compressed into the output."""
    base = name.rsplit("/", 1)[-1]
    return ".dist-info/" in name or base == "__init__.py" or ".so" in base


def repair_wheel(
    wheel: Path,
    out_dir: Path,
    *,
    catalog: Catalog,
    link: LinkOptions | None = None,
    editor: Editor | None = None,
    add_preload: bool = False,
    plan_only: bool = False,
    graft: bool = True,
) -> tuple[RepairPlan, Path | None]:
    """Plan the repair of ``wheel`` and (unless ``plan_only``) write the result into
    ``out_dir``; returns the plan and the written wheel (None when nothing was written).
    A wheel that needs external libraries no runtime owns goes through ``auditwheel
    repair`` first (``graft``; with ``plan_only`` it is only reported)."""
    try:
        validate_layout(Path(wheel))
    except WheelError as e:
        raise RepairError(e.path, e.reason) from e
    with temporary_tree("repair") as tmp:
        contents = read_wheel(Path(wheel), Path(tmp) / "in", wanted=_extracted)
        needs = classify_needs(
            _read_elves(contents),
            catalog,
            (m.arcname for m in contents.members),
            requirement_names(contents),
        )
        external = needs.external
        grafted = False
        if external and graft and not plan_only:
            patchelf = find_patchelf()[0]
            # Never grafted: every runtime soname, the driver's libraries and those found
            # in other distributions through RUNPATH.
            sonames = {s for r in catalog.recipes.values() for s in r.sonames} | needs.excluded()
            aw = graft_with_auditwheel(Path(wheel), Path(tmp) / "auditwheel", sonames, patchelf)
            contents = read_wheel(aw, Path(tmp) / "grafted", wanted=_extracted)
            grafted = True
        plan = plan_repair(contents, catalog, link=link, add_preload=add_preload)
        plan.notes += needs.notes()
        if external and not grafted:
            libs = ", ".join(sorted({s for _, s in external}))
            plan.notes.append(f"external libraries {libs}: grafted by auditwheel repair")
        elif grafted:
            libs = ", ".join(sorted({s for _, s in external}))
            plan.notes.append(f"auditwheel repair grafted {libs} (runtimes excluded)")
        if plan_only or not plan.changes_anything:
            return plan, None
        if editor is None:
            binary, _version = find_patchelf()
            editor = patchelf_editor(binary)
        return plan, apply_repair(plan, Path(out_dir), editor)


def _copy_unchanged(wheel: Path, out_dir: Path) -> Path:
    """``wheel`` copied into ``out_dir`` (nothing to do when it is there already), through
    the writer's temporary file, validated and renamed into place."""
    target = out_dir / wheel.name
    if target.resolve() == wheel.resolve():
        return target
    try:
        return copy_wheel(wheel, out_dir)
    except WheelError as e:
        raise RepairError(e.path, e.reason) from e


def _runtimes(values: Sequence[str], catalog: Catalog) -> frozenset[str]:
    out = set()
    for value in values:
        for name in filter(None, (v.strip() for v in value.split(","))):
            out.add(catalog.get(name).name)
    return frozenset(out)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Link any Linux wheel (raw from pip wheel/build, auditwheel's output, or repaired "
        "before) to the runtime wheels: every shared object that NEEDs a runtime library "
        "(libgomp, libgfortran, cudart, MKL; libstdc++/libgcc_s when the target policy "
        "does not guarantee the nodes) gets an $ORIGIN-relative RUNPATH into "
        "nativelib.prefix/lib, vendored copies are removed, Requires-Dist gets a bound "
        "from the version nodes needed, and the manylinux tag is the lowest on whose every "
        "host the wheel installs and runs. Other external libraries are grafted by "
        "auditwheel repair, run as a step. The input is never modified. "
        "Exit status: 0 repaired (or nothing to do), 2 error (nothing written)."
    )
    parser.add_argument("wheels", nargs="+", metavar="WHEEL")
    parser.add_argument(
        "-w", "--wheel-dir", default="wheelhouse", metavar="OUTDIR",
        help="where repaired wheels go (default: wheelhouse)",
    )  # fmt: skip
    parser.add_argument(
        "--runtime", action="append", metavar="NAMES",
        help="require these runtimes even where the target policy would do, e.g. cxx14",
    )  # fmt: skip
    parser.add_argument(
        "--plat", metavar="PLATFORM",
        help="the target tag, e.g. manylinux_2_28_x86_64 (auditwheel's names): checked, "
        "refused with the reason when the wheel cannot both install and run there "
        "(default: the lowest that works)",
    )  # fmt: skip
    parser.add_argument("--plan", action="store_true", help="print every edit; write nothing")
    parser.add_argument(
        "--add-preload", action="store_true",
        help="also add a hook module that calls nativelib.load() from the package's __init__.py "
        "(for --user, --target and other layouts that RUNPATH cannot reach)",
    )  # fmt: skip
    parser.add_argument(
        "--find-links",
        action="append",
        metavar="DIR",
        help="runtime wheels to cross-check bounds and the tag against",
    )
    parser.add_argument(
        "--index-url", action="append", metavar="URL", help="an index of runtime wheels"
    )


def run(args: argparse.Namespace) -> int:
    """Exit status: 0 every wheel repaired (or left alone), 2 an error (nothing written
    for that wheel)."""
    try:
        catalog = load_catalog()
        forced = _runtimes(args.runtime or (), catalog)
        link = LinkOptions(target_candidates(args.find_links, args.index_url), args.plat, forced)
    except NativeLibError as e:
        report_error(e)
        return 2
    out_dir = Path(args.wheel_dir)
    status = 0
    for wheel in args.wheels:
        name = Path(wheel).name
        try:
            plan, written = repair_wheel(
                Path(wheel), out_dir, catalog=catalog, link=link,
                add_preload=args.add_preload, plan_only=args.plan,
            )  # fmt: skip
            if not plan.changes_anything and not args.plan:
                what = (
                    "already linked to the runtime wheels"
                    if plan.requirements
                    else "needs no runtime library"
                )
                print(f"{name}: {what}; unchanged", file=sys.stderr)
                print(_copy_unchanged(Path(wheel), out_dir))
                continue
        except NativeLibError as e:
            report_error(e)
            status = 2
            continue
        if args.plan:
            print(f"{name} -> {out_dir / plan.filename}")
            for line in plan.describe():
                print(f"  {line}")
            if not plan.changes_anything:
                print("  (nothing to change)")
            continue
        for line in plan.describe():
            print(f"  {line}", file=sys.stderr)
        copies = len(plan.copies)
        print(
            f"{name}: linked {len(plan.edits)} shared object"
            f"{'' if len(plan.edits) == 1 else 's'}, removed {copies} vendored "
            f"cop{'y' if copies == 1 else 'ies'} ({plan.bytes_removed} bytes)",
            file=sys.stderr,
        )
        print(written)
    return status
