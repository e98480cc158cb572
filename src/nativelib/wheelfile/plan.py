"""Wheel values: :class:`WheelFile` and :class:`WheelPlan`, checked when they are made."""

from __future__ import annotations

import calendar
import os
import re
import stat
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from packaging.licenses import InvalidLicenseExpression, canonicalize_license_expression
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag, parse_tag
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

import nativelib
from nativelib.archive.members import name_problem
from nativelib.errors import WheelError

DateTime = tuple[int, int, int, int, int, int]

#: Deflate level of every entry, zlib's own default. Measured on libstdc++.so.6 (2.2 MB)
#: and libLLVM-15.so (117 MB): level 9 is 0.2-0.3 points smaller (34.2 % vs 34.4 %,
#: 29.4 % vs 29.6 %) for 3.6-4x the time; level 1 is 4 points bigger.
COMPRESSLEVEL = 6
#: The timestamp of every entry when neither ``source_date_epoch`` nor
#: ``$SOURCE_DATE_EPOCH`` is given: the earliest a zip file can store.
DEFAULT_DATE_TIME: DateTime = (1980, 1, 1, 0, 0, 0)
#: The range a DOS date can hold, as Unix times (UTC). Seconds are stored halved, so the
#: last representable second is :58.
_MIN_EPOCH = calendar.timegm((1980, 1, 1, 0, 0, 0))
_MAX_EPOCH = calendar.timegm((2107, 12, 31, 23, 59, 58))

_FILE_MODE = 0o100644
_EXEC_MODE = 0o100755
_CREATE_SYSTEM_UNIX = 3
_CHUNK = 1 << 20

# PEP 508 / core metadata: a distribution name.
_NAME_RE = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
# One member of a compressed tag set component, as the filenames of wheels spell them.
_TAG_PART_RE = re.compile(r"^[a-z0-9_]+$")
_WHEEL_VERSION_RE = re.compile(r"^\s*(\d+)\.(\d+)\s*$")
# Entry points (the packaging specification's entry-points.txt): groups are dotted names
# of word characters and '-'; a value is a module path, optionally ':' an attribute path.
_ENTRY_GROUP_RE = re.compile(r"^[\w.-]+$")
_ENTRY_VALUE_RE = re.compile(r"^[\w.]+(:[\w.]+)?$")
_CONTENT_TYPES = ("text/plain", "text/x-rst", "text/markdown")
# Characters that end a line for str.splitlines() (and so for RECORD and METADATA readers).
_LINE_BREAKS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")


# --------------------------------------------------------------------------- values


def _arcname_problem(arcname: str) -> str | None:
    """Why ``arcname`` cannot name a file inside a wheel, or None if it can."""
    return name_problem(arcname, canonical=True)


@dataclass(frozen=True)
class StoredMember:
    """Where the verified, compressed bytes of a member of another zip are: what the
    writer copies byte for byte (:func:`nativelib.wheelfile.write.write_members`).

    Made by :func:`nativelib.wheelfile.read.read_wheel`, which streamed the member once
    through :class:`~nativelib.safezip.SafeZipFile` (method stored or deflated, size and
    CRC-32 bounded and checked) and checked its hash against RECORD. ``stored_crc`` is the
    CRC-32 of the ``compress_size`` stored bytes it read then: the writer checks that it
    copies the same bytes. ``record_hash`` is the hash as RECORD spelled it
    (``sha256=...``), kept for the new RECORD.
    """

    archive: Path
    name: str  # the member's name in ``archive``
    header_offset: int
    method: int  # zipfile.ZIP_STORED or zipfile.ZIP_DEFLATED
    crc: int  # of the uncompressed bytes
    compress_size: int
    file_size: int
    stored_crc: int
    record_hash: str


@dataclass(frozen=True)
class WheelFile:
    """One file of a wheel: its archive name and where its bytes come from.

    ``arcname`` is a relative POSIX path (for a licence file: the path below
    ``.dist-info/licenses/``). Exactly one of ``data`` (the bytes), ``source`` (a
    regular file, read when the wheel is written) and ``stored`` (a verified member of
    another zip, copied compressed as it is) is given. ``executable`` selects mode 0755
    instead of 0644.
    """

    arcname: str
    data: bytes | None = None
    source: Path | None = None
    executable: bool = False
    stored: StoredMember | None = None

    def __post_init__(self) -> None:
        problem = _arcname_problem(self.arcname)
        if problem is not None:
            raise WheelError(repr(self.arcname), problem)
        given = (self.data is not None) + (self.source is not None) + (self.stored is not None)
        if given != 1:
            raise WheelError(
                repr(self.arcname), "exactly one of data and source (or stored) must be given"
            )
        if self.data is not None and not isinstance(self.data, bytes):
            object.__setattr__(self, "data", bytes(self.data))
        if self.source is not None and not isinstance(self.source, Path):
            object.__setattr__(self, "source", Path(self.source))

    def size(self) -> int:
        """Size in bytes (for a source file: as it is now)."""
        if self.data is not None:
            return len(self.data)
        if self.stored is not None:
            return self.stored.file_size
        fd, size = _open_source(self)
        os.close(fd)
        return size


