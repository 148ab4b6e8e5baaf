"""Per-user cache directories, so that nothing needs write access to the installation.

librosa compiles some of its functions with numba's ``cache=True``, whose cache goes next to
librosa's own files by default: a user who cannot write the virtualenv got an error at the first
clip. :func:`configure_numba_cache` points numba at :func:`user_cache_dir` instead; it must run
before numba is imported, and :mod:`pmrs.audio` (the only importer of librosa) calls it first.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

#: Sub-directory of the user cache directory that holds numba's compiled functions.
NUMBA_SUBDIR = "numba"


def user_cache_dir() -> Path:
    """PMRS's cache directory for this user: ``$XDG_CACHE_HOME/pmrs`` (default ``~/.cache/pmrs``),
    or ``<temp dir>/pmrs-cache-<uid>`` when that cannot be created or written. Created on demand."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    uid = os.getuid() if hasattr(os, "getuid") else 0
    candidates = [Path(base) / "pmrs", Path(tempfile.gettempdir()) / f"pmrs-cache-{uid}"]
    for path in candidates:
        try:
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError:
            continue
        if os.access(path, os.W_OK | os.X_OK):
            return path
    raise OSError(f"no writable cache directory: tried {', '.join(map(str, candidates))}; set "
                  "XDG_CACHE_HOME to a directory you can write")


def configure_numba_cache() -> str | None:
    """Set ``NUMBA_CACHE_DIR`` to ``<user_cache_dir>/numba`` unless the user set it; returns the
    directory numba will use (``None``: no writable directory found, numba's default stays).

    Call before numba is imported (numba reads the variable once, at import); if it already is,
    its setting is updated too.
    """
    chosen = os.environ.get("NUMBA_CACHE_DIR")
    if not chosen:
        try:
            path = user_cache_dir() / NUMBA_SUBDIR
            path.mkdir(exist_ok=True)
        except OSError as exc:
            log.warning("numba's cache stays in its default place: %s", exc)
            return None
        chosen = os.environ["NUMBA_CACHE_DIR"] = str(path)
    numba_config = sys.modules.get("numba.core.config")
    if numba_config is not None and getattr(numba_config, "CACHE_DIR", None) != chosen:
        numba_config.CACHE_DIR = chosen
    return chosen
