"""Settings from the data: random search over WMF settings on a validation split.

``pmrs tune``: the test split of ``pmrs evaluate --holdout`` (same settings and seed) is made
first and set aside: the validation split is drawn from its training matrix, and none of its
users are test users, so tuning never sees a held-out test song. Each trial trains on the
validation split's training part and is scored on its held-out part.

:func:`select_settings` is the same search run automatically by ``pmrs train-wmf`` and
``pmrs train-neighbours`` when settings are not given, within a cost budget (see
:class:`SelectConfig`): WMF's settings or the neighbourhood model's, each on its own. The share
each source gets in a served list is chosen through the server's blend
(:mod:`pmrs.collaborative.share`), and ``pmrs evaluate --holdout`` runs these same commands on
its split.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from tqdm import tqdm

from ..artifacts import new_run_name, staged_dir, write_json, write_text
from ..evaluation.metrics import evaluate_scores
from ..evaluation.split import (SPLITS, HoldoutConfig, draw_validation, make_split, pair_times, split_times,
                                times_matrix, validation_split)
from ..interactions import INTERACTIONS_DIR, Interactions
from .ease import LAMBDAS as EASE_LAMBDAS
from .ease import MAX_GIB as EASE_MAX_GIB
from .ease import dense_gib
from .neighbours import NeighboursConfig, build_neighbours
from ..report import markdown_table
from .wmf import WMFConfig, decayed, train_wmf

log = logging.getLogger(__name__)

TUNE_DIR = Path("models") / "tune"


@dataclass(frozen=True)
class TuneConfig:
    """Settings for ``pmrs tune`` (``[tune]`` in a TOML config)."""

    trials: int = 12
    iterations: int = 10
    seed: int = 0
    metric: str = "map@500"
    alphas: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
    epss: tuple[float, ...] = (0.1, 1.0, 10.0)
    regularizations: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)
    factors: tuple[int, ...] = (16, 32, 64, 128)
    #: half-lives (days) of a play's weight tried when the plays have times (0: no decay)
    half_lives: tuple[float, ...] = (0.0, 30.0, 180.0, 730.0)

    def __post_init__(self) -> None:
        if self.trials < 0 or self.iterations < 1:
            raise ValueError("trials must be >= 0 and iterations >= 1")
        if "@" not in self.metric and self.metric != "auc":
            raise ValueError(f"metric must look like map@500, recall@50, ndcg@10 or be auc; got {self.metric!r}")


#: Cost units (see :class:`SelectConfig`): per factor and iteration, ALS costs one unit per stored
#: pair and ``ROW_UNITS`` per user or song row (the conjugate-gradient solve of each row); scoring
#: one (validation user, song) pair in the search costs ``EVAL_UNITS``, and a neighbour build
#: ``BUILD_UNITS`` per co-occurring song pair of a user. Measured on the 2-core development
#: machine (20,000 x 5,000 world and a 400-user sample of it, 16 to 128 factors: 4.2 ns a pair,
#: 156 ns a row; scoring 63 ns a pair; neighbour build 109 ns a co-occurring pair).
ROW_UNITS = 37.0
EVAL_UNITS = 15.0
BUILD_UNITS = 26.0
#: An EASE neighbour build costs ``BUILD_UNITS`` per co-occurring pair (its Gram matrix) and
#: ``EASE_UNITS`` x songs^3 (Cholesky and inverse, about songs^3 float32 operations at some
#: 25 GFLOP/s on two cores; an estimate, not a measurement).
EASE_UNITS = 0.01

#: The WMF settings the search varies (each unless fixed by the user).
SEARCHED = ("alpha", "eps", "regularization", "factors")


def searched(with_time: bool) -> tuple[str, ...]:
    """The WMF settings a search varies: :data:`SEARCHED`, and the decay's half-life when the
    plays have times."""
    return (*SEARCHED, "half_life_days") if with_time else SEARCHED


def _candidates(cfg: TuneConfig, base: WMFConfig, fixed: frozenset[str] = frozenset(),
                with_time: bool = False) -> list[WMFConfig]:
    """The base config, then up to ``cfg.trials`` distinct random grid points; settings named in
    ``fixed`` keep the base's value. ``with_time``: the half-life of the decay is searched too."""
    rng = np.random.default_rng(cfg.seed)
    out = [replace(base, iterations=cfg.iterations)]
    names = searched(with_time)
    grids = {"alpha": cfg.alphas, "eps": cfg.epss, "regularization": cfg.regularizations,
             "factors": cfg.factors, "half_life_days": cfg.half_lives}
    grids = {k: (getattr(base, k),) if k in fixed else grids[k] for k in names}
    seen = {tuple(getattr(base, k) for k in names)}
    grid_size = int(np.prod([len(v) for v in grids.values()]))
    while len(out) < 1 + min(cfg.trials, grid_size - 1):
        point = tuple(type(getattr(base, k))(rng.choice(grids[k])) for k in names)
        if point in seen:
            continue
        seen.add(point)
        out.append(replace(base, iterations=cfg.iterations, **dict(zip(names, point))))
    return out


