"""Quoting values a user sent, or a file held, in messages: never the whole of an overlong value.

An error message that echoes a 10 KB id whole can exceed gRPC's metadata limit (the client then
gets RESOURCE_EXHAUSTED instead of the status meant) and floods logs; quote a prefix instead.
"""

from __future__ import annotations

#: Characters of a value quoted in a message; the rest is replaced by "…".
QUOTE_LIMIT = 64


def quote_prefix(value: str | bytes, limit: int = QUOTE_LIMIT) -> str:
    """``repr`` of ``value``'s first ``limit`` characters (bytes: of its first ``limit`` bytes),
    followed by ``…`` and the full length when it was cut.

    >>> quote_prefix("abc")
    "'abc'"
    >>> quote_prefix("x" * 100, limit=4)
    "'xxxx'… (100 characters)"
    """
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    if len(value) <= limit:
        return repr(value)
    unit = "bytes" if isinstance(value, bytes) else "characters"
    return f"{value[:limit]!r}… ({len(value):,} {unit})"
