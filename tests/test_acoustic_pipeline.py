"""The acoustic stages end to end through the command line on a tiny world with audio:
synth -> ingest -> train-wmf -> extract -> train-cnn -> predict -> evaluate --cold-start."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import pmrs.acoustic.train as acoustic_train
from pmrs.acoustic.runs import load_cnn_run, load_predictions
from pmrs.catalog import CATALOG_FILE, Catalog, write_catalog
from pmrs.cli import main
from pmrs.indexing.config import ACOUSTIC_SHARE_NOT_VALIDATED


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("acoustic")
    data, work = root / "data", root / "work"
    cfg = root / "c.toml"
    cfg.write_text("[wmf]\nfactors = 8\niterations = 5\n"
                   "[cnn]\nmax_epochs = 3\nwindows_per_song_per_epoch = 2\nchannels = [8, 16, 16, 16]\n"
                   "hidden = 32\nembedding_dim = 16\nthreads = 1\n"
                   "[extract]\nworkers = 1\n")
    assert main(["synth", str(data), "--users", "200", "--songs", "80", "--genres", "4",
                 "--clip-seconds", "4", "--cold-share", "0.2", "--audio-workers", "1", "-q"]) == 0
    (data / "audio" / "SOBROKEN0000000000.wav").write_bytes(b"RIFF not really a wave file")
    for args in (["ingest", str(data)], ["train-wmf", "--run", "w1"], ["extract", str(data)],
                 ["train-cnn", "--run", "c1"], ["predict"]):
        assert main(args + ["--workdir", str(work), "--config", str(cfg), "-q"]) == 0, args
    return work, cfg, data


def test_every_song_with_audio_gets_predictions_cold_songs_included(work):
    work, _, data = work
    truth = json.loads((data / "truth.json").read_text())
    pred = load_predictions(work / "models" / "cnn" / "c1" / "predictions")
    ids = {s.decode() for s in pred["song_ids"]}
    assert ids == set(truth["songs"])                      # the broken clip is not a song
    cold = {s for s, v in truth["songs"].items() if v["cold"]}
    assert cold and cold <= ids
    assert pred["factors"].shape == (80, 8) and np.isfinite(pred["factors"]).all()
    assert pred["embeddings"].shape == (80, 16)
    assert np.allclose(pred["genre_probs"].sum(axis=1), 1.0, atol=1e-4)
    report = json.loads((work / "features_report.json").read_text())
    assert [s["file"].endswith("SOBROKEN0000000000.wav") for s in report["skipped"]] == [True]


def test_cnn_run_records_its_sources_and_reloads(work):
    work, _, _ = work
    model, cfg, history = load_cnn_run(work / "models" / "cnn" / "c1")
    assert cfg.n_factors == 8 and cfg.n_genres == 4 and cfg.max_epochs == 3
    assert history["wmf_run"].endswith("w1") and len(history["genres"]) == 4
    assert history["n_train_songs"] + history["n_val_songs"] == 64  # warm songs with audio
    assert "validation_songs" not in history                          # (as long as a tenth of the songs)
    # about 15 labelled songs per genre, under the rule's 20: the genre head says it learned from too little
    counts = history["genre_train_songs"]
    assert len(counts) == 4 and sum(counts) == history["n_train_songs"] and min(counts) < 20
    head = history["undertrained"]["genre_head"]
    assert head["undertrained"] and "fewer than 20 labelled training songs in" in head["reason"]
    assert history["cold_start"] == {"weights": None, "why": history["cold_start"]["why"]}
    assert f"{history['n_val_songs']} validation songs, fewer than the 30" in history["cold_start"]["why"]


def test_cold_start_report(work):
    work, cfg, _ = work
    assert main(["evaluate", "--cold-start", "--workdir", str(work), "--config", str(cfg),
                 "--run", "cs1", "-q"]) == 0
    out = work / "reports" / "cs1"
    m = json.loads((out / "metrics.json").read_text())
    # 5 validation songs choose no cold-start weights: the CNN's prediction is what is served and scored
    assert set(m["models"]) == {"random", "mfcc_ridge", "cnn", "genre_mean", "upper_bound"}
    assert f"{m['cnn_training']['n_val_songs']} validation songs, fewer than the 30" in m["cold_weights"]["why"]
    assert "Cold-start weights: not chosen" in (out / "report.md").read_text()
    for name, metrics in m["models"].items():
        assert 0.0 <= metrics["auc"] <= 1.0, name
    assert m["models"]["upper_bound"]["auc"] > m["models"]["random"]["auc"]
    assert m["data"]["held_out_songs"] == round(0.2 * 64)
    assert m["genre_head"]["songs"] == m["data"]["held_out_songs"]
    assert (out / "genre_confusion.png").stat().st_size > 0 and "AUC gap closed" in (out / "report.md").read_text()
    assert f"Served share of the acoustic source: {ACOUSTIC_SHARE_NOT_VALIDATED}." in (out / "report.md").read_text()


def test_train_cnn_says_which_part_learned_from_too_little(work, capsys):
    work, cfg, _ = work
    assert main(["train-cnn", "--run", "c-said", "--workdir", str(work), "--config", str(cfg), "-q"]) == 0
    said = capsys.readouterr().out.splitlines()
    judged = json.loads((work / "models" / "cnn" / "c-said" / "history.json").read_text())["undertrained"]
    # 3 epochs on 64 songs: the factor prediction is no better than the mean factors, and the genre
    # head had about 15 labelled songs per genre
    assert judged["factors"]["undertrained"] and judged["genre_head"]["undertrained"]
    assert f"UNDERTRAINED factor prediction: {judged['factors']['reason']}" in said
    assert f"UNDERTRAINED genre head: {judged['genre_head']['reason']}" in said


def _genres_only_for(catalog: Path, keep: set[str]) -> None:
    """Rewrite the catalog with every song outside ``keep`` unlabelled (the rest as it was)."""
    with Catalog(catalog) as cat:
        songs = [(s, {**f, "genre": f.get("genre", "") if s in keep else ""}) for s, f in cat.items()]
        tracks, info = list(cat.tracks()), cat.info()
        tags, similars = dict(cat.items_tags()), dict(cat.items_similars())
    write_catalog(catalog, songs, tracks, info,
                  [(s, tags.get(s, {}), similars.get(s, {})) for s in sorted(set(tags) | set(similars))])


def test_cold_start_report_when_no_held_out_song_has_a_genre(work, tmp_path, monkeypatch):
    work, cfg, _ = work
    copy = tmp_path / "work"
    shutil.copytree(work, copy)
    args = ["evaluate", "--cold-start", "--workdir", str(copy), "--config", str(cfg), "-q", "--run"]
    trained_on: list[str] = []
    train_cnn = acoustic_train.train_cnn

    def spy(log_mels, targets, *rest, **kwargs):
        trained_on.extend(targets[0])
        return train_cnn(log_mels, targets, *rest, **kwargs)

    with monkeypatch.context() as m:   # which songs the protocol trains the CNN on (it holds out the others)
        m.setattr(acoustic_train, "train_cnn", spy)
        assert main(args + ["labelled"]) == 0
    assert json.loads((copy / "reports" / "labelled" / "metrics.json").read_text())["genre_head"]["songs"] > 0
    _genres_only_for(copy / CATALOG_FILE, set(trained_on))   # the same seed holds out the same songs

    assert main(args + ["unlabelled"]) == 0
    out = copy / "reports" / "unlabelled"
    m = json.loads((out / "metrics.json").read_text())
    assert m["data"]["held_out_songs"] > 0 and m["genre_head"]["songs"] == 0 and m["genre_head"]["accuracy"] is None
    text = (out / "report.md").read_text()
    assert "## Genre head on the held-out songs: accuracy not measured" in text
    assert "No held-out song has a genre label" in text
    assert not (out / "genre_confusion.png").exists() and "genre_confusion.png" not in text