def tune(workdir: str | Path, cfg: TuneConfig, base: WMFConfig | None = None,
         holdout: HoldoutConfig | None = None, run: str | None = None, show_progress: bool | None = None) -> Path:
    """Search, write ``models/tune/<run>/`` (``trials.json``, ``tune.md``, ``best.toml``);
    ``show_progress``: a bar of the trials on stderr (``None``: on a terminal only)."""
    base = base or WMFConfig()
    holdout = holdout or HoldoutConfig()
    workdir = Path(workdir)
    inter = Interactions.load(workdir / INTERACTIONS_DIR)
    test = make_split(inter.matrix, holdout)
    val = validation_split(test, test_users=len(test.test_users), holdout_fraction=holdout.holdout_fraction,
                           min_songs=holdout.min_songs, seed=holdout.seed + 1)
    ks = sorted({10, 50, 500} | ({int(cfg.metric.split("@")[1])} if "@" in cfg.metric else set()))
    trials = []
    for wcfg in tqdm(_candidates(cfg, base), desc="tune", unit="trial",
                     disable=None if show_progress is None else not show_progress):
        t0 = time.perf_counter()
        model = train_wmf(val.train, wcfg, show_progress=False)
        metrics = evaluate_scores(model.scores, val, ks=ks, batch_size=holdout.batch_size,
                                  show_progress=False)
        trials.append({"config": asdict(wcfg), "metrics": metrics,
                       "seconds": round(time.perf_counter() - t0, 2)})
        log.info("alpha %g eps %g reg %g factors %d: %s %.4f", wcfg.alpha, wcfg.eps,
                 wcfg.regularization, wcfg.factors, cfg.metric, metrics[cfg.metric])
    trials.sort(key=lambda t: -np.nan_to_num(t["metrics"][cfg.metric], nan=-1.0))
    best = WMFConfig(**{**trials[0]["config"], "iterations": base.iterations})
    out = workdir / TUNE_DIR / (run or new_run_name())
    with staged_dir(out) as tmp:
        write_json(tmp / "trials.json", {"metric": cfg.metric, "tune": asdict(cfg),
                                         "validation_users": int(len(val.test_users)),
                                         "trials": trials})
        write_text(tmp / "best.toml", to_toml("wmf", asdict(best)))
        headers = ["alpha", "eps", "regularization", "factors", cfg.metric, "recall@50", "auc", "seconds"]
        rows = [[t["config"]["alpha"], t["config"]["eps"], t["config"]["regularization"],
                 t["config"]["factors"], t["metrics"][cfg.metric], t["metrics"]["recall@50"],
                 t["metrics"]["auc"], t["seconds"]] for t in trials]
        write_text(tmp / "tune.md", "\n".join([
            "# WMF tuning", "",
            f"{len(trials)} settings, {cfg.iterations} iterations each, scored by {cfg.metric} on "
            f"a validation split of {len(val.test_users):,} users drawn from the training part of "
            "the test split (test users and their held-out songs never seen). Best first.", "",
            markdown_table(headers, rows), "",
            "Use the best with `pmrs train-wmf --config best.toml`.", ""]))
    return out


