"""The error ``pmrs ingest`` raises for input it cannot use (defined with the others in
:mod:`pmrs.errors`)."""

from __future__ import annotations

from ..errors import IngestError

__all__ = ["IngestError"]
