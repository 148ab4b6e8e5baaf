import json
import os
import pickle
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from pmrs.acoustic.model import CNNConfig, LatentFactorCNN
from pmrs.acoustic.predict import clip_windows, predict_clips, predict_windows
from pmrs.acoustic.runs import load_cnn_run, load_predictions, save_cnn_run, save_predictions

SMALL = dict(n_mels=16, window_frames=24, channels=(8, 12), kernel_frames=(5, 3),
             pool_frames=(2, 2), hidden=20, embedding_dim=10, dropout=0.0, threads=1)


@pytest.fixture(autouse=True)
def one_thread():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


def small_model(n_factors=6, n_genres=3, seed=0, **kw) -> LatentFactorCNN:
    torch.manual_seed(seed)
    model = LatentFactorCNN(CNNConfig(**{**SMALL, "n_factors": n_factors, "n_genres": n_genres,
                                         **kw}))
    rng = np.random.default_rng(seed)
    model.set_input_normalization(rng.normal(size=16), rng.uniform(0.5, 2.0, 16))
    model.set_target_scaling(rng.normal(size=n_factors), rng.uniform(0.5, 2.0, n_factors))
    return model.eval()


def test_forward_shapes_and_embedding_is_the_second_fc_output():
    cfg = CNNConfig(n_factors=8, n_genres=4, dropout=0.0)
    model = LatentFactorCNN(cfg).eval()
    seen = {}
    model.fc2.register_forward_hook(lambda mod, inp, out: seen.update(fc2=out))
    x = torch.randn(5, 128, 130)
    out = model(x)
    assert out["factors"].shape == (5, 8)
    assert out["embedding"].shape == (5, 128)
    assert out["genre_logits"].shape == (5, 4)
    assert torch.equal(out["embedding"], torch.relu(seen["fc2"]))  # FC2 -> ReLU
    assert torch.equal(model.embed(x), out["embedding"])

    plain = LatentFactorCNN(CNNConfig(n_factors=8, embedding_activation="none"))
    plain.fc2.register_forward_hook(lambda mod, inp, out: seen.update(fc2=out))
    out = plain(x)
    assert "genre_logits" not in out and plain.genre_head is None
    assert torch.equal(out["embedding"], seen["fc2"])


def test_normalisation_and_scaling_buffers_are_in_the_state_dict():
    model = small_model()
    state = model.state_dict()
    for name in ("input_mean", "input_std", "factor_mean", "factor_scale"):
        assert name in state
    out = model(torch.randn(3, 16, 24))
    expected = out["factors_scaled"] * model.factor_scale + model.factor_mean
    assert torch.allclose(out["factors"], expected)


def test_config_checks_and_json_round_trip():
    with pytest.raises(ValueError, match="too short"):
        CNNConfig(window_frames=10, pool_frames=(2, 2, 2, 2))
    with pytest.raises(ValueError, match="same length"):
        CNNConfig(channels=(8, 8), kernel_frames=(3,), pool_frames=(2, 2))
    cfg = CNNConfig(channels=[8, 16], kernel_frames=[3, 3], pool_frames=[2, 2], n_factors=4)
    assert cfg.channels == (8, 16)  # lists from TOML become tuples
    assert CNNConfig.from_dict(json.loads(json.dumps(asdict(cfg)))) == cfg
    with pytest.raises(ValueError, match="unknown"):
        CNNConfig.from_dict({**asdict(cfg), "chanels": [1]})
    with pytest.raises(ValueError, match="n_factors"):
        LatentFactorCNN(CNNConfig())  # n_factors 0: train_cnn fills it in


