"""Settings from the data: the search of pmrs.collaborative.selection.select_settings and its use by train-wmf."""

import json
import logging

import numpy as np
import pytest

from pmrs.cli import main
from pmrs.evaluation.split import holdout_split
from pmrs.synth.world import SynthConfig, iter_plays, make_catalog, make_users
from pmrs.collaborative.selection import SelectConfig, fit_cost, run_caps, select_settings
from pmrs.collaborative.wmf import WMFConfig, load_run
from pmrs.collaborative.neighbours import load_run as load_neighbours
from terminal import Terminal


def world(users=500, songs=200, seed=0):
    import scipy.sparse as sp

    cfg = SynthConfig(users=users, songs=songs, seed=seed)
    rng = np.random.default_rng(seed)
    cat = make_catalog(cfg, [f"g{i}" for i in range(cfg.genres)], rng)
    blocks = list(iter_plays(cfg, cat, make_users(cfg, rng), np.random.default_rng(1)))
    u, s, c = (np.concatenate([b[i] for b in blocks]) for i in range(3))
    return sp.csr_matrix((c.astype(np.float32), (u, s)), shape=(users, songs))


SMALL = SelectConfig(target_trials=3, checkpoints=(3, 6), neighbour_alphas=(0.5,),
                     neighbour_localities=(1.0, 2.0))


def test_fixed_settings_are_not_searched_and_the_budget_holds():
    counts = world()
    base = WMFConfig(factors=8, regularization=0.5)
    sel = select_settings(counts, base, fixed={"factors", "regularization"}, cfg=SMALL)
    wmf_trials = [t for t in sel.trials if t["model"] == "wmf"]
    assert {t["factors"] for t in wmf_trials} == {8} and {t["regularization"] for t in wmf_trials} == {0.5}
    assert len({(t["alpha"], t["eps"]) for t in wmf_trials}) == 3      # base + 2 other points
    assert sel.wmf.factors == 8 and sel.wmf.regularization == 0.5 and sel.wmf.iterations in (3, 6)
    assert sel.summary["cost_spent"] <= sel.summary["cost_budget"]
    assert sel.fixed == ("factors", "regularization")
    # the chosen WMF trial is the best of its table on the selection metric
    best = max(wmf_trials, key=lambda t: t[sel.summary["metric"]])
    assert (sel.wmf.alpha, sel.wmf.eps, sel.wmf.iterations) == (best["alpha"], best["eps"], best["iterations"])
    again = select_settings(counts, base, fixed={"factors", "regularization"}, cfg=SMALL)
    assert again.wmf == sel.wmf and again.trials == [{**t, "seconds": a["seconds"]} if "seconds" in t else t
                                                     for t, a in zip(sel.trials, again.trials)]  # deterministic
    assert sel.neighbours is None and {t["model"] for t in sel.trials} == {"wmf"}  # WMF's search only


def test_the_neighbourhood_search_is_its_own():
    sel = select_settings(world(), cfg=SMALL, with_wmf=False)
    # 2 localities + bm25 + EASE at each lambda
    assert {t["model"] for t in sel.trials} == {"neighbours"}
    assert len(sel.trials) == 3 + len(SMALL.neighbour_ease_lambdas)
    key = sel.summary["metric"]
    best = max(sel.trials, key=lambda t: t[key])
    assert (sel.neighbours.similarity, sel.neighbours.alpha, sel.neighbours.locality) == \
        (best["similarity"], best["alpha"], best["locality"])
    # the finalists: the best setting of each similarity, best first
    assert sel.finalists[0].similarity == best["similarity"]
    assert sorted(f.similarity for f in sel.finalists) == ["asymmetric-cosine", "bm25", "ease"]
    for f in sel.finalists:
        family = max((t for t in sel.trials if t["similarity"] == f.similarity), key=lambda t: t[key])
        assert (f.alpha, f.locality, f.ease_lambda) == (family["alpha"], family["locality"],
                                                        family.get("ease_lambda", f.ease_lambda))


def test_a_small_budget_searches_a_sample_of_users_and_never_evaluation_users():
    counts = world(users=800)
    test = holdout_split(counts, test_users=200, seed=5)
    cfg = SelectConfig(**{**SMALL.__dict__, "min_cost": 0.0, "budget": 0.5, "final_fit": 0.5})
    sel = select_settings(test.train, cfg=cfg, exclude_users=test.test_users)
    plain = fit_cost((800, 200, test.train.nnz), WMFConfig().factors, cfg.plain_iterations)
    assert sel.summary["sampled_users"] < 600  # a sample of the 600 users that are not test users
    assert sel.summary["cost_spent"] <= 0.5 * plain
    # the chosen settings' fit on the whole matrix stays within the final-fit cap
    assert fit_cost((800, 200, test.train.nnz), sel.wmf.factors, sel.wmf.iterations) <= 0.5 * plain


