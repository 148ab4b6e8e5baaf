"""The command line end to end on a tiny world: synth -> ingest -> train-wmf -> evaluate -> tune."""

import json

import numpy as np
import pytest

from pmrs.cli import main
from pmrs.collaborative.wmf import load_run


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    data, work = root / "data", root / "work"
    assert main(["synth", str(data), "--users", "400", "--songs", "300", "--no-audio", "-q"]) == 0
    assert main(["ingest", str(data), "--workdir", str(work), "-q"]) == 0
    return data, work


def test_ingest_report_and_outputs(world, capsys):
    data, work = world
    report = json.loads((work / "interactions" / "ingest_report.json").read_text())
    n_lines = sum(1 for _ in open(data / "train_triplets.txt"))
    assert report["triplets"]["good_lines"] == n_lines and report["triplets"]["malformed_lines"] == 0
    assert report["catalog"]["songs"] == 300 and (work / "catalog.lmdb").is_file()


def test_train_wmf_with_config_file_and_flag_override(world, tmp_path):
    _, work = world
    cfg = tmp_path / "c.toml"
    cfg.write_text("[wmf]\nfactors = 8\niterations = 3\nalpha = 5.0\n")
    assert main(["train-wmf", "--workdir", str(work), "--config", str(cfg), "--alpha", "3",
                 "--run", "r1", "-q"]) == 0
    model, users, songs = load_run(work / "models" / "wmf" / "r1")
    assert model.user_factors.shape == (len(users), 8) and model.song_factors.shape == (len(songs), 8)
    assert model.config.alpha == 3.0 and model.config.iterations == 3  # flag beats file beats default
    assert len(model.log) == 3
    assert np.isfinite(model.user_factors).all()


def test_unknown_config_key_is_a_clear_error(world, tmp_path, capsys):
    _, work = world
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[wmf]\nfactor = 8\n")
    assert main(["train-wmf", "--workdir", str(work), "--config", str(cfg), "-q"]) == 2
    assert "unknown setting(s) in [wmf]: factor" in capsys.readouterr().err


def test_evaluate_holdout_writes_report(world):
    _, work = world
    assert main(["evaluate", "--holdout", "--workdir", str(work), "--factors", "16",
                 "--iterations", "8", "--run", "ev1", "-q"]) == 0
    out = work / "reports" / "ev1"
    metrics = json.loads((out / "metrics.json").read_text())
    wmf, pop = metrics["models"]["wmf"], metrics["models"]["popularity"]
    for key in ("precision@10", "recall@50", "map@500", "ndcg@50", "auc", "coverage@50"):
        assert 0.0 <= wmf[key] <= 1.0 and 0.0 <= pop[key] <= 1.0
    assert wmf["recall@50"] > pop["recall@50"] and wmf["auc"] > pop["auc"]
    assert "| wmf |" in (out / "report.md").read_text() and (out / "recall_at_k.png").stat().st_size > 0


def test_tune_writes_best_config_usable_by_train(world):
    _, work = world
    assert main(["tune", "--workdir", str(work), "--trials", "3", "--iterations", "3",
                 "--run", "t1", "-q"]) == 0
    out = work / "models" / "tune" / "t1"
    trials = json.loads((out / "trials.json").read_text())["trials"]
    assert len(trials) == 4
    scores = [t["metrics"]["map@500"] for t in trials]
    assert scores == sorted(scores, reverse=True)
    assert main(["train-wmf", "--workdir", str(work), "--config", str(out / "best.toml"),
                 "--iterations", "2", "--run", "from-best", "-q"]) == 0
    model, _, _ = load_run(work / "models" / "wmf" / "from-best")
    assert model.config.factors == trials[0]["config"]["factors"]


def test_ingest_without_triplets_fails_clearly(tmp_path, capsys):
    assert main(["ingest", str(tmp_path), "--workdir", str(tmp_path / "w"), "-q"]) == 2
    assert "train_triplets.txt" in capsys.readouterr().err


def test_train_before_ingest_fails_clearly(tmp_path, capsys):
    assert main(["train-wmf", "--workdir", str(tmp_path), "-q"]) == 2
    assert "pmrs ingest" in capsys.readouterr().err


