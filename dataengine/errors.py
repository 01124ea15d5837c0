"""Turning an exception into the one line a user reads."""

from __future__ import annotations


def one_line(exc: BaseException) -> str:
    """The first non-empty line of the exception's message, or its type name when it has none."""
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    return first or type(exc).__name__
