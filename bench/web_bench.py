"""Page load times of ``pmrs-web`` on the demo world, in the headless Chromium the tests use.

Starts ``pmrs-server`` and ``pmrs-web`` over a work directory that ``make demo`` built (default
``bench/data/web-demo/work``, built with ``python -m pmrs.demo --dir bench/data/web-demo`` when
missing), loads each main view ``--loads`` times after one warm-up load and records its load time
(Navigation Timing: navigation start to the end of the load event, so HTML, CSS, script and
images are in) and the server's part (request start to response end); then times the listener's
re-query as a slider moves (the page's own fetch of the list fragment, timed in the page).
The aim (issue 14): every page loads in under 300 ms. Writes ``bench/results/web.json``.

    python -m bench.web_bench [--workdir DIR] [--loads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

from bench.common import DATA, write_result

AIM_MS = 300.0
DEMO_DIR = DATA / "web-demo"


def _pcts(values: list[float]) -> dict:
    v = np.asarray(values)
    return {"median_ms": round(float(np.median(v)), 1), "p90_ms": round(float(np.percentile(v, 90)), 1),
            "max_ms": round(float(v.max()), 1), "loads": len(values)}


def _start_server(workdir: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "pmrs_server.main", "--workdir", str(workdir), "--bind",
                             "127.0.0.1:0", "-q"], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise RuntimeError(f"pmrs-server did not start: {line!r}")
    return proc, line.split()[-1]


def bench_web(command: str, workdir: Path, loads: int = 20) -> dict:
    import pmrs
    from pmrs.web.browser import VIEWS, headless, load_ms
    from pmrs.web.data import WorkdirData
    from pmrs.web.showcase import WebApp

    server, target = _start_server(workdir)
    try:
        with pmrs.connect(target) as client:
            info = client.info()
            user = bytes(WorkdirData(workdir).snapshot().users()[0]).decode()
            song = client.recommend(user, k=1).songs[0].song_id
        with WebApp(workdir, target) as web:
            driver = headless()
            try:
                views = {}
                for name, path in VIEWS:
                    url = web.url + path.format(user=user, song=song)
                    load_ms(driver, url)                       # warm-up: caches, first-use tables
                    total, server_part = [], []
                    for _ in range(loads):
                        total.append(load_ms(driver, url))
                        server_part.append(driver.execute_script(
                            "const n = performance.getEntriesByType('navigation')[0];"
                            "return n.responseEnd - n.requestStart;"))
                    views[name] = {"path": path, "load": _pcts(total), "server": _pcts(server_part)}
                    print(f"{name:9s} load median {views[name]['load']['median_ms']} ms, p90 "
                          f"{views[name]['load']['p90_ms']}, max {views[name]['load']['max_ms']}", flush=True)
                # the listener's re-query as a slider moves (what the page's script fetches)
                load_ms(driver, web.url + f"/?user={user}")
                requery = []
                for i in range(loads):
                    share = round(0.05 * (i % 20), 2)
                    requery.append(driver.execute_async_script(
                        "const done = arguments[arguments.length - 1]; const t = performance.now();"
                        f"fetch('/fragment/recommend?user={user}&share.acoustic={share}')"
                        ".then(r => r.text()).then(() => done(performance.now() - t));"))
                views["slider re-query"] = {"path": "/fragment/recommend?share.acoustic=...", "load": _pcts(requery)}
                print(f"re-query  median {views['slider re-query']['load']['median_ms']} ms", flush=True)
            finally:
                driver.quit()
    finally:
        server.terminate()
        server.wait(30)
    worst = max(v["load"]["p90_ms"] for v in views.values())
    load_avg = [round(x, 2) for x in os.getloadavg()]   # other work on the machine slows the browser most
    payload = {"workdir": str(workdir), "bundle": info.version, "users": info.users, "songs": info.songs,
               "sources": [s.name for s in info.sources], "views": views, "aim_ms": AIM_MS,
               "worst_p90_ms": worst, "within_aim": worst < AIM_MS,
               "load_average_1_5_15_min": load_avg,
               "median_of_medians_ms": round(statistics.median(v["load"]["median_ms"] for v in views.values()), 1)}
    write_result("web", payload, command)
    return payload


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.web_bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", type=Path, default=DEMO_DIR / "work")
    p.add_argument("--loads", type=int, default=20)
    args = p.parse_args(argv)
    command = "python -m bench.web_bench " + " ".join(argv if argv is not None else sys.argv[1:])
    if not (args.workdir / "bundles" / "CURRENT").is_file():
        if args.workdir != DEMO_DIR / "work":
            raise SystemExit(f"no bundle in {args.workdir}; run `make demo` (or indexer build) first")
        subprocess.run([sys.executable, "-m", "pmrs.demo", "--dir", str(DEMO_DIR)], check=True,
                       stdin=subprocess.DEVNULL)
    bench_web(command, args.workdir, args.loads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
