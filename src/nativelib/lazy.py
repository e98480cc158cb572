"""Names a package exports but imports on first use (PEP 562 ``__getattr__``).

``archive`` and ``wheelfile`` export their readers and writers this way, so that the
layers which run in a base install (the doctor reads RECORD files; the download cache
uses the one member-name rule) import neither ``zstandard`` nor ``packaging`` through them.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~2 ms
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["lazy_getattr"]


def lazy_getattr(package: str, where: Mapping[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` for ``package``: name ``n`` comes from the submodule
    ``where[n]``, imported on first use and then kept in the package's namespace."""
    import sys  # noqa: PLC0415

    def __getattr__(name: str) -> object:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        import importlib  # noqa: PLC0415

        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
