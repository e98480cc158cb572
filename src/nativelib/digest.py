"""The one definition of a sha256 digest as text: 64 lowercase hexadecimal digits.

Recipes, index records (Packages, repodata.json, the simple API) and pinned downloads all
check with :func:`is_sha256`. Standard library only, imported by the catalog.
"""

from __future__ import annotations

__all__ = ["is_sha256"]

_HEX = frozenset("0123456789abcdef")


def is_sha256(text: object) -> bool:
    """Whether ``text`` is a sha256 digest written as 64 lowercase hexadecimal digits."""
    return isinstance(text, str) and len(text) == 64 and _HEX.issuperset(text)
