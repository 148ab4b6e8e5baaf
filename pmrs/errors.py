"""The exceptions PMRS raises on purpose, under one root: :class:`PMRSError`.

Every class names its gRPC status in ``code`` (``"NOT_FOUND"``, ...): the server answers a call
that raised one with that status (``pmrs_server.servicer``), and a remote recommender
(:func:`pmrs.connect`) raises the class of the status it got back (:func:`from_status`), with
the server's message. So ``except pmrs.NotFound`` catches an unknown user in process and over the
wire alike.

Several keep a second, built-in base so that older ``except ValueError`` / ``except
LookupError`` / ``except RuntimeError`` callers keep working: :class:`InvalidArgument`,
:class:`IngestError`, :class:`ContractError` and :class:`AudioError` are ``ValueError``\\ s,
:class:`NotFound` a ``LookupError``, :class:`LogUnavailable` a ``RuntimeError``.

No imports beyond the standard library: a remote client loads this without the bundle machinery.
"""

from __future__ import annotations

__all__ = ["AlreadyExists", "AudioError", "ContractError", "DeadlineExceeded", "IngestError", "InvalidArgument",
           "LogUnavailable", "NotFound", "PMRSError", "PermissionDenied", "ReadOnly", "ResourceExhausted",
           "Unauthenticated", "Unavailable", "from_status"]


class PMRSError(Exception):
    """The root of every exception PMRS raises on purpose; the message is meant for the caller.

    ``code``: the gRPC status name the error travels as (``"UNKNOWN"`` here; each subclass names
    its own; an error rebuilt from a status no subclass has keeps that status's name).
    """

    code: str = "UNKNOWN"

    def __init__(self, *args, code: str | None = None) -> None:
        super().__init__(*args)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        """The message alone (``str(exc)``)."""
        return str(self)


class InvalidArgument(PMRSError, ValueError):
    """A setting or filter out of range, a malformed request, or one that names neither a user
    nor seed songs."""

    code = "INVALID_ARGUMENT"


class NotFound(PMRSError, LookupError):
    """An unknown user or song, or a song without the vector the request needs."""

    code = "NOT_FOUND"


class AlreadyExists(InvalidArgument):
    """A song id that is already in the catalog (an :class:`InvalidArgument` too, as before)."""

    code = "ALREADY_EXISTS"


class ReadOnly(PMRSError):
    """A write to a recommender that takes none (opened without ``live``, or a server serving
    without its write log)."""

    code = "FAILED_PRECONDITION"


class ResourceExhausted(PMRSError):
    """A request over a size limit (an ``add_song`` clip over ``MAX_CLIP_BYTES``)."""

    code = "RESOURCE_EXHAUSTED"


class Unavailable(PMRSError):
    """No answer now, retry later: the server cannot be reached or has no bundle loaded yet, or
    the write log cannot take a write."""

    code = "UNAVAILABLE"


class LogUnavailable(Unavailable, RuntimeError):
    """The write log cannot take (or give) writes now: full disk, read-only file, lock timeout."""


class DeadlineExceeded(PMRSError):
    """The call's deadline passed before its answer was ready."""

    code = "DEADLINE_EXCEEDED"


class Unauthenticated(PMRSError):
    """A call that needs a token sent none."""

    code = "UNAUTHENTICATED"


class PermissionDenied(PMRSError):
    """The token sent is not valid for the call, or the server takes no writes (it has no write
    token)."""

    code = "PERMISSION_DENIED"


class IngestError(PMRSError, ValueError):
    """The input cannot produce a usable model or catalog (missing, not a file, empty, in an
    unsupported encoding, or mostly malformed). The message names the file and says what to fix."""

    code = "INVALID_ARGUMENT"


class ContractError(PMRSError, ValueError):
    """A bundle or a ``CURRENT`` file that breaks the contract; the message says what and where."""

    code = "FAILED_PRECONDITION"


class AudioError(PMRSError, ValueError):
    """A file that cannot be used as a clip.

    Attributes
    ----------
    reason : str
        Short machine-readable reason: ``"unreadable"`` (no decoder could open it), ``"empty"``
        (no audio in it), ``"truncated"`` (it breaks off before any usable audio),
        ``"non-finite"`` (NaN or infinite samples); the extractor adds ``"too-short"`` and
        ``"silent"``.
    detail : str
        A human-readable explanation.
    """

    code = "INVALID_ARGUMENT"

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail

    def __reduce__(self):  # picklable across process pools
        return (type(self), (self.reason, self.detail))


#: The class a status code comes back as over the wire (the one the server raises for it).
_BY_STATUS: dict[str, type[PMRSError]] = {
    cls.code: cls for cls in (InvalidArgument, NotFound, AlreadyExists, ReadOnly, ResourceExhausted, Unavailable,
                              DeadlineExceeded, Unauthenticated, PermissionDenied)}


def from_status(code: str, message: str) -> PMRSError:
    """The library's exception for a gRPC status name and the server's message: the class whose
    ``code`` it is (``"NOT_FOUND"`` -> :class:`NotFound`), else a :class:`PMRSError` carrying
    the name (``"INTERNAL"``, ``"CANCELLED"``, ...)."""
    cls = _BY_STATUS.get(code)
    return cls(message) if cls is not None else PMRSError(message, code=code)