def to_toml(section: str, values: dict) -> str:
    def fmt(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

    return f"[{section}]\n" + "".join(f"{k} = {fmt(v)}\n" for k, v in values.items())


@dataclass(frozen=True)
class SelectConfig:
    """Settings from the data (``[select]`` in a TOML config): how ``pmrs train-wmf`` and
    ``pmrs train-neighbours`` (and ``pmrs evaluate --holdout``, which runs both on its split)
    choose what the user did not fix.

    Cost is counted in units of ``(stored pairs + ROW_UNITS x (users + songs)) x factors x
    iterations``, which ALS's time follows (measured; see ``ROW_UNITS``); a deterministic count, so the same
    data give the same search on any machine. A *plain fit* is one of the whole matrix at the
    default factors and ``plain_iterations`` iterations, or at the factors and iterations the
    user fixed (:func:`plain_fit_settings`). The search (its fits, its neighbour
    builds and every scoring of the validation users, counted with ``EVAL_UNITS`` and
    ``BUILD_UNITS``) may spend ``budget`` plain fits, and only settings whose final fit on the
    whole matrix costs at most ``final_fit`` plain fits can be chosen, so a run costs at most
    ``budget + final_fit`` plain fits. On small data that would be too little to search at all,
    so the whole run may always cost ``min_cost`` units (about 17 s of one core here): the final
    fit at least ``min_final_share`` of it and the search the rest. In all, a run costs at most
    ``max((budget + final_fit) x plain fit, min_cost)`` units. When the planned search
    (``target_trials`` WMF trials, every neighbour candidate, every blend share) would not fit
    in its budget on the whole matrix, it runs on a random sample of users sized so that it
    does, and on the songs at least ``sample_min_users`` of them played (a held-out song no
    other sampled user played cannot be learnt, and every song is a row to fit). The first WMF trial and the first neighbour setting always run, so a tiny budget can
    be exceeded by them.
    """

    enabled: bool = True
    budget: float = 1.0
    final_fit: float = 1.0
    plain_iterations: int = 15
    min_cost: float = 4e9            # the whole run's floor, in cost units
    min_final_share: float = 0.25    # of min_cost, the floor of the final fit's cap
    target_trials: int = 12
    checkpoints: tuple[int, ...] = (5, 10, 15, 25)  # iterations scored in each trial
    validation_users: float = 0.5    # share of the eligible users whose songs are held out
    max_validation_users: int = 5000
    sample_min_users: int = 3        # in a sample of users, the songs at least this many played
    holdout_fraction: float = 0.2
    min_songs: int = 5
    metric: str = "map@500+recall@50"  # a metric, or a sum of metrics joined by "+"
    #: how validation songs are held out: "random", or "time" (each validation user's latest
    #: songs by first play, as a time split's test holds them out; the plays need times)
    split: str = "random"
    neighbour_alphas: tuple[float, ...] = (0.15, 0.3, 0.5)
    neighbour_localities: tuple[float, ...] = (1.0, 2.0, 3.0)
    neighbour_counts: tuple[int, ...] = (200,)
    neighbour_ease_lambdas: tuple[float, ...] = EASE_LAMBDAS   # EASE, where its dense matrix fits
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("checkpoints", "neighbour_alphas", "neighbour_localities", "neighbour_counts",
                     "neighbour_ease_lambdas"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.budget < 0 or self.target_trials < 1 or not self.checkpoints:
            raise ValueError("need budget >= 0, target_trials >= 1 and at least one checkpoint")
        if self.final_fit <= 0 or self.min_cost < 0 or not 0 <= self.min_final_share <= 1:
            raise ValueError("need final_fit > 0, min_cost >= 0 and 0 <= min_final_share <= 1")
        if self.sample_min_users < 1:
            raise ValueError("sample_min_users must be >= 1")
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {self.split!r}")
        for term in self.metric.split("+"):
            if "@" not in term and term != "auc":
                raise ValueError(f"metric must be map@500, recall@50, ndcg@10, auc or a sum of them "
                                 f"joined by '+'; got {self.metric!r}")


@dataclass
class Selection:
    """What :func:`select_settings` chose, and the table it chose from."""

    wmf: WMFConfig                   # the base as given when only the neighbourhood model was searched
    neighbours: NeighboursConfig | None  # None when only WMF was searched
    fixed: tuple[str, ...]           # WMF settings given by the user (not searched)
    trials: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    #: the best neighbour setting of each similarity tried, best first (the share's choice
    #: through the served blend picks among them: ``pmrs.collaborative.share``)
    finalists: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"wmf": asdict(self.wmf),
                "neighbours": asdict(self.neighbours) if self.neighbours is not None else None,
                "fixed": list(self.fixed), **self.summary,
                "trials": self.trials}


def fit_cost(matrix_shape_nnz: tuple[int, int, int], factors: int, iterations: int) -> float:
    """Cost units of one ALS fit: ``(nnz + ROW_UNITS x (users + songs)) x factors x iterations``."""
    n_users, n_songs, nnz = matrix_shape_nnz
    return (float(nnz) + ROW_UNITS * float(n_users + n_songs)) * factors * iterations


def final_fit_cost(matrix_shape_nnz: tuple[int, int, int], factors: int, iterations: int) -> float:
    """Cost units of the final fit on the whole matrix: :func:`fit_cost` with at least the default
    factors. On a large matrix ALS waits on memory (a random song row per stored pair), not on
    arithmetic: at the Taste Profile's shape an iteration took 22.2 CPU s at 16 factors and
    22.6 at 64, so fewer factors must not buy more iterations there. (The search's fits, on a
    sample whose factors stay in cache, do scale with factors.)"""
    return fit_cost(matrix_shape_nnz, max(factors, WMFConfig().factors), iterations)


def plain_fit_settings(base: WMFConfig, fixed: frozenset[str], cfg: SelectConfig) -> tuple[int, int]:
    """(factors, iterations) of the *plain fit* the budget is counted in: the fit the user asked
    for where they fixed its factors or iterations (``--iterations 3`` bounds the search by a
    3-iteration fit, not by a default 15-iteration one), else the defaults."""
    return (base.factors if "factors" in fixed else WMFConfig().factors,
            base.iterations if "iterations" in fixed else cfg.plain_iterations)


def run_caps(plain: float, cfg: SelectConfig) -> tuple[float, float]:
    """(the final fit's cap, the search's budget) in cost units, for data whose plain fit costs
    ``plain`` units: together at most ``max((budget + final_fit) x plain, min_cost)``."""
    final_cap = max(cfg.final_fit * plain, cfg.min_final_share * cfg.min_cost)
    return final_cap, max(cfg.budget * plain, cfg.min_cost - final_cap)


def _at_least(k: int, n: np.ndarray, p: float) -> np.ndarray:
    """P(Binomial(n, p) >= k) for each n (0 <= p < 1, small k)."""
    if k <= 0:
        return np.ones_like(n, dtype=np.float64)
    q = 1.0 - p
    term = q ** n                      # P(X = 0)
    below = term.copy()
    for i in range(k - 1):             # add P(X = i + 1)
        term = term * np.maximum(n - i, 0) / (i + 1) * (p / q)
        below += term
    return np.clip(1.0 - below, 0.0, 1.0)


#: The settings search's progress bar's description.
SEARCH_PROGRESS = "select"


def _shape_nnz(m: sp.csr_matrix) -> tuple[int, int, int]:
    return int(m.shape[0]), int(m.shape[1]), int(m.nnz)


def select_settings(counts: sp.csr_matrix, base: WMFConfig | None = None,
                    fixed: frozenset[str] | set[str] = frozenset(), cfg: SelectConfig | None = None,
                    exclude_users: np.ndarray | None = None, with_wmf: bool = True,
                    ages: sp.csr_matrix | None = None, first_played: np.ndarray | None = None,
                    show_progress: bool | None = None) -> Selection:
    """Choose WMF settings (those not in ``fixed``; ``pmrs train-wmf``) or, with
    ``with_wmf=False``, the neighbourhood model's (``pmrs train-neighbours``) on a validation split
    of ``counts`` (users x songs play counts). How the two are mixed in a served list is chosen
    apart, through the server's blend (:mod:`pmrs.collaborative.share`).

    Validation users are drawn among the users not in ``exclude_users``; their held-out songs are
    the only thing scored. Deterministic for a given input and ``cfg.seed``. ``ages``: each play's
    age (``pmrs.collaborative.wmf.play_ages``) when the plays have times: the half-life of the
    confidence's decay is then searched too, each trial training on the decayed counts.
    ``first_played``: each stored pair's first play (epoch seconds, 0 unknown), which a
    ``cfg.split == "time"`` validation split holds out by (``ValueError`` without).
    ``show_progress``: a progress bar of the settings tried (:data:`SEARCH_PROGRESS`) on stderr;
    ``None`` shows it on a terminal only.
    """
    base = base or WMFConfig()
    cfg = cfg or SelectConfig()
    fixed = frozenset(fixed)
    counts = sp.csr_matrix(counts)
    n_users, n_songs = counts.shape
    firsts = split_times(cfg.split, first_played)
    firsts = None if firsts is None else times_matrix(counts, firsts)
    plain_fit = plain_fit_settings(base, fixed, cfg)
    plain = fit_cost(_shape_nnz(counts), *plain_fit)
    final_cap, budget = run_caps(plain, cfg)
    tcfg = TuneConfig(trials=cfg.target_trials - 1, seed=cfg.seed, metric=cfg.metric)
    iterations = (base.iterations,) if "iterations" in fixed else cfg.checkpoints
    full = _shape_nnz(counts)
    with_time = ages is not None and with_wmf
    names = searched(with_time)
    candidates = [c for c in _candidates(tcfg, base, fixed, with_time)
                  if final_fit_cost(full, c.factors, min(iterations)) <= final_cap or not with_wmf]
    if not candidates:  # even the cheapest setting over the cap: the base as given
        candidates = [base]
    n_candidates = [] if with_wmf else (
        [NeighboursConfig(similarity="asymmetric-cosine", alpha=a, locality=q, neighbours=k)
         for k in cfg.neighbour_counts for a in cfg.neighbour_alphas for q in cfg.neighbour_localities]
        + [NeighboursConfig(similarity="bm25", neighbours=k) for k in cfg.neighbour_counts]
        + ([NeighboursConfig(similarity="ease", ease_lambda=lam, neighbours=k)
            for k in cfg.neighbour_counts for lam in cfg.neighbour_ease_lambdas]
           if dense_gib(n_songs) <= EASE_MAX_GIB else []))
    n_ease = sum(c.similarity == "ease" for c in n_candidates)

    # Plan: the share of users to search on, so that the planned fits, neighbour builds and
    # scorings of validation users fit in the budget.
    rng = np.random.default_rng(cfg.seed)
    in_pool = np.ones(n_users, dtype=bool)
    if exclude_users is not None:
        in_pool[np.asarray(exclude_users, dtype=np.int64)] = False
    pool = np.flatnonzero(in_pool)
    lengths = np.diff(counts.indptr)[pool].astype(np.float64)
    min_len = max(cfg.min_songs, 2)
    pool_indices = counts.indices if pool.size == n_users else counts[pool].indices
    users_per_song = np.bincount(pool_indices, minlength=n_songs)
    played = users_per_song > 0
    # songs by their number of users (a few thousand distinct values at most): the expectations
    # below are sums over these
    song_users, song_count = np.unique(users_per_song[played], return_counts=True)
    song_users = song_users.astype(np.float64)

    def sample_shape(share: float) -> tuple[float, float, float]:
        """Expected songs, pairs and sum of squared row lengths of the search's matrix when it
        runs on a random share of the pool's users: in a sample, only the songs that at least
        ``sample_min_users`` sampled users played (``cfg.sample_min_users``)."""
        if share >= 1.0:
            return float(played.sum()), float(lengths.sum()), float((lengths ** 2).sum())
        k, n = cfg.sample_min_users, song_users
        songs = float((song_count * _at_least(k, n, share)).sum())
        # a play stays when at least k - 1 of its song's other users are sampled too
        pairs = float((song_count * n * share * _at_least(k - 1, n - 1, share)).sum())
        kept = pairs / max(share * float(lengths.sum()), 1.0)
        return songs, pairs, share * float(((kept * lengths) ** 2).sum())

    n_evals = (len(candidates) * len(iterations) if with_wmf else 0) + len(n_candidates)
    mean_factors = float(np.mean([c.factors for c in candidates]))

    def planned(share: float) -> float:
        songs, pairs, squares = sample_shape(share)
        fits = fit_cost((share * pool.size, songs, pairs), mean_factors,
                        max(iterations)) * len(candidates) if with_wmf else 0.0
        builds = len(n_candidates) * BUILD_UNITS * squares + n_ease * EASE_UNITS * songs ** 3
        kept = pairs / max(share * float(lengths.sum()), 1.0)
        v = min(cfg.validation_users * share * float((kept * lengths >= min_len).sum()),
                cfg.max_validation_users)
        return fits + builds + n_evals * v * songs * EVAL_UNITS

    share = 1.0
    if planned(1.0) > budget:
        lo, hi = 0.0, 1.0
        for _ in range(40):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if planned(mid) <= budget else (lo, mid)
        share = max(lo, min(1.0, 50.0 / max(pool.size, 1)))  # at least about 50 users
    sample = np.sort(rng.choice(pool, size=max(1, int(round(share * pool.size))), replace=False)) \
        if share < 1.0 else pool
    sub = counts[sample] if share < 1.0 else counts
    sub_ages = None if not with_time else ages[sample] if share < 1.0 else ages
    sub_firsts = None if firsts is None else firsts[sample] if share < 1.0 else firsts
    if share < 1.0:  # the search's catalog: the songs enough sampled users played
        kept = np.flatnonzero(np.diff(sub.tocsc().indptr) >= cfg.sample_min_users)
        sub = sub[:, kept].tocsr()
        sub_ages = None if sub_ages is None else sub_ages[:, kept].tocsr()
        sub_firsts = None if sub_firsts is None else sub_firsts[:, kept].tocsr()
    # a sample holds no excluded user; the whole matrix keeps them, as training rows only
    exclude = None if share < 1.0 else exclude_users
    eligible_rows = np.diff(sub.indptr) >= min_len
    if exclude is not None:
        eligible_rows[np.asarray(exclude, dtype=np.int64)] = False
    eligible = int(eligible_rows.sum())
    n_val = int(min(max(1, round(cfg.validation_users * eligible)), cfg.max_validation_users, eligible))
    if n_val < 1:
        raise ValueError("no user has enough songs to draw a validation split from")
    val = draw_validation(sub, n_val, holdout_fraction=cfg.holdout_fraction, min_songs=cfg.min_songs,
                          seed=cfg.seed + 1, exclude_users=exclude,
                          first_played=None if sub_firsts is None else pair_times(sub_firsts))
    eval_cost = n_val * sub.shape[1] * EVAL_UNITS
    sub_lengths = np.diff(val.train.indptr).astype(np.float64)
    build_cost = BUILD_UNITS * float((sub_lengths ** 2).sum())
    terms = cfg.metric.split("+")
    ks = sorted({50, 500} | {int(t.split("@")[1]) for t in terms if "@" in t})
    key = cfg.metric

    def score(scores_fn) -> dict:
        m = evaluate_scores(scores_fn, val, ks=ks, show_progress=False)
        m[key] = sum(m[t] for t in terms)
        return {k: round(float(m[k]), 5) for k in dict.fromkeys(("map@500", "recall@50", "auc", key))}

    trials: list[dict] = []
    spent = 0.0
    best_wmf: tuple[float, WMFConfig] | None = None
    bar = tqdm(total=(len(candidates) if with_wmf else 0) + len(n_candidates), desc=SEARCH_PROGRESS,
               unit="trial", disable=None if show_progress is None else not show_progress, leave=False)
    t_start = time.perf_counter()
    for wcfg in candidates if with_wmf else []:
        # checkpoints whose final fit stays under the cap (the first one always counts)
        its = tuple(n for n in iterations if final_fit_cost(full, wcfg.factors, n) <= final_cap) \
            or iterations[:1]
        cost = fit_cost(_shape_nnz(val.train), wcfg.factors, max(its)) + len(its) * eval_cost
        if trials and spent + cost > budget:
            bar.update(1)
            continue  # a cheaper candidate further on may still fit
        spent += cost
        t0 = time.perf_counter()
        wcfg = replace(wcfg, iterations=max(its))
        found: list[tuple[float, int]] = []

        def checkpoint(n: int, model) -> None:
            if n in its:
                m = score(model.scores)
                trials.append({"model": "wmf", **{k: getattr(wcfg, k) for k in names},
                               "iterations": n, **m})
                found.append((m[key], n))

        train_wmf(decayed(val.train, sub_ages, wcfg.half_life_days), wcfg, show_progress=False,
                  after_iteration=checkpoint)
        trials[-1]["seconds"] = round(time.perf_counter() - t0, 3)
        for value, n in found:
            if best_wmf is None or np.nan_to_num(value, nan=-1.0) > best_wmf[0]:
                best_wmf = (np.nan_to_num(value, nan=-1.0), replace(wcfg, iterations=n))
        bar.update(1)
    wmf_best = best_wmf[1] if with_wmf else base

    best_nb = None
    best_of: dict[str, tuple[float, NeighboursConfig]] = {}
    for ncfg in n_candidates:
        bar.update(1)
        cost = build_cost + eval_cost + (EASE_UNITS * float(sub.shape[1]) ** 3 if ncfg.similarity == "ease" else 0.0)
        if best_nb is not None and spent + cost > budget:
            continue
        spent += cost
        t0 = time.perf_counter()
        nb = build_neighbours(val.train, ncfg, show_progress=False)
        m = score(lambda rows, nb=nb: nb.scores(val.train[np.asarray(rows)]))
        trials.append({"model": "neighbours", "similarity": ncfg.similarity, "alpha": ncfg.alpha,
                       "locality": ncfg.locality, "neighbours": ncfg.neighbours,
                       **({"ease_lambda": ncfg.ease_lambda} if ncfg.similarity == "ease" else {}), **m,
                       "seconds": round(time.perf_counter() - t0, 3)})
        if best_nb is None or np.nan_to_num(m[key], nan=-1.0) > best_nb[0]:
            best_nb = (np.nan_to_num(m[key], nan=-1.0), ncfg)
        family = best_of.get(ncfg.similarity)
        if family is None or np.nan_to_num(m[key], nan=-1.0) > family[0]:
            best_of[ncfg.similarity] = (np.nan_to_num(m[key], nan=-1.0), ncfg)
    bar.close()
    nb_best = best_nb[1] if best_nb is not None else None
    chosen = replace(base, **{k: getattr(wmf_best, k) for k in (*names, "iterations") if k not in fixed})
    summary = {"metric": key, "split": cfg.split, "validation_users": int(len(val.test_users)),
               "sampled_users": int(sub.shape[0]), "users": int(n_users),
               "sampled_songs": int(sub.shape[1]), "songs": int(n_songs),
               "cost_budget": budget, "cost_spent": spent, "final_fit_cap": final_cap,
               "plain_fit": {"factors": plain_fit[0], "iterations": plain_fit[1]},
               "budget_in_plain_fits": round(budget / plain, 3), "spent_in_plain_fits": round(spent / plain, 3),
               "final_fit_cap_in_plain_fits": round(final_cap / plain, 3),
               "final_fit_in_plain_fits": round(final_fit_cost(full, chosen.factors, chosen.iterations) / plain, 3),
               "seconds": round(time.perf_counter() - t_start, 2)}
    if with_wmf:
        log.info("selected WMF %s on %d validation users: %d trials; the search cost %.1f s, %.2f fits of "
                 "%d factors x %d iterations (%.2f allowed)",
                 {k: getattr(chosen, k) for k in (*names, "iterations")}, len(val.test_users), len(trials),
                 summary["seconds"], spent / plain, *plain_fit, budget / plain)
    else:
        log.info("selected neighbours %s on %d validation users: %d trials; the search cost %.1f s, %.2f fits "
                 "of %d factors x %d iterations (%.2f allowed)",
                 asdict(nb_best), len(val.test_users), len(trials), summary["seconds"], spent / plain,
                 *plain_fit, budget / plain)
    finalists = [c for _, c in sorted(best_of.values(), key=lambda t: -t[0])]
    return Selection(wmf=chosen, neighbours=nb_best, fixed=tuple(sorted(fixed)),
                     trials=trials, summary=summary, finalists=finalists)


def selection_table(trials: list[dict]) -> str:
    """The search table (``Selection.trials``) as markdown, one row per scored setting."""
    headers = ["model", "settings", "map@500", "recall@50", "auc"]
    rows = []
    for t in trials:
        if t["model"] == "wmf":
            s = (f"factors {t['factors']}, reg {t['regularization']}, alpha {t['alpha']}, "
                 f"eps {t['eps']}, {t['iterations']} it"
                 + (f", half-life {t['half_life_days']:g} d" if t.get("half_life_days") else ""))
        else:
            s = (f"ease, lambda {t['ease_lambda']:g}, K {t['neighbours']}" if t["similarity"] == "ease" else
                 f"{t['similarity']}, alpha {t['alpha']}, q {t['locality']}, K {t['neighbours']}")
        rows.append([t["model"], s, t["map@500"], t["recall@50"], t["auc"]])
    return markdown_table(headers, rows)
