"""Text helpers shared by error messages."""

from __future__ import annotations

#: Characters of a caller's value an error message quotes at most.
QUOTE_LIMIT = 64


def quote_prefix(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``repr`` of ``value`` (a string or bytes a caller sent) cut to its first ``limit``
    characters, with the full length noted when cut: an id of 10 KB must not be echoed whole."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) <= limit:
        return repr(text) if isinstance(value, str) else text
    return f"{text[:limit]!r}... ({len(text)} characters)"
