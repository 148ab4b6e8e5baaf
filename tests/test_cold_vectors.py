"""A cold song is served the vector the cold-start report measures: its CNN prediction combined
with the catalog by ``pmrs.acoustic.cold``, with the weights ``pmrs train-cnn`` chose on
validation, in ``indexer build`` and for a song added live."""

import shutil
from pathlib import Path

import numpy as np
import pytest

import pmrs
from pmrs.acoustic.cold import CatalogKnowledge, ColdModel, cold_parts, combine
from pmrs.acoustic.model import CNNConfig
from pmrs.acoustic.runs import CNN_DIR, load_predictions
from pmrs.acoustic.stages import PREDICTIONS_DIR, predict_run, train_cnn_run
from pmrs.artifacts import read_json
from pmrs.catalog import CATALOG_FILE
from pmrs.collaborative.wmf import WMF_DIR, load_run
from pmrs.indexing import IndexerConfig, build_bundle
from pmrs.serving import contract as C


@pytest.fixture(scope="module")
def built(serving_workdir, tmp_path_factory):
    work = tmp_path_factory.mktemp("cold") / "work"
    shutil.copytree(serving_workdir, work)
    # half the warm songs held out for validation: 32, enough to choose the weights on
    cfg = CNNConfig(max_epochs=2, windows_per_song_per_epoch=2, channels=(8, 16, 16, 16), hidden=32,
                    embedding_dim=16, threads=1, validation_share=0.5)
    train_cnn_run(work, cfg, wmf_run="w1", run="c2", show_progress=False)
    predict_run(work, "c2", show_progress=False)
    out = build_bundle(work, IndexerConfig(recall_queries=50, default_lists=False), cnn_run="c2",
                       show_progress=False)
    return work, out, Path(serving_workdir).parent / "data"


def test_the_build_serves_cold_songs_the_combined_vector(built):
    work, out, _ = built
    history = read_json(work / CNN_DIR / "c2" / "history.json")
    weights = history["cold_start"]["weights"]
    assert weights and set(weights) == {"audio", "artist", "release", "tags", "similar", "mean"}
    model, _, wmf_ids = load_run(work / WMF_DIR / "w1")
    pred = load_predictions(work / CNN_DIR / "c2" / PREDICTIONS_DIR)
    played = [s.decode() for s in wmf_ids]
    ids = [s.decode() for s in pred["song_ids"]]
    cold = [i for i, s in enumerate(ids) if s not in set(played)]
    warm = [i for i, s in enumerate(ids) if s in set(played)]
    assert cold and warm
    want = combine(cold_parts(CatalogKnowledge.read(work / CATALOG_FILE), played, model.song_factors,
                              [ids[i] for i in cold], pred["factors"][cold]), weights)
    with pmrs.Recommender.open(out) as rec:
        b = rec.bundle
        settings = b.manifest["sources"][C.ACOUSTIC]["settings"]
        assert settings["cold_start"]["weights"] == weights and settings["cold_start"]["cold_songs"] == len(cold)
        assert settings["undertrained"] == history["undertrained"]
        _, got = b.song_vectors(C.ACOUSTIC, b.song_rows([ids[i] for i in cold]))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        _, got_warm = b.song_vectors(C.ACOUSTIC, b.song_rows([ids[i] for i in warm]))
        np.testing.assert_allclose(got_warm, pred["factors"][warm], rtol=1e-6)   # played songs: the CNN's


def test_a_song_added_live_is_combined_as_the_build_combines(built):
    work, _, data = built
    clip = min(data.glob("**/*.wav"))
    with pmrs.Recommender.open(work, live=True) as rec:
        b = rec.bundle
        artist = b.songs([0])[0]["artist"]
        added = rec.add_song("SOCOLDLIVE", artist=artist, tags=["rock"], audio=clip.read_bytes(), filename=clip.name)
        assert added.song.has_audio
        cnn, _ = rec.live.encoder._load()
        cold_model, cnn.cold = cnn.cold, None
        try:
            raw = cnn({}, (clip.name, clip.read_bytes())).vectors[C.ACOUSTIC]
        finally:
            cnn.cold = cold_model
        assert isinstance(cold_model, ColdModel)
        want = cold_model.vector({"artist": artist}, {"rock": 100.0}, raw)
        got = rec.live.view().song_vector(C.ACOUSTIC, rec.live.view().song_row("SOCOLDLIVE"))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        assert not np.allclose(want, raw)   # (the artist's songs moved it)
