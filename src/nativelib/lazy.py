"""Names a package exports but imports on first use (PEP 562 ``__getattr__``).

``archive`` and ``wheelfile`` export their readers and writers this way, so that the
layers which run in a base install (the doctor reads RECORD files; the download cache
uses the one member-name rule) import neither ``zstandard`` nor ``packaging`` through them.

:func:`lazy_module` is a module imported on its first attribute access: the loader's
modules reach :mod:`nativelib.errors` (17 classes, ~0.7 ms of other projects' import
time) through one, so that only a load that raises (or catches) an error imports it.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~2 ms
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from types import ModuleType

__all__ = ["lazy_getattr", "lazy_module"]


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


def lazy_module(name: str) -> ModuleType:
    """A stand-in for the module ``name``: reading an attribute of it imports ``name``
    (once; then it is a lookup in ``sys.modules``) and returns that attribute. Declare
    the real module under ``TYPE_CHECKING`` so that type checkers see its names."""
    import sys  # noqa: PLC0415

    def __getattr__(attr: str) -> object:
        module = sys.modules.get(name)
        if module is None:
            __import__(name)
            module = sys.modules[name]
        return getattr(module, attr)

    stand_in = type(sys)(name)
    vars(stand_in)["__getattr__"] = __getattr__  # PEP 562: a module's own __getattr__
    return stand_in