def test_train_wmf_without_settings_selects_and_records_them(tmp_path):
    data, work = tmp_path / "data", tmp_path / "work"
    cfg = tmp_path / "c.toml"
    cfg.write_text("[select]\ntarget_trials = 3\ncheckpoints = [3, 6]\n"
                   "neighbour_alphas = [0.5]\nneighbour_localities = [1.0]\n")
    assert main(["synth", str(data), "--users", "300", "--songs", "120", "--no-audio", "-q"]) == 0
    assert main(["ingest", str(data), "--workdir", str(work), "-q"]) == 0
    assert main(["train-wmf", "--workdir", str(work), "--config", str(cfg), "--factors", "8",
                 "--run", "auto", "-q"]) == 0
    run = work / "models" / "wmf" / "auto"
    config = json.loads((run / "config.json").read_text())
    log = json.loads((run / "train_log.json").read_text())
    sel = config["selection"]
    assert sel == log["selection"] and sel["fixed"] == ["factors"]
    assert {t["factors"] for t in sel["trials"] if t["model"] == "wmf"} == {8}
    model, _, _ = load_run(run)
    assert model.config.factors == 8 and model.config.iterations == sel["wmf"]["iterations"]
    assert (model.config.alpha, model.config.eps) == (sel["wmf"]["alpha"], sel["wmf"]["eps"])
    assert len(model.log) == model.config.iterations  # one fit on everything after the search
    assert main(["train-wmf", "--workdir", str(work), "--no-select", "--run", "plain", "-q"]) == 0
    plain, _, _ = load_run(work / "models" / "wmf" / "plain")
    assert plain.config == WMFConfig()
    assert "selection" not in json.loads((work / "models" / "wmf" / "plain" / "config.json").read_text())
    assert main(["train-neighbours", "--workdir", str(work), "--config", str(cfg), "--run", "n1", "-q"]) == 0
    nb, song_ids = load_neighbours(work / "models" / "neighbours" / "n1")
    assert nb.similarity.shape == (len(song_ids), len(song_ids)) and nb.similarity.nnz > 0


def test_a_run_costs_at_most_two_plain_fits_or_the_floor():
    cfg = SelectConfig()
    for plain in (1e7, 1e8, 1e9, 1.5e9, 2e9, 3e9, 1e10, 9.6e10):
        final_cap, budget = run_caps(plain, cfg)
        assert final_cap + budget == pytest.approx(max((cfg.budget + cfg.final_fit) * plain, cfg.min_cost))
        assert final_cap >= cfg.final_fit * plain and budget >= cfg.budget * plain
    # the tests' worlds (a plain fit of about 1e8 units) get the whole floor, most of it to search
    final_cap, budget = run_caps(1e8, cfg)
    assert budget == pytest.approx((1 - cfg.min_final_share) * cfg.min_cost)


def test_bad_select_config_is_rejected():
    with pytest.raises(ValueError):
        SelectConfig(metric="map")
    with pytest.raises(ValueError):
        SelectConfig(checkpoints=())
    with pytest.raises(ValueError):
        SelectConfig(min_final_share=1.5)


def test_the_search_logs_one_summary_line_not_one_per_evaluation(caplog):
    with caplog.at_level(logging.INFO, logger="pmrs"):
        select_settings(world(), WMFConfig(factors=8), cfg=SMALL)
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert not [m for m in messages if m.startswith("evaluated")]
    summary = [m for m in messages if m.startswith("selected WMF")]
    assert len(summary) == 1 and "validation users: 6 trials" in summary[0]   # 3 settings x 2 checkpoints


def test_a_fixed_iteration_count_bounds_the_search_by_the_fit_asked_for(caplog):
    """``train-wmf --iterations 3``: the budget is one 3-iteration fit, not one 15-iteration fit."""
    counts = world()
    cfg = SelectConfig(target_trials=6, checkpoints=(5, 10, 15), min_cost=0.0)
    shape = (counts.shape[0], counts.shape[1], counts.nnz)
    with caplog.at_level(logging.INFO, logger="pmrs"):
        asked = select_settings(counts, WMFConfig(iterations=3), fixed={"iterations"}, cfg=cfg)
    # (this search's lines only: the logger's level may be left at INFO by an earlier CLI test)
    line = [r.getMessage() for r in caplog.records if r.getMessage().startswith("selected WMF")]
    free = select_settings(counts, WMFConfig(), cfg=cfg)
    assert asked.summary["plain_fit"] == {"factors": WMFConfig().factors, "iterations": 3}
    assert asked.summary["cost_budget"] == pytest.approx(cfg.budget * fit_cost(shape, WMFConfig().factors, 3))
    assert free.summary["cost_budget"] == pytest.approx(cfg.budget * fit_cost(shape, WMFConfig().factors, 15))
    assert asked.wmf.iterations == 3 and {t["iterations"] for t in asked.trials if t["model"] == "wmf"} == {3}
    assert len(line) == 1 and "x 3 iterations" in line[0] and "the search cost" in line[0]