def test_evaluate_names_which_seed_a_flag_sets():
    from pmrs.cli import _split_flags_given, _wmf_flags_given, build_parser

    args = build_parser().parse_args(["evaluate", "--holdout", "--wmf-seed", "3", "--split-seed", "5"])
    assert _wmf_flags_given(args)["seed"] == 3 and _split_flags_given(args)["seed"] == 5
    args = build_parser().parse_args(["evaluate", "--holdout", "--wmf-seed", "3"])
    assert _split_flags_given(args)["seed"] is None            # the split keeps its own default
    with pytest.raises(SystemExit):
        build_parser().parse_args(["evaluate", "--holdout", "--seed", "3"])   # ambiguous: gone
    args = build_parser().parse_args(["train-wmf", "--seed", "4"])
    assert _wmf_flags_given(args)["seed"] == 4


def test_evaluate_holdout_reports_ease_skipped_over_its_budget_and_why(world, monkeypatch):
    from pmrs.collaborative import ease
    from pmrs.evaluation.baselines import settings_text

    _, work = world
    monkeypatch.setattr(ease, "MAX_GIB", 1e-6)   # any catalog's EASE matrix is over this budget
    assert main(["evaluate", "--holdout", "--workdir", str(work), "--factors", "8", "--iterations", "3",
                 "--no-select", "--run", "ease-over", "-q"]) == 0
    out = work / "reports" / "ease-over"
    metrics = json.loads((out / "metrics.json").read_text())
    with pytest.raises(ease.EaseTooLarge) as why:
        ease.check_fits(metrics["data"]["songs"])
    ref = metrics["references"]["ease"]
    assert ref["skipped"] == str(why.value) and "over the budget" in ref["skipped"]
    assert "ease" not in metrics["models"] and "ease" not in metrics["reference_models"]
    assert metrics["references"]["popularity"]["skipped"] is None and "popularity" in metrics["models"]
    report = (out / "report.md").read_text()
    assert f"| ease | {settings_text(ref)} |" in report and settings_text(ref) == f"skipped: {why.value}"


def test_the_references_choose_their_settings_on_the_split_pmrs_searches(world, monkeypatch):
    # a hold-out evaluation with settings searched: the references' validation split is the one
    # each of PMRS's two searches (WMF, neighbours) draws from the same training part
    from pmrs.collaborative import selection
    from pmrs.collaborative.selection import SelectConfig
    from pmrs.collaborative.wmf import WMFConfig
    from pmrs.evaluation import baselines
    from pmrs.evaluation.holdout import evaluate_holdout

    drawn: dict[str, list] = {"pmrs": [], "references": []}

    def spy(module, who):
        real = module.draw_validation

        def draw(*args, **kwargs):
            val = real(*args, **kwargs)
            drawn[who].append(val)
            return val
        monkeypatch.setattr(module, "draw_validation", draw)

    spy(selection, "pmrs")
    spy(baselines, "references")
    select = SelectConfig(target_trials=2, checkpoints=(3,), neighbour_alphas=(0.5,), neighbour_localities=(1.0,),
                          neighbour_ease_lambdas=(), seed=4)
    _, work = world
    out = evaluate_holdout(work, WMFConfig(factors=8), select=select, references=("implicit-cosine",),
                           run="same-split")
    metrics = json.loads((out / "metrics.json").read_text())
    for search in ("wmf", "neighbours"):   # each searched the whole training part, not a sample of it
        assert metrics["selection"][search]["sampled_users"] == metrics["data"]["users"]
    assert len(drawn["pmrs"]) == 2 and len(drawn["references"]) == 1
    assert metrics["references"]["implicit-cosine"]["chosen_on_validation"]
    ref = drawn["references"][0]
    assert len(ref.test_users) > 20
    for val in drawn["pmrs"]:
        np.testing.assert_array_equal(val.test_users, ref.test_users)
        for a, b in ((val.train, ref.train), (val.test, ref.test)):
            assert a.shape == b.shape and a.nnz == b.nnz and (a != b).nnz == 0



@pytest.mark.parametrize("quiet", [False, True])
def test_synth_and_tune_draw_their_bars_on_a_terminal_and_none_with_q(world, tmp_path, monkeypatch, quiet):
    import sys

    from terminal import Terminal

    _, work = world
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    q = ["-q"] if quiet else []
    assert main(["synth", str(tmp_path / "d"), "--users", "40", "--songs", "30", "--no-audio", *q]) == 0
    assert main(["tune", "--workdir", str(work), "--trials", "2", "--iterations", "2", "--run", f"bars{quiet:d}", *q]) == 0
    monkeypatch.undo()
    drawn = terminal.text()
    for bar in ("triplets:", "Last.fm JSON:", "tune:"):
        assert (bar in drawn) != quiet, (bar, drawn[-300:])
