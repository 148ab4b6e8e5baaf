"""Cost of settings from the data, and of the neighbourhood model (issue 12).

``python -m bench.select_bench [--users N --songs N] [--kinds plain,selected,neighbours]``
(default: the Taste Profile's shape) times, each in its own process so its peak memory is its
own: a plain 15-iteration WMF fit at the default settings (``train-wmf --no-select``),
``train-wmf`` with its settings chosen on a validation split (the search plus the final fit,
:class:`~pmrs.collaborative.selection.SelectConfig` defaults), and the neighbourhood model's build. Each job
reports wall seconds and CPU seconds (user + system, all threads of its process): the
development machine is shared, and CPU time is the steadier measure under other people's load,
so the ratio is given both ways, with the load average around each job. The selected run's
record says how much of its counted budget it spent (``spent_in_plain_fits``) and how its wall
time splits into loading, search and final fit. Writes ``bench/results/select.json``
(``select-<users>x<songs>.json`` at another shape); ``python -m bench.run --only select`` runs
it at the full shape.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

from bench.common import DATA, FULL_SONGS, FULL_USERS, full_shape_world, peak_rss_mb, run_job, write_result

KINDS = ("plain", "selected", "neighbours")


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def job(kind: str, workdir: str) -> dict:
    from pmrs.collaborative.training import train_neighbours_run, train_wmf_run
    from pmrs.collaborative.selection import SelectConfig
    from pmrs.collaborative.wmf import WMFConfig

    load = os.getloadavg()[0]
    c0, t0 = cpu_seconds(), time.perf_counter()
    if kind == "plain":
        run = train_wmf_run(workdir, WMFConfig(), show_progress=False)
    elif kind == "selected":
        run = train_wmf_run(workdir, WMFConfig(), show_progress=False, select=SelectConfig())
    else:
        from pmrs.collaborative.neighbours import NeighboursConfig

        run = train_neighbours_run(workdir, NeighboursConfig(), show_progress=False)
    out = {"seconds": round(time.perf_counter() - t0, 2), "cpu_seconds": round(cpu_seconds() - c0, 2),
           "peak_rss_mb": round(peak_rss_mb()), "load_average_1min": [round(load, 2),
                                                                     round(os.getloadavg()[0], 2)],
           "run": str(run)}
    if kind in ("plain", "selected"):
        log = json.loads((run / "train_log.json").read_text())
        out["split_seconds"] = {k: log[f"{k}_seconds"] for k in ("load", "select", "fit")}
    if kind == "selected":
        sel = json.loads((run / "config.json").read_text())["selection"]
        out.update({k: sel[k] for k in ("sampled_users", "sampled_songs", "validation_users",
                                        "spent_in_plain_fits", "budget_in_plain_fits",
                                        "final_fit_in_plain_fits") if k in sel},
                   search_seconds=sel["seconds"],
                   chosen=sel["wmf"],
                   trials=sum(t["model"] == "wmf" for t in sel["trials"]))
    return out


def bench_select(command: str, users: int = FULL_USERS, songs: int = FULL_SONGS,
                 kinds: tuple[str, ...] = KINDS, parallel: bool = False) -> dict:
    """Run the jobs on a ``users`` x ``songs`` world (written and ingested once, then cached under
    bench/data), one after the other or, with ``parallel``, side by side (on a machine others
    load anyway: each job's CPU seconds stay its own); write the result JSON; return it."""
    world = full_shape_world(users, songs)
    workdir = DATA / f"work-{users}x{songs}"
    if not (workdir / "interactions").exists():
        from pmrs.ingest import ingest

        ingest(world, workdir)
    results: dict = {"shape": {"users": users, "songs": songs}, "jobs_in_parallel": parallel}

    def one(kind: str) -> dict:
        out = run_job("bench.select_bench", "--job", kind, "--workdir", str(workdir))
        print(f"{kind}: {json.dumps(out)}", flush=True)
        return out

    if parallel:  # side by side: each job's CPU seconds are its own; wall times share the cores
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(kinds)) as pool:
            results.update(zip(kinds, pool.map(one, kinds)))
    else:
        results.update((kind, one(kind)) for kind in kinds)
    if "plain" in results and "selected" in results:
        plain, sel = results["plain"], results["selected"]
        results["selected_over_plain"] = round(sel["seconds"] / plain["seconds"], 2)
        results["selected_over_plain_cpu"] = round(sel["cpu_seconds"] / plain["cpu_seconds"], 2)
        results["limit_selected_over_plain"] = 2.0
        results["within_limit"] = max(results["selected_over_plain"],
                                      results["selected_over_plain_cpu"]) <= 2.0
    name = "select" if (users, songs) == (FULL_USERS, FULL_SONGS) else f"select-{users}x{songs}"
    out = write_result(name, results, command)
    print(f"selected / plain: {results.get('selected_over_plain')} wall, "
          f"{results.get('selected_over_plain_cpu')} CPU; written to {out}", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.select_bench")
    p.add_argument("--users", type=int, default=FULL_USERS)
    p.add_argument("--songs", type=int, default=FULL_SONGS)
    p.add_argument("--kinds", default=",".join(KINDS), help="jobs to run, of " + ",".join(KINDS))
    p.add_argument("--parallel", action="store_true",
                   help="run the jobs side by side (compare CPU seconds, not wall)")
    p.add_argument("--job", help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.job:  # child process
        print(json.dumps(job(args.job, args.workdir)))
        return 0
    kinds = tuple(k for k in args.kinds.split(",") if k)
    if not set(kinds) <= set(KINDS):
        p.error(f"--kinds takes {','.join(KINDS)}; got {args.kinds}")
    command = "python -m bench.select_bench " + " ".join(argv if argv is not None else sys.argv[1:])
    bench_select(command.strip(), args.users, args.songs, kinds, args.parallel)
    return 0


if __name__ == "__main__":
    sys.exit(main())
