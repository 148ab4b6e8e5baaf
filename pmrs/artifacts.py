"""Writing artefacts atomically and finding model runs.

Every file PMRS writes goes to a temporary name in the same directory first and is renamed into
place, so a crash never leaves a half-written artefact under the final name. A run directory
(``models/wmf/<run>``, ``reports/<run>``) is assembled under a hidden temporary name and renamed
as a whole.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

_UMASK = os.umask(0)
os.umask(_UMASK)


def _tmp_path(path: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(name, 0o666 & ~_UMASK)  # mkstemp makes 0600; artefacts get the usual mode
    return Path(name)


def tmp_path(path: str | os.PathLike) -> Path:
    """A fresh temporary file beside ``path`` (same filesystem, so ``os.replace`` is atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return _tmp_path(path)


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """``np.save`` to a temp file, then rename. Object arrays are refused (no pickles)."""
    path = Path(path)
    if array.dtype == object:
        raise TypeError(f"refusing to save an object array to {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    try:
        with tmp.open("wb") as fh:
            np.save(fh, array, allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise



def save_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez`` of ``arrays`` to a temp file, then rename. Object arrays are refused."""
    path = Path(path)
    if any(np.asarray(a).dtype == object for a in arrays.values()):
        raise TypeError(f"refusing to save an object array to {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    try:
        with tmp.open("wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

def load_npy(path: str | os.PathLike, mmap: bool = False) -> np.ndarray:
    """Load a ``.npy`` file without ever unpickling."""
    return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def write_text(path: str | os.PathLike, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def new_run_name(prefix: str = "") -> str:
    """A sortable run name: UTC timestamp plus a short random suffix."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    suffix = os.urandom(2).hex()
    return f"{prefix}{stamp}-{suffix}"


@contextmanager
def staged_dir(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success rename it to ``final`` (which must not exist)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():
        raise FileExistsError(f"{final} already exists")
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def list_runs(parent: str | os.PathLike) -> list[Path]:
    """Completed run directories under ``parent``, oldest first (hidden/partial ones excluded)."""
    parent = Path(parent)
    if not parent.is_dir():
        return []
    return sorted(p for p in parent.iterdir() if p.is_dir() and not p.name.startswith("."))


def resolve_run(parent: str | os.PathLike, name: str | None = None) -> Path:
    """The named run under ``parent``, or the latest one; a clear error when there is none."""
    parent = Path(parent)
    if name:
        candidate = Path(name)
        run = candidate if candidate.is_dir() else parent / name
        if not run.is_dir():
            raise FileNotFoundError(f"no run named {name!r} under {parent}")
        return run
    runs = list_runs(parent)
    if not runs:
        raise FileNotFoundError(f"no runs under {parent}; train one first")
    return runs[-1]


def replace_dir(new: str | os.PathLike, final: str | os.PathLike) -> None:
    """Put directory ``new`` at ``final``, replacing what is there with two renames.

    The old directory is moved aside first and deleted only after ``new`` is in place, so a crash
    leaves either the old or the new version under ``final`` (or, between the two renames, the
    old one under a hidden ``.<name>.old`` sibling).
    """
    new, final = Path(new), Path(final)
    old = final.with_name(f".{final.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        os.replace(final, old)
    os.replace(new, final)
    shutil.rmtree(old, ignore_errors=True)
