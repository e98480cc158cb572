"""Shared HTTP: the client, sha256-pinned cached downloads."""
