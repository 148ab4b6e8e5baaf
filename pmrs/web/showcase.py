"""``pmrs-web`` as a process beside a running ``pmrs-server``: what ``make demo`` ends with
(screenshots of the main views into ``reports/web/``, the URL printed) and what the page-load
bench starts."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

from pmrs.evaluation.holdout import REPORTS_DIR

#: Where ``make demo`` puts the screenshots, under the work directory.
SCREENSHOTS_DIR = "web"


class WebApp:
    """``pmrs-web`` started as its own process (``python -m pmrs.web``); ``url`` once listening.
    ``token``: the write token it gets through its environment. A context manager."""

    def __init__(self, workdir: str | os.PathLike, target: str, *, token: str | None = None,
                 bind: str = "127.0.0.1:0", timeout_s: float = 60.0, stderr=None):
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if token:
            env["PMRS_WRITE_TOKEN"] = token
        self.proc = subprocess.Popen([sys.executable, "-m", "pmrs.web", "--workdir", str(workdir), "--target",
                                      target, "--bind", bind, "-q"], stdout=subprocess.PIPE, stderr=stderr, text=True,
                                     env=env, cwd=Path(__file__).resolve().parents[2])
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in self.proc.stdout], daemon=True).start()
        try:
            line = lines.get(timeout=timeout_s)
        except queue.Empty:
            line = ""
        if "listening on" not in line:
            self.stop()
            raise RuntimeError(f"pmrs-web did not start: {line!r}")
        self.url = line.split()[-1]

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def __enter__(self) -> "WebApp":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def serve_beside(work: Path, target: str, token: str | None, user: str, song: str,
                 wait: bool | None = None) -> list[Path]:
    """Start ``pmrs-web`` beside the server at ``target``, photograph the main views into
    ``<work>/reports/web/`` with the headless browser, print the files and the URL; then, when
    ``wait`` (default: standard input is a terminal), keep serving until Enter or Ctrl-C.
    Returns the screenshots written (none, with a note, when there is no browser)."""
    from .browser import INSTALL_HINT, find_browser, screenshots

    shots: list[Path] = []
    with WebApp(work, target, token=token, bind=os.environ.get("PMRS_WEB_BIND", "127.0.0.1:0")) as web:
        print(f"pmrs-web listening on {web.url}", flush=True)
        if find_browser() is None:
            print(f"(no screenshots: {INSTALL_HINT})", flush=True)
        else:
            shots = screenshots(web.url, work / REPORTS_DIR / SCREENSHOTS_DIR, user, song)
            print("screenshots of the main views:\n" + "\n".join(f"  {p}" for p in shots), flush=True)
        if wait if wait is not None else sys.stdin.isatty():
            print(f"\nOpen {web.url} in a browser; press Enter (or Ctrl-C) to stop pmrs-web and pmrs-server.",
                  flush=True)
            try:
                input()
            except (EOFError, KeyboardInterrupt):
                pass
        else:
            print(f"\nTo look around: start `pmrs-server --workdir {work}` and `pmrs-web --workdir {work} "
                  f"--target <its address>`, then open http://127.0.0.1:8080", flush=True)
    return shots
