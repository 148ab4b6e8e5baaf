import numpy as np
import pytest
import torch

from pmrs.acoustic.model import CNNConfig
from pmrs.acoustic.predict import predict_clips
from pmrs.acoustic.train import train_cnn

# A small network over 32 bands keeps every training here to a second or two on one core.
SMALL = dict(n_mels=32, channels=(16, 32), kernel_frames=(5, 3), pool_frames=(2, 2), hidden=64,
             embedding_dim=32, threads=1)


@pytest.fixture(autouse=True)
def one_thread():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


def planted_world(n_songs, n_frames=96, n_mels=32, seed=0):
    """Log-mels whose band energy pattern encodes a 2-D target and a genre (of 3).

    Target dimension 0 scales the energy of bands 0-7, dimension 1 that of bands 12-19, both
    switched on and off in time; genre g raises bands 24+2g and 25+2g. Every third song has no
    genre label.
    """
    rng = np.random.default_rng(seed)
    targets = rng.normal(size=(n_songs, 2)).astype(np.float32)
    genre = rng.integers(0, 3, n_songs)
    mels, factors, genres = {}, {}, {}
    for i in range(n_songs):
        x = rng.normal(size=(n_mels, n_frames))
        on = (rng.random(n_frames) < 0.7).astype(float)
        x[0:8] += 1.5 * targets[i, 0] * on
        x[12:20] += 1.5 * targets[i, 1] * on[::-1]
        x[24 + 2 * genre[i]:26 + 2 * genre[i]] += 2.0
        sid = f"SO{i:06d}"
        mels[sid] = (x - 5.0).astype(np.float16)
        factors[sid] = targets[i]
        if i % 3:
            genres[sid] = int(genre[i])
    return mels, factors, genres


def test_overfits_a_tiny_set():
    rng = np.random.default_rng(0)
    ids = [f"SO{i:04d}" for i in range(16)]
    mels = {s: rng.normal(size=(32, 200)).astype(np.float16) for s in ids}
    y = rng.normal(size=(16, 8)).astype(np.float32)
    # One window per clip (window = clip), no dropout, no validation: pure memorisation.
    cfg = CNNConfig(**SMALL, window_frames=200, dropout=0.0, validation_share=0.0,
                    learning_rate=3e-3, weight_decay=0.0, batch_size=8, max_epochs=150,
                    windows_per_song_per_epoch=1)
    model, history = train_cnn(mels, (np.array(ids, dtype="S"), y), None, cfg, show_progress=False)
    losses = [e["train_loss"] for e in history["epochs"]]
    assert len(losses) == 150 and history["n_val_songs"] == 0
    assert losses[-1] < 0.1 * losses[0]
    assert model.config.n_factors == 8 and model.config.n_genres == 0
    pred = predict_clips(model, mels)
    err = ((pred["factors"] - y) ** 2).sum(1).mean()
    assert err < 0.1 * (y ** 2).sum(1).mean()


def test_learns_a_planted_relation_and_genres():
    mels, factors, genres = planted_world(200)
    cfg = CNNConfig(**SMALL, window_frames=32, dropout=0.1, validation_share=0.2, max_epochs=25,
                    patience=4, windows_per_song_per_epoch=4, batch_size=32, learning_rate=2e-3,
                    genre_loss_weight=0.5)
    model, history = train_cnn(mels, factors, genres, cfg, show_progress=False)
    assert model.config.n_genres == 3 and history["n_val_songs"] == 40
    best = history["epochs"][history["best_epoch"] - 1]
    assert best["val_loss"] == history["best_val_loss"]
    assert history["best_val_loss"] < 0.3 * history["val_loss_mean_predictor"]
    assert best["val_genre_accuracy"] > 0.8  # chance: 1/3
    for row in history["epochs"]:
        assert row["seconds"] > 0 and row["windows_per_s"] > 0 and row["train_loss"] >= 0

    # Fresh songs (cold start): clearly better than predicting the mean, genres well above chance.
    test_mels, test_factors, _ = planted_world(90, seed=7)
    pred = predict_clips(model, test_mels)
    y = np.stack([test_factors[s.decode()] for s in pred["song_ids"]])
    mse = ((pred["factors"] - y) ** 2).sum(1).mean()
    mean_mse = ((y - np.stack(list(factors.values())).mean(0)) ** 2).sum(1).mean()
    assert mse < 0.3 * mean_mse
    rng = np.random.default_rng(7)  # replay planted_world's draws for the genres
    rng.normal(size=(90, 2))
    truth = rng.integers(0, 3, 90)
    assert (pred["genre_probs"].argmax(1) == truth).mean() > 0.8


def test_training_is_deterministic_by_seed():
    mels, factors, genres = planted_world(40, n_frames=64)
    cfg = CNNConfig(**SMALL, window_frames=32, max_epochs=3,
                    windows_per_song_per_epoch=2, batch_size=16, validation_share=0.25)
    a, ha = train_cnn(mels, factors, genres, cfg, show_progress=False)
    b, hb = train_cnn(mels, factors, genres, cfg, show_progress=False)
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert [e["train_loss"] for e in ha["epochs"]] == [e["train_loss"] for e in hb["epochs"]]
    c, _ = train_cnn(mels, factors, genres, CNNConfig(**SMALL, window_frames=32,
                     max_epochs=3, windows_per_song_per_epoch=2, batch_size=16,
                     validation_share=0.25, seed=1), show_progress=False)
    assert not torch.equal(sa["fc1.weight"], c.state_dict()["fc1.weight"])

    # The thread count is set while training and restored afterwards.
    torch.set_num_threads(2)
    train_cnn(mels, factors, genres, cfg, show_progress=False)
    assert torch.get_num_threads() == 2


def test_targets_scaling_normalisation_and_short_clips():
    rng = np.random.default_rng(4)
    ids = [f"SO{i:03d}" for i in range(12)]
    # Clips shorter than a window are tiled; bytes ids in the targets match str ids in the mels.
    mels = {s: (rng.normal(size=(32, 10 + 3 * i)) + 2.0).astype(np.float16)
            for i, s in enumerate(ids)}
    y = (rng.normal(size=(12, 4)) * [5.0, 1.0, 0.1, 0.01] + 3.0).astype(np.float32)
    extra = {"SOXXX": np.zeros(4, np.float32)}  # factors without audio: skipped
    table = {**{s.encode(): y[i] for i, s in enumerate(ids)}, **extra}
    cfg = CNNConfig(**SMALL, window_frames=32, max_epochs=2, validation_share=0.25)
    model, history = train_cnn(mels, table, None, cfg, show_progress=False)
    assert history["n_train_songs"] + history["n_val_songs"] == 12
    # "global" scaling: centred per dimension, one scale sqrt(sum of variances)
    scale = model.factor_scale.numpy()
    assert np.allclose(scale, scale[0]) and scale[0] > 1.0
    assert abs(model.input_mean.numpy().mean() - 2.0) < 0.2  # per-band stats of the training set
    assert history["val_loss_mean_predictor"] > 0
    with pytest.raises(ValueError, match="nothing to train"):
        train_cnn(mels, {"SONONE": y[0]}, None, cfg, show_progress=False)
    with pytest.raises(ValueError, match="n_factors"):
        train_cnn(mels, table, None, CNNConfig(**SMALL, window_frames=32, n_factors=5),
                  show_progress=False)