def test_clip_prediction_is_the_mean_of_window_predictions():
    model = small_model()
    rng = np.random.default_rng(1)
    long_clip = rng.normal(size=(16, 3 * 24 + 17)).astype(np.float16)  # 3 windows + a partial one
    windows = predict_windows(model, long_clip)
    assert windows["factors"].shape == (3, 6) and windows["embeddings"].shape == (3, 10)
    assert windows["genre_probs"].shape == (3, 3)
    assert np.allclose(windows["genre_probs"].sum(1), 1.0, atol=1e-6)
    # The windows are consecutive and start at frame 0; the partial tail is dropped.
    w = clip_windows(long_clip, 24)
    assert w.shape == (3, 16, 24) and np.array_equal(w[1], long_clip[:, 24:48])

    short_clip = rng.normal(size=(16, 10)).astype(np.float32)  # shorter than a window: tiled
    tiled = np.tile(short_clip, (1, 3))[:, :24]
    assert np.allclose(predict_windows(model, short_clip)["factors"],
                       predict_windows(model, tiled)["factors"])

    clips = {"SOA": long_clip, "SOB": short_clip, "SOC": rng.normal(size=(16, 50))}
    # batch_size 2: windows of different clips share batches and clips straddle them
    pred = predict_clips(model, clips, batch_size=2)
    assert pred["song_ids"].dtype.kind == "S" and list(pred["song_ids"]) == [b"SOA", b"SOB", b"SOC"]
    assert pred["factors"].dtype == np.float32 and pred["factors"].shape == (3, 6)
    for row, clip in enumerate(clips.values()):
        per_window = predict_windows(model, clip)
        for key, pkey in (("factors", "factors"), ("embeddings", "embeddings"),
                          ("genre_probs", "genre_probs")):
            assert np.allclose(pred[pkey][row], per_window[key].mean(0), atol=1e-6)
    # an iterable of pairs works the same
    again = predict_clips(model, iter(clips.items()), batch_size=64)
    assert np.allclose(again["factors"], pred["factors"], atol=1e-6)


def test_saved_run_reloads_with_weights_only_and_predicts_the_same(tmp_path):
    model = small_model()
    history = {"epochs": [{"epoch": 1, "train_loss": 0.5}], "best_epoch": 1}
    run = save_cnn_run(model, None, history, tmp_path / "models" / "cnn" / "r1",
                       extra={"wmf_run": "w1"})
    assert sorted(os.listdir(run)) == ["config.json", "history.json", "weights.pt"]
    assert not [p for p in os.listdir(run.parent) if p.startswith(".")]  # nothing partial left
    loaded, cfg, hist = load_cnn_run(run)
    assert cfg == model.config and hist["wmf_run"] == "w1" and hist["best_epoch"] == 1
    assert not loaded.training
    clips = {"SOA": np.random.default_rng(2).normal(size=(16, 80)).astype(np.float16)}
    a, b = predict_clips(model, clips), predict_clips(loaded, clips)
    for key in ("factors", "embeddings", "genre_probs"):
        assert np.array_equal(a[key], b[key])
    with pytest.raises(FileExistsError):
        save_cnn_run(model, None, history, run)
    with pytest.raises(ValueError, match="n_factors"):
        save_cnn_run(model, CNNConfig(**{**SMALL, "n_factors": 5, "n_genres": 3}), history,
                     tmp_path / "r2")


def _leave_a_mark(path):  # what a malicious pickle would run on load
    Path(path).write_text("unpickled!")


class Payload:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (_leave_a_mark, (self.path,))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("how", ["torch.save", "pickle.dump"])
def test_loading_refuses_pickled_objects(tmp_path, how):
    run = save_cnn_run(small_model(), None, {"epochs": []}, tmp_path / "run")
    mark = tmp_path / "mark.txt"
    evil = {**small_model().state_dict(), "payload": Payload(str(mark))}
    os.chmod(run / "weights.pt", 0o644)
    if how == "torch.save":
        torch.save(evil, run / "weights.pt")
    else:
        with open(run / "weights.pt", "wb") as fh:
            pickle.dump(evil, fh)
    with pytest.raises(ValueError, match="refusing"):
        load_cnn_run(run)
    assert not mark.exists()


def test_predictions_round_trip_sorted_by_id(tmp_path):
    model = small_model(n_genres=0)
    rng = np.random.default_rng(3)
    clips = {"SOZ": rng.normal(size=(16, 60)), "SOA": rng.normal(size=(16, 30)),
             "SOM": rng.normal(size=(16, 100))}
    pred = predict_clips(model, clips)
    assert pred["genre_probs"] is None
    save_predictions(pred, tmp_path / "pred")
    back = load_predictions(tmp_path / "pred")
    assert list(back["song_ids"]) == [b"SOA", b"SOM", b"SOZ"] and back["genre_probs"] is None
    order = [1, 2, 0]
    assert np.array_equal(back["factors"], pred["factors"][order])
    assert np.array_equal(back["embeddings"], pred["embeddings"][order])
    dup = {**pred, "song_ids": np.array([b"SOA", b"SOA", b"SOB"])}
    with pytest.raises(ValueError, match="duplicate"):
        save_predictions(dup, tmp_path / "dup")
