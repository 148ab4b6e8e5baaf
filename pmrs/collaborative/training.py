"""Training stages over a work directory: read inputs, train, write a run directory."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from ..artifacts import new_run_name
from ..config import WMF_ENGINES
from ..interactions import INTERACTIONS_DIR, Interactions
from .neighbours import NEIGHBOURS_DIR, NeighboursConfig, build_neighbours
from .neighbours import save_run as save_neighbours_run
from .wmf import WMF_DIR, WMFConfig, decayed, play_ages, save_run, train_wmf

log = logging.getLogger(__name__)


def first_played(inter: Interactions):
    """Each stored play's first time (epoch seconds, 0 unknown), ``None`` when the plays have no
    times: what a time validation split holds out by (``SelectConfig.split``)."""
    return inter.time["first_played"] if inter.time is not None else None


def train_wmf_run(workdir: str | Path, cfg: WMFConfig, run: str | None = None,
                  show_progress: bool | None = None, select=None,
                  fixed: frozenset[str] = frozenset(), engine: str = "implicit",
                  spark_cfg=None, spark=None) -> Path:
    """Train WMF on ``<workdir>/interactions`` and write ``models/wmf/<run>/``.

    ``select`` (a :class:`~pmrs.collaborative.selection.SelectConfig`, enabled): first choose the settings not
    named in ``fixed`` on a validation split of the interactions (:func:`~pmrs.collaborative.selection.select_settings`),
    then fit once on everything; the choice and the search table go into ``config.json`` and
    ``train_log.json`` under ``"selection"``.

    ``engine``: ``"implicit"`` (this process) or ``"spark"`` (MLlib's ALS,
    :mod:`pmrs.collaborative.spark`, with ``spark_cfg`` or a running session ``spark``). Selection always
    searches with implicit (on a sample of users when the data are large); its settings mean the
    same to both engines, and the Spark fit translates the regularization. Both engines write the
    same files; ``config.json`` and ``train_log.json`` name the engine, and a Spark run records
    what was translated under ``"spark"``.
    """
    from .selection import select_settings

    if engine not in WMF_ENGINES:
        raise ValueError(f"engine must be one of {', '.join(WMF_ENGINES)}, got {engine!r}")
    workdir = Path(workdir)
    t0 = time.perf_counter()
    inter = Interactions.load(workdir / INTERACTIONS_DIR)
    load_s = time.perf_counter() - t0
    # each play's age, when the plays have times: the confidence may decay with it
    ages = play_ages(inter.matrix, inter.time["last_played"] if inter.time else None)
    selection, select_s = None, 0.0
    if select is not None and select.enabled:
        t_sel = time.perf_counter()
        selection = select_settings(inter.matrix, cfg, fixed, select, ages=ages, first_played=first_played(inter),
                                    show_progress=show_progress)
        select_s = time.perf_counter() - t_sel
        cfg = selection.wmf
    log.info("training WMF (%s) on %d users x %d songs (%d plays), %d factors",
             engine, inter.n_users, inter.n_songs, inter.matrix.nnz, cfg.factors)
    t1 = time.perf_counter()
    translated, timings = {}, {}
    if engine == "spark":
        from .spark import SPARK_DIR, SparkConfig, train_wmf_spark

        spark_cfg = spark_cfg or SparkConfig()
        scratch = Path(spark_cfg.scratch_dir) if spark_cfg.scratch_dir else workdir / SPARK_DIR
        model, info = train_wmf_spark(decayed(inter.matrix, ages, cfg.half_life_days), cfg, scratch, spark_cfg, spark=spark)
        timings = {k: info.pop(k) for k in list(info) if k.endswith("_seconds")}
        translated = {"spark": info}
    else:
        model = train_wmf(decayed(inter.matrix, ages, cfg.half_life_days), cfg, show_progress=show_progress)
    fit_s = time.perf_counter() - t1
    run_dir = workdir / WMF_DIR / (run or new_run_name())
    chosen = {"selection": selection.as_dict()} if selection is not None else {}
    save_run(model, run_dir, inter.user_ids, inter.song_ids,
             extra={"engine": engine, "load_seconds": round(load_s, 3), "select_seconds": round(select_s, 3),
                    "fit_seconds": round(fit_s, 3), **({"spark_seconds": timings} if timings else {}),
                    "users": inter.n_users, "songs": inter.n_songs, "nonzeros": int(inter.matrix.nnz),
                    **translated, **chosen},
             config_extra={"engine": engine, **translated, **chosen})
    log.info("WMF: %.1fs load, %.1fs selection, %.1fs fit -> %s", load_s, select_s, fit_s, run_dir)
    return run_dir


def train_neighbours_run(workdir: str | Path, cfg: NeighboursConfig | None = None, run: str | None = None,
                         show_progress: bool | None = None, select=None, metadata_cfg=None) -> Path:
    """Build the neighbourhood model on ``<workdir>/interactions``; write ``models/neighbours/<run>/``.

    With ``cfg`` None and ``select`` enabled, its settings are chosen on a validation split
    (the neighbourhood part of :func:`~pmrs.collaborative.selection.select_settings`); otherwise ``cfg`` (default
    settings if None) is used as given.
    """
    from .selection import select_settings

    workdir = Path(workdir)
    inter = Interactions.load(workdir / INTERACTIONS_DIR)
    chosen = {}
    finalists = None
    if cfg is None and select is not None and select.enabled:
        selection = select_settings(inter.matrix, cfg=select, with_wmf=False, first_played=first_played(inter),
                                    show_progress=show_progress)
        cfg = selection.neighbours
        finalists = selection.finalists or None
        chosen = {"selection": selection.as_dict()}
    cfg = cfg or NeighboursConfig()
    if select is not None and select.enabled:
        # the setting (among the search's best of each similarity) and its share, through the blend
        share = _serving_share(workdir, inter, finalists or [cfg], select, show_progress, metadata_cfg)
        names = set(NeighboursConfig.__dataclass_fields__)
        cfg = NeighboursConfig(**{k: v for k, v in share["neighbours"].items() if k in names})
        if "selection" in chosen:
            chosen["selection"]["neighbours"] = share["neighbours"]
        chosen["serving_share"] = share
    model = build_neighbours(inter.matrix, cfg, show_progress=show_progress)
    run_dir = workdir / NEIGHBOURS_DIR / (run or new_run_name())
    save_neighbours_run(model, run_dir, inter.song_ids,
                        extra={"users": inter.n_users, "songs": inter.n_songs,
                               "nonzeros": int(inter.matrix.nnz), **chosen})
    log.info("neighbours: %d similarities in %.1fs -> %s", model.similarity.nnz,
             model.log["build_seconds"], run_dir)
    return run_dir


def _serving_share(workdir: Path, inter: Interactions, cfg, select, show_progress,
                   metadata_cfg=None) -> dict:
    """The neighbours source's default share in a bundle (and its setting, when ``cfg`` is several:
    the one whose share scores best), and the metadata source's when the work
    directory has a catalog (``metadata_cfg``: how ``indexer build`` will make its vectors),
    chosen on a validation split (:func:`pmrs.collaborative.share.choose_neighbours_share`) with
    the latest WMF run's settings (the defaults when there is none)."""
    from ..artifacts import list_runs, read_json
    from ..catalog import CATALOG_FILE
    from .share import ShareConfig, choose_neighbours_share

    runs = list_runs(workdir / WMF_DIR)
    names = set(WMFConfig.__dataclass_fields__)
    wmf_cfg = (WMFConfig(**{k: v for k, v in read_json(runs[-1] / "config.json").items() if k in names})
               if runs else WMFConfig())
    metadata = None
    if (workdir / CATALOG_FILE).is_file():
        from ..metadata import catalog_vectors

        mv = catalog_vectors(workdir / CATALOG_FILE, metadata_cfg)
        metadata = (mv.song_ids, mv.vectors)
    share_cfg = ShareConfig(seed=select.seed, holdout_fraction=select.holdout_fraction, min_songs=select.min_songs,
                            split=select.split)
    out = choose_neighbours_share(inter.matrix, wmf_cfg, cfg, share_cfg, show_progress=show_progress,
                                  song_ids=inter.song_ids, metadata=metadata, first_played=first_played(inter))
    out["wmf_run"] = runs[-1].name if runs else None
    return out
