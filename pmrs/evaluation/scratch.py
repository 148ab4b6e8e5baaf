"""Scratch work directories: a split's training part as a work directory of its own, so that the
evaluation runs the very commands a user runs (train, build, serve) on it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..audio.store import FEATURES_FILE
from ..catalog import CATALOG_FILE
from ..interactions import INTERACTIONS_DIR, Interactions


def scratch_workdir(workdir: Path, inter: Interactions, train, prefix: str = ".scratch-",
                    parent: Path | None = None) -> Path:
    """A new directory under ``parent`` (default ``workdir``) whose interactions are ``train``
    (users x songs, the ids of ``inter``), sharing the catalog and the features of ``workdir``
    (symlinks). The caller removes it."""
    scratch = Path(tempfile.mkdtemp(prefix=prefix, dir=parent or workdir))
    Interactions(matrix=train.tocsr(), user_ids=inter.user_ids, song_ids=inter.song_ids).save(
        scratch / INTERACTIONS_DIR)
    for name in (CATALOG_FILE, FEATURES_FILE):
        if (workdir / name).exists():
            os.symlink((workdir / name).resolve(), scratch / name)
    return scratch
