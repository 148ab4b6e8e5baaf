"""The acoustic issue's quality bar on a synthetic world: on songs held out of WMF training, the
CNN closes at least 70% of the AUC gap between random and the WMF upper bound and beats the MFCC
ridge baseline; where cold songs are by artists people play, the served cold vector (audio
combined with the catalog, ``pmrs.acoustic.cold``) beats audio alone."""

import json

from pmrs.acoustic.model import CNNConfig
from pmrs.audio.extract import ExtractConfig, extract
from pmrs.evaluation.cold_start import ColdStartConfig, evaluate_cold_start
from pmrs.ingest import ingest
from pmrs.synth.generate import synthesize
from pmrs.synth.world import SynthConfig, preset_config
from pmrs.collaborative.wmf import WMFConfig


def test_cnn_closes_most_of_the_auc_gap_and_beats_mfcc_ridge(tmp_path):
    synthesize(tmp_path / "data", SynthConfig(users=1500, songs=600, clip_seconds=6, seed=1))
    ingest(tmp_path / "data", tmp_path / "work")
    extract(tmp_path / "data", tmp_path / "work", ExtractConfig(), show_progress=False)
    out = evaluate_cold_start(tmp_path / "work", WMFConfig(factors=32), CNNConfig(),
                              ColdStartConfig(seed=1), show_progress=False)
    m = json.loads((out / "metrics.json").read_text())
    auc = {name: v["auc"] for name, v in m["models"].items()}
    assert abs(auc["random"] - 0.5) < 0.03
    assert m["auc_gap_closed"]["cnn"] >= 0.70
    assert auc["cnn"] > auc["mfcc_ridge"]
    assert m["models"]["cnn"]["map@50"] > m["models"]["mfcc_ridge"]["map@50"] > m["models"]["random"]["map@50"]
    assert m["genre_head"]["accuracy"] >= 0.9


def test_on_songs_by_known_artists_the_combined_vector_beats_audio_alone(tmp_path):
    # the "harder" world's listeners are loyal to artists: a cold song's artist says what its
    # sound cannot (which scene, which listeners), as on a real catalog
    synthesize(tmp_path / "data", preset_config("harder", users=800, songs=500, clip_seconds=4, seed=1))
    ingest(tmp_path / "data", tmp_path / "work")
    extract(tmp_path / "data", tmp_path / "work", ExtractConfig(), show_progress=False)
    # 15% of the CNN's songs for validation: about 50, enough to choose the weights on
    out = evaluate_cold_start(tmp_path / "work", WMFConfig(factors=32), CNNConfig(validation_share=0.15),
                              ColdStartConfig(seed=1), show_progress=False)
    m = json.loads((out / "metrics.json").read_text())
    models, weights = m["models"], m["cold_weights"]
    assert m["cold_weights"]["held_out_coverage"]["artist"] > 0.9      # (cold songs by known artists)
    assert weights["combined"]["weights"]["artist"] > 0
    for metric in ("map@10", "map@50"):
        assert models["combined"][metric] > models["cnn"][metric], metric
    assert models["combined"]["auc"] >= models["cnn"]["auc"] - 0.005
    assert weights["combined"]["loss"] < weights["audio_only"]["loss"]
    text = (out / "report.md").read_text()
    for row in ("audio only (CNN)", "metadata only", "combined (served)", "genre mean", "MFCC ridge"):
        assert f"| {row} |" in text, row
