"""What an id is: one rule for user, song and request ids, from files and from live writes.

An id is text that survives every place PMRS keeps it: UTF-8 (a string that cannot be encoded,
such as a lone surrogate, is refused), at most :data:`MAX_ID_BYTES` bytes of it (ids are stored
as fixed-width bytes: one long id widens every stored id), no NUL character (numpy's fixed-width
bytes drop trailing NULs, so ``"x\\0"`` would become ``"x"`` at the next rebuild and collide),
and no whitespace at either end (readers of files trim it, so such an id could never be named
again from a file). Readers of files report a bad id as a malformed row; live writes refuse it
with ``InvalidArgument``.
"""

from __future__ import annotations

from .errors import InvalidArgument

#: Longest accepted id, in bytes of UTF-8 (MSD user ids are 40, song and track ids 18).
MAX_ID_BYTES = 256

NOT_UTF8 = "not valid UTF-8"
NUL_IN_ID = "NUL byte in an id"
ID_TOO_LONG = "id too long"
EMPTY_ID = "empty id"
SPACE_AT_END = "whitespace at either end of an id"


def id_problem(value: str | bytes) -> str | None:
    """Why ``value`` cannot be an id (one of this module's reasons), or ``None`` when it can."""
    if isinstance(value, str):
        try:
            raw = value.encode("utf-8")
        except UnicodeEncodeError:
            return NOT_UTF8
    elif isinstance(value, (bytes, bytearray)):
        raw = bytes(value)
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError:
            return NOT_UTF8
    else:
        return EMPTY_ID
    if not raw:
        return EMPTY_ID
    if "\x00" in value:
        return NUL_IN_ID
    if len(raw) > MAX_ID_BYTES:
        return ID_TOO_LONG
    if value != value.strip():
        return EMPTY_ID if not value.strip() else SPACE_AT_END
    return None


def check_id(name: str, value) -> str:
    """``value`` when it is an id; else :class:`pmrs.InvalidArgument` naming ``name`` and why."""
    if not isinstance(value, str):
        raise InvalidArgument(f"{name} must be a string, got {type(value).__name__}")
    why = id_problem(value)
    if why == EMPTY_ID:
        raise InvalidArgument(f"{name} is required")
    if why is not None:
        shown = value.encode("utf-8", "backslashreplace")[:60].decode("utf-8", "replace")
        raise InvalidArgument(f"{name} {shown!r}: {why} (ids are UTF-8, at most {MAX_ID_BYTES} bytes, "
                              "without NUL characters or whitespace at either end)")
    return value
