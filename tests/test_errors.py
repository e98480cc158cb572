"""Every error class: message shape, named attributes, pickling."""

from __future__ import annotations

import pickle

import pytest

from nativelib import errors as E


@pytest.mark.parametrize(
    ("error", "attrs", "text"),
    [
        (
            E.ElfError("lib.so", "truncated"),
            {"path": "lib.so", "reason": "truncated"},
            "lib.so: truncated",
        ),
        (
            E.NotElfError("libc.so", "not an ELF file"),
            {"path": "libc.so"},
            "libc.so: not an ELF file",
        ),
        (
            E.SourceError("https://x/y", "HTTP 404"),
            {"source": "https://x/y"},
            "https://x/y: HTTP 404",
        ),
        (
            E.UnsafeArchiveError("a.deb", "../x", "escapes"),
            {"archive": "a.deb", "source": "a.deb", "member": "../x", "reason": "escapes"},
            "a.deb: unsafe member '../x': escapes",
        ),
        (E.CatalogError("gomp.toml", "bad"), {"where": "gomp.toml"}, "gomp.toml: bad"),
        (E.ManifestError("m.json", "bad"), {"where": "m.json"}, "m.json: bad"),
        (E.WheelError("x.whl", "bad"), {"path": "x.whl"}, "x.whl: bad"),
        (
            E.BuildError("nativelib-gomp", "bad"),
            {"runtime": "nativelib-gomp"},
            "nativelib-gomp: bad",
        ),
    ],
)
def test_error(error: E.NativeLibError, attrs: dict[str, str], text: str) -> None:
    assert isinstance(error, E.NativeLibError)
    assert str(error) == text
    for name, value in attrs.items():
        assert getattr(error, name) == value
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is type(error) and str(again) == text
    assert all(getattr(again, name) == value for name, value in attrs.items())


def test_elf_errors_are_value_errors() -> None:
    assert issubclass(E.ElfError, ValueError) and issubclass(E.NotElfError, E.ElfError)
    assert issubclass(E.UnsafeArchiveError, E.SourceError)
