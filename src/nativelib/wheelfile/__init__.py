"""Wheel files: checked values, a reproducible writer, a strict validator and a reader.

One module for ``build`` and ``repair``: :mod:`.plan` (values), :mod:`.write`,
:mod:`.validate`, :mod:`.read` (RECORD verified, safe extraction).


Plan, then apply. A :class:`WheelPlan` is a checked value: building one rejects a bad
name, version, tag, requirement or licence expression, unsafe or duplicate archive
names and anything that would collide with the ``.dist-info`` directory, so a plan that
exists can be printed (:meth:`WheelPlan.describe`, for ``--plan``) and written.
:func:`write_wheel` then checks that every source file is a regular file, writes the
wheel into a temporary sibling of its final name, validates the result with
:func:`validate_wheel` and only then renames it into place; on any error the temporary
file is deleted and nothing is left in the output directory.

Runtime wheels install into platlib (``Root-Is-Purelib: false``): they hold shared
libraries. The archive is reproducible: entries are sorted (``.dist-info`` last, RECORD
very last), every entry has the same timestamp (``SOURCE_DATE_EPOCH``, clamped into the
DOS date range, else 1980-01-01 00:00:00), fixed Unix modes (0644, or 0755 for
executables), ``create_system`` 3 and deflate at level 6. Nothing depends on the umask,
the time zone, the current time, source file mtimes or the order files were given in.

:func:`validate_wheel` is also meant for wheels built by others (repair, inspection): it
checks the file name, the zip structure, the one ``.dist-info`` directory, the WHEEL file,
RECORD against every member's contents (:mod:`.record`, the one RECORD reader, which
repair's reader and the doctor use too) and METADATA (with
``packaging.metadata``), and reports the first problem as a
:class:`~nativelib.errors.WheelError` with a precise reason.
"""

from __future__ import annotations

from nativelib.lazy import lazy_getattr

# Imported on first use (PEP 562), so that the doctor can import
# nativelib.wheelfile.record without packaging, which plan and validate need.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from nativelib.wheelfile.plan import (
        COMPRESSLEVEL,
        DEFAULT_DATE_TIME,
        DateTime,
        WheelFile,
        WheelPlan,
    )
    from nativelib.wheelfile.validate import validate_layout, validate_wheel
    from nativelib.wheelfile.write import copy_wheel, write_members, write_wheel, zip_date_time

_LAZY = {
    "COMPRESSLEVEL": "plan",
    "DEFAULT_DATE_TIME": "plan",
    "DateTime": "plan",
    "WheelFile": "plan",
    "WheelPlan": "plan",
    "copy_wheel": "write",
    "validate_layout": "validate",
    "validate_wheel": "validate",
    "write_members": "write",
    "write_wheel": "write",
    "zip_date_time": "write",
}

__all__ = [
    "COMPRESSLEVEL",
    "DEFAULT_DATE_TIME",
    "DateTime",
    "WheelFile",
    "WheelPlan",
    "copy_wheel",
    "validate_layout",
    "validate_wheel",
    "write_members",
    "write_wheel",
    "zip_date_time",
]


__getattr__ = lazy_getattr(__name__, _LAZY)