def test_a_time_validation_split_holds_out_the_latest_songs(monkeypatch):
    # SelectConfig(split="time"): the search and the references' settings are chosen on validation
    # users whose latest songs (by first play) are held out, as a time split's test holds them out
    from dataclasses import replace

    from pmrs.collaborative import selection
    from pmrs.evaluation.baselines import validation_split

    counts = world()
    first = np.random.default_rng(3).integers(1, 10**9, counts.nnz)
    cfg = replace(SMALL, split="time")
    with pytest.raises(ValueError, match="times"):
        select_settings(counts, cfg=cfg, with_wmf=False)
    searched_on = []
    real = selection.draw_validation

    def draw(*args, **kwargs):
        searched_on.append(real(*args, **kwargs))
        return searched_on[-1]
    monkeypatch.setattr(selection, "draw_validation", draw)
    sel = select_settings(counts, cfg=cfg, with_wmf=False, first_played=first)
    assert sel.summary["split"] == "time" and sel.neighbours is not None
    assert sel.summary["sampled_users"] == counts.shape[0]   # the whole matrix searched
    val = validation_split(counts, cfg, first)
    assert len(val.test_users) == sel.summary["validation_users"]
    # the references' split is the search's: same users, same songs held out
    (search,) = searched_on
    np.testing.assert_array_equal(search.test_users, val.test_users)
    assert (search.test != val.test).nnz == 0 and (search.train != val.train).nnz == 0
    for u in val.test_users[:20]:
        lo, hi = counts.indptr[u], counts.indptr[u + 1]
        held = set(val.test.indices[val.test.indptr[u]:val.test.indptr[u + 1]].tolist())
        latest = counts.indices[lo:hi][np.argsort(-first[lo:hi], kind="stable")[:len(held)]]
        assert held == set(latest.tolist())
    with pytest.raises(ValueError, match="split"):
        SelectConfig(split="latest")


def _search_bar_counts(text: str) -> list[tuple[int, int]]:
    import re

    from pmrs.collaborative.selection import SEARCH_PROGRESS

    return [(int(a), int(b)) for a, b in re.findall(rf"{SEARCH_PROGRESS}:[^\r\n]*?(\d+)/(\d+)", text)]


def test_the_search_shows_a_progress_bar_that_advances_and_none_when_off(monkeypatch, capsys):
    from functools import partial

    from pmrs.collaborative import selection

    # every update drawn (tqdm otherwise redraws at most every 0.1 s)
    monkeypatch.setattr(selection, "tqdm", partial(selection.tqdm, mininterval=0, miniters=1))
    counts = world(users=200, songs=80)
    select_settings(counts, WMFConfig(factors=8), cfg=SMALL, show_progress=True)
    drawn = _search_bar_counts(capsys.readouterr().err)
    assert [n for n, _ in drawn] == [0, 1, 2, 3] and {t for _, t in drawn} == {3}   # 3 settings tried
    select_settings(counts, WMFConfig(factors=8), cfg=SMALL, show_progress=False)
    assert capsys.readouterr().err == ""


def test_train_wmf_shows_the_search_on_a_terminal_and_not_with_q(tmp_path, monkeypatch):
    import sys

    from pmrs.interactions import INTERACTIONS_DIR, Interactions

    counts = world(users=200, songs=80).astype(np.int32)
    Interactions(counts, np.array([f"u{i:04d}" for i in range(200)], "S"),
                 np.array([f"s{i:04d}" for i in range(80)], "S")).save(tmp_path / INTERACTIONS_DIR)
    cfg = tmp_path / "c.toml"
    cfg.write_text("[select]\ntarget_trials = 3\ncheckpoints = [3, 6]\n")
    common = ["train-wmf", "--workdir", str(tmp_path), "--config", str(cfg), "--factors", "8"]
    for quiet in (False, True):
        terminal = Terminal()
        monkeypatch.setattr(sys, "stderr", terminal)
        assert main(common + ["--run", f"q{quiet:d}"] + (["-q"] if quiet else [])) == 0
        monkeypatch.undo()
        drawn = _search_bar_counts(terminal.text())
        assert (drawn[0] == (0, 3)) if not quiet else drawn == [], terminal.text()[-500:]
