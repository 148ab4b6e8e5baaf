"""Shared benchmark plumbing: the full-shape data file, child-process jobs, result files."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent
DATA = ROOT / "data"
RESULTS = ROOT / "results"

#: The Taste Profile's shape.
FULL_USERS, FULL_SONGS = 1_019_318, 384_546


def full_shape_world(users: int = FULL_USERS, songs: int = FULL_SONGS) -> Path:
    """A synthetic data folder of the given shape (cached; written by ``pmrs synth``)."""
    folder = DATA / f"world-{users}x{songs}"
    if not (folder / "truth.json").exists():
        subprocess.run([sys.executable, "-m", "pmrs.cli", "synth", str(folder), "--users", str(users),
                        "--songs", str(songs), "--no-audio", "--cold-share", "0", "--seed", "7",
                        "--lastfm", "none"],   # (the serving figures stay comparable: two sources)
                       check=True)
    return folder


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class TreeMemory:
    """Peak resident memory of this process and all its descendants together (a JVM that pyspark
    starts is a child; ``ru_maxrss`` would miss it), sampled every ``interval`` seconds by a thread.

        with TreeMemory() as mem:
            ...
        mem.peak_mb, mem.peak_self_mb
    """

    def __init__(self, interval: float = 0.2):
        import threading

        self.interval = interval
        self.peak_mb = self.peak_self_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        import psutil

        me = psutil.Process()
        total = own = me.memory_info().rss
        for child in me.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:  # ended between listing and reading
                pass
        self.peak_mb = max(self.peak_mb, total / 2**20)
        self.peak_self_mb = max(self.peak_self_mb, own / 2**20)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> TreeMemory:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()
        self.peak_self_mb = max(self.peak_self_mb, peak_rss_mb())  # the kernel's exact peak of this process
        self.peak_mb = max(self.peak_mb, self.peak_self_mb)  # a peak between two samples counts too


def run_job(module: str, *args: str) -> dict:
    """Run ``python -m module args`` in a fresh process (so its peak memory is its own); the job
    prints one JSON object as its last stdout line."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", module, *args], check=True, stdout=subprocess.PIPE,
                          text=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result.setdefault("wall_seconds", round(time.perf_counter() - t0, 2))
    return result


def machine() -> dict:
    return {"cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}


REPO = ROOT.parent


def relative_paths(obj):
    """``obj`` (JSON-able) with every string that is a path inside the repository made relative
    to it: a committed result must not name the machine that produced it."""
    if isinstance(obj, dict):
        return {k: relative_paths(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [relative_paths(v) for v in obj]
    if isinstance(obj, str) and obj.startswith(str(REPO) + os.sep):
        return os.path.relpath(obj, REPO)
    return obj


def write_result(name: str, payload: dict, command: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}.json"
    doc = {"benchmark": name, "command": command,
           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine(),
           **relative_paths(payload)}
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.replace(out)
    return out


@contextlib.contextmanager
def started(argv: list[str], env: dict | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """A server command (``argv``, run with this Python) that prints ``... listening on ADDRESS``
    first: yields ``(ADDRESS, process)`` once it does; stopped (SIGTERM, then killed) on exit."""
    proc = subprocess.Popen([sys.executable, *argv], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", "OMP_WAIT_POLICY": "PASSIVE", **(env or {})})
    try:
        line = proc.stdout.readline()
        if "listening on" not in line:
            raise RuntimeError(f"{argv[1] if len(argv) > 1 else argv} did not start: {line!r}")
        yield line.strip().rsplit(" ", 1)[-1], proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def workdir_bench(prog: str, run: Callable[..., dict], argv: list[str] | None = None, **counts: int) -> dict:
    """The command line of a bench over a work directory with a bundle (``--workdir``, the full
    shape's by default) and integer options (``counts``: name and default); calls
    ``run(command, workdir, **counts)`` with the command line as given."""
    p = argparse.ArgumentParser(prog=f"python -m {prog}")
    p.add_argument("--workdir", type=Path, default=DATA / f"work-{FULL_USERS}x{FULL_SONGS}")
    for name, default in counts.items():
        p.add_argument(f"--{name}", type=int, default=default)
    args = p.parse_args(argv)
    given = sys.argv[1:] if argv is None else argv
    return run(" ".join([f"python -m {prog}", *given]), args.workdir, **{k: getattr(args, k) for k in counts})
