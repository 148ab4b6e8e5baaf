"""numba's cache (librosa's JIT functions) goes to a per-user directory, never the installation."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from pmrs import usercache

ROOT = Path(__file__).resolve().parents[1]


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def test_user_cache_dir_follows_xdg_and_falls_back_to_a_temp_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert usercache.user_cache_dir() == tmp_path / "xdg" / "pmrs"
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker / "cannot-be-a-dir"))
    fallback = usercache.user_cache_dir()
    assert fallback.parent == Path(tempfile.gettempdir()) and fallback.name.startswith("pmrs-cache-")
    assert os.access(fallback, os.W_OK)


def test_a_cache_dir_set_by_the_user_is_kept(monkeypatch, tmp_path):
    monkeypatch.delitem(sys.modules, "numba.core.config", raising=False)  # keep this process's numba
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "mine"))
    assert usercache.configure_numba_cache() == str(tmp_path / "mine")


def test_numba_caches_into_the_user_dir_once_pmrs_audio_is_imported(tmp_path):
    """In a fresh process: importing pmrs.audio (as `pmrs extract` does before librosa) sets
    NUMBA_CACHE_DIR, and a ``cache=True`` function (as librosa's are) is cached there, not beside
    its source: a read-only installation is never written."""
    module = tmp_path / "pkg" / "jitted.py"
    module.parent.mkdir()
    module.write_text("import numba\n\n@numba.njit(cache=True)\ndef plus_one(x):\n    return x + 1\n")
    code = ("import os, sys\nimport pmrs.audio\n"
            "assert 'numba' not in sys.modules and 'librosa' not in sys.modules\n"
            f"sys.path.insert(0, {str(module.parent)!r})\n"
            "import jitted, numba\nassert jitted.plus_one(1) == 2\n"
            "print(os.environ['NUMBA_CACHE_DIR']); print(numba.config.CACHE_DIR)\n")
    out = subprocess.run([sys.executable, "-c", code], env=_env(XDG_CACHE_HOME=str(tmp_path / "xdg")),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    expected = tmp_path / "xdg" / "pmrs" / usercache.NUMBA_SUBDIR
    assert out.stdout.split() == [str(expected)] * 2
    assert list(expected.rglob("jitted.plus_one*.nbi"))  # the cache index landed in the user dir
    assert not (module.parent / "__pycache__").exists() or \
        not list((module.parent / "__pycache__").glob("*.nbi"))
