"""``pmrs.acoustic.undertrained.verdict``: each rule on hand-made training histories just on either
side of its threshold (the thresholds are the module's own)."""

import pytest

from pmrs.acoustic.undertrained import (
    FACTOR_MARGIN,
    GENRE_MARGIN,
    MIN_SONGS_PER_GENRE,
    verdict,
)

EPS = 1e-6
MEAN_LOSS = 1.2   # the mean predictor's validation loss in these histories
GENRES = ["jazz", "metal", "rock"]


def _history(best_val_loss, mean_loss=MEAN_LOSS, counts=None, accuracy=None, majority=None) -> dict:
    h = {"best_val_loss": best_val_loss, "val_loss_mean_predictor": mean_loss}
    if counts is not None:
        h.update(genre_train_songs=counts, val_genre_accuracy=accuracy, val_genre_majority_share=majority)
    return h


@pytest.mark.parametrize("relative,undertrained", [(1 - FACTOR_MARGIN - EPS, False), (1 - FACTOR_MARGIN + EPS, True),
                                                   (1.0, True), (0.5, False)])
def test_the_factor_head_must_beat_the_mean_predictor_by_the_margin(relative, undertrained):
    got = verdict(_history(relative * MEAN_LOSS))
    assert got["factors"]["undertrained"] is undertrained
    assert got["genre_head"] is None                     # (no genre head was trained)
    if undertrained:
        assert f"not {FACTOR_MARGIN:.0%} below the mean predictor's {MEAN_LOSS:.3f}" in got["factors"]["reason"]
    else:
        assert got["factors"]["reason"] == ""


@pytest.mark.parametrize("best,mean_loss", [(None, MEAN_LOSS), (0.1, None), (0.1, 0.0)])
def test_without_validation_songs_the_factor_head_is_undertrained(best, mean_loss):
    got = verdict(_history(best, mean_loss))["factors"]
    assert got["undertrained"] and "no validation songs were held out" in got["reason"]


@pytest.mark.parametrize("fewest,undertrained", [(MIN_SONGS_PER_GENRE, False), (MIN_SONGS_PER_GENRE - 1, True)])
def test_every_genre_needs_enough_labelled_training_songs(fewest, undertrained):
    counts = [MIN_SONGS_PER_GENRE + 10, fewest, MIN_SONGS_PER_GENRE + 5]
    head = verdict(_history(0.5, counts=counts, accuracy=0.9, majority=0.4), GENRES)["genre_head"]
    assert head["undertrained"] is undertrained
    assert head["reason"] == (f"fewer than {MIN_SONGS_PER_GENRE} labelled training songs in 1 of 3 genres: "
                              f"metal ({fewest})" if undertrained else "")


@pytest.mark.parametrize("majority", [0.25, 0.4, 0.6])
@pytest.mark.parametrize("above,undertrained", [(GENRE_MARGIN + EPS, False), (GENRE_MARGIN - EPS, True), (0.0, True)])
def test_the_genre_head_must_beat_always_answering_the_most_common_genre(majority, above, undertrained):
    counts = [MIN_SONGS_PER_GENRE] * 3                   # (enough songs: only the accuracy decides)
    got = verdict(_history(0.5, counts=counts, accuracy=majority + above, majority=majority), GENRES)
    head = got["genre_head"]
    assert head["undertrained"] is undertrained
    assert not got["factors"]["undertrained"]             # (each part is judged on its own)
    if undertrained:
        assert f"not {GENRE_MARGIN * 100:.0f} points above always answering the most common genre " \
               f"({majority:.2f})" in head["reason"]
    else:
        assert head["reason"] == ""


@pytest.mark.parametrize("accuracy,majority", [(None, 0.4), (0.9, None)])
def test_without_labelled_validation_songs_the_genre_head_is_undertrained(accuracy, majority):
    counts = [MIN_SONGS_PER_GENRE] * 3
    head = verdict(_history(0.5, counts=counts, accuracy=accuracy, majority=majority), GENRES)["genre_head"]
    assert head["undertrained"] and "no labelled validation song" in head["reason"]
