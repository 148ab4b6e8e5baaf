"""The error ``pmrs ingest`` raises for input it cannot use."""

from __future__ import annotations


class IngestError(ValueError):
    """The input cannot produce a usable model or catalog (missing, not a file, empty, in an
    unsupported encoding, or mostly malformed). The message names the file and says what to fix."""
