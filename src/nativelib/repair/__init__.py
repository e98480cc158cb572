"""``nativelib repair``: turn vendored runtime copies in a wheel into a dependency on the
shared runtime wheel. See ``docs/repair.md``."""
