import os

import numpy as np
import pytest

from pmrs.acoustic.baseline import DEFAULT_ALPHAS, RidgeModel, fit_ridge


def linear_world(n, d=12, k=3, noise=0.0, seed=0):
    """Features with varied offsets and scales (fixed per d), factors a fixed linear map of the
    standardised features plus noise; ``seed`` draws the rows."""
    fixed = np.random.default_rng(100 + d)
    scale, offset = fixed.uniform(0.1, 20.0, d), fixed.normal(0, 50, d)
    W = fixed.normal(size=(d, k)) / np.sqrt(d)
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, d))
    return z * scale + offset, z @ W + 0.5 + noise * rng.normal(size=(n, k))


def test_recovers_a_planted_linear_map():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(800, 10)) * rng.uniform(0.1, 20.0, 10) + rng.normal(0, 50, 10)
    A = rng.normal(size=(10, 4))
    b = rng.normal(size=4)
    Y = X @ A + b + 1e-3 * rng.normal(size=(800, 4))
    model = fit_ridge(X, Y)
    assert model.alpha <= 1.0  # almost no noise and plenty of rows: little shrinkage wins
    # the map in original feature units is weights / scale
    assert np.allclose(model.weights / model.feature_scale[:, None], A, atol=2e-3)
    X_new = rng.normal(size=(50, 10)) * 10
    assert np.allclose(model.predict(X_new), X_new @ A + b, atol=0.05, rtol=1e-3)
    assert model.predict(X_new).dtype == np.float32


def test_beats_the_mean_predictor_and_the_grid_picks_a_sensible_alpha():
    d = 40
    X, Y = linear_world(60, d=d, noise=1.0, seed=1)  # few rows, many features, much noise
    model = fit_ridge(X, Y, seed=0)
    val = model.validation
    assert val["alphas"] == list(DEFAULT_ALPHAS) and len(val["val_losses"]) == len(DEFAULT_ALPHAS)
    assert val["val_losses"][DEFAULT_ALPHAS.index(model.alpha)] == min(val["val_losses"])
    assert model.alpha >= 10.0  # strong shrinkage when the data are few and noisy

    X_test, Y_test = linear_world(5000, d=d, noise=1.0, seed=2)
    def test_err(m):
        return ((m.predict(X_test) - Y_test) ** 2).sum(1).mean()
    mean_err = ((Y_test - Y.mean(0)) ** 2).sum(1).mean()
    assert test_err(model) < 0.95 * mean_err
    # the chosen alpha is close to the best of the grid on fresh data, and beats no shrinkage
    errs = {a: test_err(fit_ridge(X, Y, alphas=(a,))) for a in DEFAULT_ALPHAS}
    assert test_err(model) <= 1.15 * min(errs.values())
    assert test_err(model) < errs[DEFAULT_ALPHAS[0]]


def test_constant_columns_single_alpha_and_bad_input():
    X, Y = linear_world(100, d=5, noise=0.1)
    X = np.hstack([X, np.full((100, 1), 7.0)])  # a constant feature: scale 1, weight 0
    model = fit_ridge(X, Y, alphas=(0.0,), validation_share=0.2)
    assert model.alpha == 0.0 and "val_losses" not in model.validation
    assert model.feature_scale[-1] == 1.0 and np.allclose(model.weights[-1], 0.0)
    assert np.isfinite(model.predict(X)).all()
    with pytest.raises(ValueError):
        fit_ridge(X, Y[:50])
    with pytest.raises(ValueError):
        model.predict(X[:, :3])


def test_save_and_load_round_trip_without_pickle(tmp_path):
    X, Y = linear_world(120, noise=0.3)
    model = fit_ridge(X, Y)
    model.save(tmp_path / "ridge")
    assert sorted(os.listdir(tmp_path / "ridge")) == [
        "feature_mean.npy", "feature_scale.npy", "intercept.npy", "ridge.json", "weights.npy"]
    back = RidgeModel.load(tmp_path / "ridge")
    assert back.alpha == model.alpha and back.validation == model.validation
    assert np.array_equal(back.predict(X), model.predict(X))
