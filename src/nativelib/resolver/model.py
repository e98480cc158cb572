"""What the resolver reasons about: requirements on runtime distributions, and candidates."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field

from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

__all__ = ["Candidate", "Need", "Pending", "Requirement"]


@dataclass(frozen=True)
class Need:
    """One file's need of one soname: the version nodes it needs from it."""

    file: str
    soname: str
    nodes: frozenset[str]

    def describe(self) -> str:
        nodes = ", ".join(sorted(self.nodes)) or "the library"
        return f"{self.file.rsplit('/', 1)[-1]} needs {nodes} from {self.soname}"


@dataclass(frozen=True)
class Requirement:
    """A requirement on one runtime distribution.

    ``nodes`` maps each soname to the version nodes needed of it (exact names, never
    compared as numbers); ``specifier`` bounds the version; ``needs`` says who needs what
    (for explanations); ``parent`` names the distribution that depends on it, if any.
    """

    name: NormalizedName
    nodes: Mapping[str, frozenset[str]] = field(default_factory=dict)
    specifier: SpecifierSet = field(default_factory=SpecifierSet)
    needs: tuple[Need, ...] = ()
    parent: str | None = None

    @classmethod
    def of(cls, name: str, **kwargs: object) -> Requirement:
        return cls(canonicalize_name(name), **kwargs)  # type: ignore[arg-type]

    def describe(self) -> str:
        if self.needs:
            return "; ".join(n.describe() for n in self.needs)
        by = f" (needed by {self.parent})" if self.parent else ""
        return f"{self.name}{self.specifier}{by}"


@dataclass(frozen=True)
class Candidate:
    """One version of a runtime distribution: what it provides, needs and runs on."""

    name: NormalizedName
    version: Version
    definitions: Mapping[str, frozenset[str]]  # soname -> version nodes defined
    dependencies: tuple[tuple[str, SpecifierSet], ...] = ()
    platforms: tuple[str, ...] = ("any",)  # platform parts of the wheel tags
    url: str | None = None
    sha256: str | None = None
    yanked: bool = False
    installed: bool = False
    location: str | None = None  # where it was found (path or index), for messages

    def load(self) -> Candidate:
        """The candidate with everything known (already so; see :class:`Pending`)."""
        return self

    def provides(self, soname: str, nodes: frozenset[str]) -> bool:
        defined = self.definitions.get(soname)
        return defined is not None and nodes <= defined

    def newest_of(self, soname: str, family: str) -> str | None:
        """The highest numeric node of a family it defines (for explanations only)."""
        best: tuple[tuple[int, ...], str] | None = None
        for node in self.definitions.get(soname, ()):
            head, _, tail = node.partition("_")
            if head != family or not tail.replace(".", "").isdigit():
                continue
            key = tuple(int(p) for p in tail.split("."))
            if best is None or key > best[0]:
                best = (key, node)
        return None if best is None else best[1]


class Pending:
    """A candidate known from an index page only (name, version, tags, yanked, URL,
    sha256); :meth:`load` reads its metadata (PEP 658) or wheel, once, when needed."""

    def __init__(
        self,
        name: NormalizedName,
        version: Version,
        platforms: tuple[str, ...],
        yanked: bool,
        url: str,
        sha256: str,
        loader: Callable[[], Candidate],
    ) -> None:
        self.name = name
        self.version = version
        self.platforms = platforms
        self.yanked = yanked
        self.url = url
        self.sha256 = sha256
        self.installed = False
        self._loader = loader
        self._loaded: Candidate | None = None
        self._started: Future[Candidate] | None = None
        self._lock = threading.Lock()

    def start(self, submit: Callable[[Callable[[], Candidate]], Future[Candidate]]) -> None:
        """Begin loading in the background (``submit`` is an executor's): a guess that
        this candidate will come up; :meth:`load` then waits for it (or re-raises)."""
        with self._lock:
            if self._loaded is None and self._started is None:
                self._started = submit(self._loader)

    def load(self) -> Candidate:
        with self._lock:
            started = self._started
        if self._loaded is None:
            self._loaded = started.result() if started is not None else self._loader()
        return self._loaded