def _single_line(label: str, what: str, value: str) -> None:
    if not isinstance(value, str):
        raise WheelError(label, f"{what} must be a string, not {type(value).__name__}")
    if not value.strip():
        raise WheelError(label, f"{what} must not be empty")
    if any(c in _LINE_BREAKS for c in value):
        raise WheelError(label, f"{what} must be a single line: {value!r}")


def _check_unique_paths(label: str, names: Iterable[str], duplicate: str, shadow: str) -> None:
    """Archive names must be unique after NFC normalisation, and no name may also be the
    directory of another; the messages are ``duplicate``/``shadow`` formatted with
    ``name``, ``other`` and ``parent``."""
    seen: dict[str, str] = {}
    for name in names:
        key = unicodedata.normalize("NFC", name)
        if key in seen:
            raise WheelError(label, duplicate.format(name=name, other=seen[key]))
        seen[key] = name
    for key, name in seen.items():
        parts = key.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent in seen:
                raise WheelError(label, shadow.format(parent=seen[parent], name=name))


@dataclass(frozen=True)
class WheelPlan:
    """Everything a wheel will hold, checked; build it, print it, then write it.

    Construction validates and normalizes: ``version`` becomes its normalized form,
    ``requires_dist`` the normalized requirement strings, ``license_expression`` its
    canonical form, and ``files`` / ``license_files`` are sorted by archive name so the
    order they were given in never matters. Any problem raises
    :class:`~nativelib.errors.WheelError` naming the plan.

    ``files`` install below site-packages (platlib). ``license_files`` go to
    ``<dist-info>/licenses/<arcname>`` and are listed as ``License-File: <arcname>``.
    ``tag`` is one tag or a compressed tag set (``py3-none-manylinux_2_17_x86_64.
    manylinux2014_x86_64``), written as given in the file name and expanded to one
    ``Tag:`` line per tag in WHEEL.
    """

    name: str
    version: str
    tag: str
    files: tuple[WheelFile, ...]
    summary: str
    requires_dist: tuple[str, ...] = ()
    license_files: tuple[WheelFile, ...] = ()
    license_expression: str | None = None
    requires_python: str | None = None
    project_urls: tuple[tuple[str, str], ...] = ()
    classifiers: tuple[str, ...] = ()
    description: str | None = None
    description_content_type: str | None = None
    entry_points: tuple[tuple[str, str, str], ...] = ()  # (group, name, value)
    tags: tuple[Tag, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        label = f"wheel plan {self.name!r} {self.version!r}"
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise WheelError(
                label,
                f"invalid distribution name {self.name!r}: letters, digits, '.', '-' and"
                " '_' only, starting and ending with a letter or digit",
            )
        try:
            version = str(Version(self.version))
        except (InvalidVersion, TypeError) as e:
            raise WheelError(label, f"invalid version {self.version!r}: {e}") from e
        object.__setattr__(self, "version", version)
        label = self._label

        object.__setattr__(self, "tags", _parse_tag(label, self.tag))
        _single_line(label, "summary", self.summary)

        requires = []
        for text in self.requires_dist:
            try:
                requires.append(str(Requirement(text)))
            except InvalidRequirement as e:
                raise WheelError(label, f"invalid requirement {text!r}: {e}") from e
        object.__setattr__(self, "requires_dist", tuple(requires))

        if self.requires_python is not None:
            _single_line(label, "Requires-Python", self.requires_python)
            try:
                SpecifierSet(self.requires_python)
            except InvalidSpecifier as e:
                raise WheelError(
                    label, f"invalid Requires-Python {self.requires_python!r}: {e}"
                ) from e

        if self.license_expression is not None:
            try:
                expression = str(canonicalize_license_expression(self.license_expression))
            except InvalidLicenseExpression as e:
                raise WheelError(
                    label, f"invalid license expression {self.license_expression!r}: {e}"
                ) from e
            object.__setattr__(self, "license_expression", expression)

        urls = tuple((str(k), str(v)) for k, v in self.project_urls)
        for key, url in urls:
            _single_line(label, "a Project-URL label", key)
            _single_line(label, "a Project-URL", url)
            if "," in key:
                raise WheelError(label, f"a Project-URL label must not contain ',': {key!r}")
        object.__setattr__(self, "project_urls", urls)
        object.__setattr__(self, "classifiers", tuple(self.classifiers))
        for classifier in self.classifiers:
            _single_line(label, "a classifier", classifier)
        if (
            self.description_content_type is not None
            and self.description_content_type.split(";")[0].strip() not in _CONTENT_TYPES
        ):
            raise WheelError(
                label,
                f"invalid Description-Content-Type {self.description_content_type!r}:"
                f" one of {', '.join(_CONTENT_TYPES)} (with parameters) expected",
            )
        if self.description_content_type is not None:
            _single_line(label, "Description-Content-Type", self.description_content_type)

        points = tuple(sorted((str(g), str(n), str(v)) for g, n, v in self.entry_points))
        for group, name, value in points:
            for what, text in (("group", group), ("name", name), ("value", value)):
                _single_line(label, f"an entry point {what}", text)
            if not _ENTRY_GROUP_RE.match(group) or "=" in name or name != name.strip():
                raise WheelError(label, f"invalid entry point {group!r} {name!r} = {value!r}")
            if not _ENTRY_VALUE_RE.match(value):
                raise WheelError(
                    label, f"invalid entry point value {value!r}: 'module' or 'module:attr'"
                )
        if len({(g, n) for g, n, _ in points}) != len(points):
            raise WheelError(label, "an entry point is given twice")
        object.__setattr__(self, "entry_points", points)

        files = tuple(sorted(self.files, key=lambda f: f.arcname))
        licenses = tuple(sorted(self.license_files, key=lambda f: f.arcname))
        object.__setattr__(self, "files", files)
        object.__setattr__(self, "license_files", licenses)
        self._check_arcnames()

    # ------------------------------------------------------------------ names

    @property
    def _label(self) -> str:
        return f"wheel plan {self.name} {self.version}"

    @property
    def escaped_name(self) -> str:
        """The distribution name as file names spell it: ``nativelib_cxx14``."""
        return canonicalize_name(self.name).replace("-", "_")

    @property
    def dist_info(self) -> str:
        """The name of the ``.dist-info`` directory."""
        return f"{self.escaped_name}-{self.version}.dist-info"

    @property
    def filename(self) -> str:
        """``<name>-<version>-<tag>.whl``, the name escaped as PEP 427/491 say."""
        return f"{self.escaped_name}-{self.version}-{self.tag}.whl"

    def _check_arcnames(self) -> None:
        label = self._label
        for f in self.files:
            top = f.arcname.split("/", 1)[0]
            if top == self.dist_info:
                raise WheelError(
                    label,
                    f"{f.arcname!r} collides with the .dist-info directory {self.dist_info!r}"
                    " (licence files go in license_files)",
                )
            if top.lower().endswith(".dist-info"):
                raise WheelError(
                    label, f"{f.arcname!r} would make a second .dist-info directory {top!r}"
                )
            if top.lower().endswith(".data"):
                raise WheelError(
                    label,
                    f"{f.arcname!r} is inside a .data directory, which this writer does not"
                    " support (every file installs to platlib)",
                )
        _check_unique_paths(
            label,
            (f.arcname for f in self.files),
            "duplicate archive name {name!r} (also given as {other!r})",
            "{parent!r} is a file and also the directory of {name!r}",
        )
        _check_unique_paths(
            label,
            (f.arcname for f in self.license_files),
            "duplicate licence file {name!r} (also given as {other!r})",
            "licence file {parent!r} is also the directory of {name!r}",
        )

    # ------------------------------------------------------------------ contents

    @property
    def metadata_version(self) -> str:
        """2.4 when a licence expression or licence files are declared, else 2.1."""
        return "2.4" if self.license_expression or self.license_files else "2.1"

    def metadata_lines(self) -> list[str]:
        """The header lines of METADATA, in order (without the description body)."""
        lines = [
            f"Metadata-Version: {self.metadata_version}",
            f"Name: {self.name}",
            f"Version: {self.version}",
            f"Summary: {self.summary}",
        ]
        if self.license_expression is not None:
            lines.append(f"License-Expression: {self.license_expression}")
        lines += [f"License-File: {f.arcname}" for f in self.license_files]
        lines += [f"Project-URL: {key}, {url}" for key, url in self.project_urls]
        lines += [f"Classifier: {c}" for c in self.classifiers]
        if self.requires_python is not None:
            lines.append(f"Requires-Python: {self.requires_python}")
        lines += [f"Requires-Dist: {r}" for r in self.requires_dist]
        if self.description_content_type is not None:
            lines.append(f"Description-Content-Type: {self.description_content_type}")
        return lines

    def metadata_text(self) -> str:
        text = "\n".join(self.metadata_lines()) + "\n"
        if self.description is not None:
            text += "\n" + self.description
        return text

    def wheel_lines(self) -> list[str]:
        """The lines of the WHEEL file."""
        return [
            "Wheel-Version: 1.0",
            f"Generator: nativelib {nativelib.__version__}",
            "Root-Is-Purelib: false",
            *(f"Tag: {t}" for t in self.tags),
        ]

    def entry_points_text(self) -> str | None:
        """The text of ``entry_points.txt`` (groups and names sorted), or None when there
        are no entry points."""
        if not self.entry_points:
            return None
        lines: list[str] = []
        group = None
        for g, name, value in self.entry_points:
            if g != group:
                if group is not None:
                    lines.append("")
                lines.append(f"[{g}]")
                group = g
            lines.append(f"{name} = {value}")
        return "\n".join(lines) + "\n"

    def describe(self) -> str:
        """A human-readable account of the wheel, for ``--plan``.

        Every file with its size and mode, the licence files, the tags and the METADATA
        and WHEEL lines. Reads the size of each source file; a missing source file raises
        :class:`~nativelib.errors.WheelError` as :func:`write_wheel` would.
        """
        entries = [(f.arcname, f) for f in self.files]
        entries += [(f"{self.dist_info}/licenses/{f.arcname}", f) for f in self.license_files]
        sizes = [f.size() for _, f in entries]
        width = max([len(str(s)) for s in sizes] + [1])
        out = [
            f"wheel {self.filename}",
            f"  tag {self.tag}:",
            *(f"    {t}" for t in self.tags),
            f"  files ({len(entries)}, {sum(sizes)} bytes):",
        ]
        for (arcname, f), size in zip(entries, sizes, strict=True):
            mode = "0755" if f.executable else "0644"
            origin = "" if f.source is None else f"  <- {f.source}"
            out.append(f"    {size:>{width}}  {mode}  {arcname}{origin}")
        out.append(f"  {self.dist_info}/METADATA:")
        out += [f"    {line}" for line in self.metadata_lines()]
        if self.description is not None:
            n = len(self.description.splitlines())
            out.append(f"    (description: {n} line{'s' if n != 1 else ''})")
        out.append(f"  {self.dist_info}/WHEEL:")
        out += [f"    {line}" for line in self.wheel_lines()]
        points = self.entry_points_text()
        if points is not None:
            out.append(f"  {self.dist_info}/entry_points.txt:")
            out += [f"    {line}" for line in points.splitlines()]
        return "\n".join(out) + "\n"


def _parse_tag(label: str, tag: str) -> tuple[Tag, ...]:
    """Check a tag or compressed tag set and expand it, in the order it is written."""
    if not isinstance(tag, str):
        raise WheelError(label, f"invalid tag {tag!r}: not a string")
    components = tag.split("-")
    if len(components) != 3:
        raise WheelError(label, f"invalid tag {tag!r}: expected interpreter-abi-platform (3 parts)")
    for component in components:
        for part in component.split("."):
            if not _TAG_PART_RE.match(part):
                raise WheelError(
                    label,
                    f"invalid tag {tag!r}: {part!r} is not made of lowercase letters,"
                    " digits and '_'",
                )
    for part in components[0].split("."):
        if not part[0].isalpha():
            raise WheelError(
                label, f"invalid tag {tag!r}: interpreter {part!r} must start with a letter"
            )
    try:
        parsed = parse_tag(tag)
    except ValueError as e:  # pragma: no cover - the checks above are stricter than packaging's
        raise WheelError(label, f"invalid tag {tag!r}: {e}") from e
    interpreters, abis, platforms = (c.split(".") for c in components)
    expanded: list[Tag] = []
    for interpreter in interpreters:
        for abi in abis:
            for platform in platforms:
                t = Tag(interpreter, abi, platform)
                if t not in expanded:
                    expanded.append(t)
    assert set(expanded) == parsed
    return tuple(expanded)


def _open_source(f: WheelFile) -> tuple[int, int]:
    """Open a source file for reading: (fd, size). Refuses anything but a regular file.

    O_NONBLOCK so that a FIFO cannot hang the writer; it is then refused like a directory.
    """
    assert f.source is not None
    where = f"source of {f.arcname!r}"
    try:
        fd = os.open(f.source, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise WheelError(str(f.source), f"{where} does not exist") from None
    except OSError as e:
        raise WheelError(str(f.source), f"{where} cannot be opened: {e.strerror}") from e
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise WheelError(str(f.source), f"{where} is not a regular file ({_kind(st.st_mode)})")
    return fd, st.st_size


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    # A socket cannot be opened at all (ENXIO): "cannot be opened" says so earlier.
    return f"mode {mode:#o}"  # pragma: no cover - nothing else can be opened
