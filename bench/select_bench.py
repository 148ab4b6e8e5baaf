"""Cost of settings from the data, and of the neighbourhood model (issue 12).

``python -m bench.select_bench [--users N --songs N]`` (default: the Taste Profile's shape) times,
each in its own process so its peak memory is its own: a plain 15-iteration WMF fit at the
default settings, ``train-wmf`` with its settings chosen on a validation split (the search plus
the final fit), and the neighbourhood model's build. Writes ``bench/results/select.json``. Not
one of ``bench.run``'s jobs: run it on its own.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from bench.common import FULL_SONGS, FULL_USERS, full_shape_world, peak_rss_mb, run_job, write_result


def job(kind: str, workdir: str) -> dict:
    from pmrs.training import train_neighbours_run, train_wmf_run
    from pmrs.tuning import SelectConfig
    from pmrs.wmf import WMFConfig

    t0 = time.perf_counter()
    if kind == "plain":
        run = train_wmf_run(workdir, WMFConfig(), show_progress=False)
    elif kind == "selected":
        run = train_wmf_run(workdir, WMFConfig(), show_progress=False, select=SelectConfig())
    else:
        from pmrs.neighbours import NeighboursConfig

        run = train_neighbours_run(workdir, NeighboursConfig(), show_progress=False)
    out = {"seconds": round(time.perf_counter() - t0, 2), "peak_rss_mb": round(peak_rss_mb()), "run": str(run)}
    if kind == "selected":
        sel = json.loads((run / "config.json").read_text())["selection"]
        out.update({k: sel[k] for k in ("sampled_users", "validation_users", "spent_in_plain_fits",
                                        "budget_in_plain_fits", "seconds")}, chosen=sel["wmf"],
                   wmf_share=sel["wmf_share"])
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.select_bench")
    p.add_argument("--users", type=int, default=FULL_USERS)
    p.add_argument("--songs", type=int, default=FULL_SONGS)
    p.add_argument("--job", help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.job:  # child process
        print(json.dumps(job(args.job, args.workdir)))
        return 0
    world = full_shape_world(args.users, args.songs)
    workdir = world.parent / f"work-{args.users}x{args.songs}"
    if not (workdir / "interactions").exists():
        from pmrs.ingest import ingest

        ingest(world, workdir)
    results = {kind: run_job("bench.select_bench", "--job", kind, "--workdir", str(workdir))
               for kind in ("plain", "selected", "neighbours")}
    results["selected_over_plain"] = round(results["selected"]["seconds"] / results["plain"]["seconds"], 2)
    results["shape"] = {"users": args.users, "songs": args.songs}
    name = "select" if (args.users, args.songs) == (FULL_USERS, FULL_SONGS) else \
        f"select-{args.users}x{args.songs}"
    out = write_result(name, results, "python -m bench.select_bench " + " ".join(argv or sys.argv[1:]))
    print(json.dumps(results, indent=2))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
