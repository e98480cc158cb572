"""Immutable value classes for the modules that run at other projects' import time.

``dataclasses`` costs about 8 ms to import (it pulls in ``inspect``, ``ast``, ``dis``...)
and ``typing.NamedTuple`` about 2 ms; the loader's budget is 2 ms in all. A subclass of
:class:`Frozen` lists its fields in ``__slots__``, takes them in that order in
``__init__`` (setting them with :data:`setfield`), and gets equality, hashing, ``repr``,
``_replace`` and pickling from here.
"""

# No `from __future__ import annotations` here: importing `__future__` costs ~0.3 ms at
# interpreter start (the autoload's .pth runs this module); annotations that name what
# only a type checker imports are strings.

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~2 ms
if TYPE_CHECKING:
    from typing import Any, TypeVar

    _T = TypeVar("_T", bound="Frozen")

__all__ = ["Frozen", "setfield"]


def _rebuild(cls: "type[_T]", values: "dict[str, Any]") -> "_T":
    """Unpickle a :class:`Frozen` instance: its ``__init__`` with the field values."""
    return cls(**values)


#: How ``__init__`` sets a field of a frozen instance.
setfield = object.__setattr__


class Frozen:
    """Base of immutable value objects: fields in ``__slots__``, compared by value."""

    __slots__: tuple[str, ...] = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: cannot delete {name!r}")

    def _values(self) -> "tuple[Any, ...]":
        return tuple(getattr(self, name) for name in type(self).__slots__)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._values()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in type(self).__slots__)
        return f"{type(self).__name__}({fields})"

    def __reduce__(self) -> "tuple[Any, ...]":
        return (_rebuild, (type(self), {n: getattr(self, n) for n in type(self).__slots__}))

    def _replace(self: "_T", **changes: "Any") -> "_T":
        """A copy with some fields changed."""
        values = {name: getattr(self, name) for name in type(self).__slots__}
        unknown = set(changes) - set(values)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field {sorted(unknown)[0]!r}")
        values.update(changes)
        return type(self)(**values)
