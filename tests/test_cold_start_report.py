"""The cold-start report renders whatever the held-out songs' genre labels allow."""

import numpy as np
import pytest

from pmrs.evaluation.cold_start import genre_report, render_report
from pmrs.indexing.config import ACOUSTIC_SHARE_NOT_VALIDATED


def _metrics(genre: dict | None) -> dict:
    model = {"auc": 0.5, "map@10": 0.1, "recall@10": 0.2}
    return {
        "data": {"held_out_songs": 3, "candidate_songs": 10, "train_songs": 7, "test_users": 4,
                 "held_out_pairs": 5},
        "config": {"cold_start": {"ks": [10]}},
        "models": {"random": model, "cnn": {**model, "auc": 0.8}, "upper_bound": {**model, "auc": 0.9}},
        "auc_gap_closed": {"cnn": 0.75},
        "genre_head": genre,
    }


def test_no_labelled_held_out_song_says_genre_accuracy_is_not_measured():
    genre = genre_report([-1, -1, -1], np.full((3, 2), 0.5, dtype=np.float32), ["rock", "jazz"])
    assert genre["songs"] == 0 and genre["accuracy"] is None
    text = render_report(_metrics(genre))
    assert "accuracy not measured" in text
    assert "No held-out song has a genre label" in text
    assert "confusion" not in text


def test_labelled_held_out_songs_give_accuracy_and_confusion():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]], dtype=np.float32)
    genre = genre_report([0, 1, 1], probs, ["rock", "jazz"])
    text = render_report(_metrics(genre))
    assert "accuracy 0.667" in text
    assert "genre_confusion.png" in text


@pytest.mark.parametrize("weights", [None, {"why": "5 validation songs, fewer than the 30 needed"}])
def test_the_report_says_why_the_served_acoustic_share_is_not_chosen_on_validation(weights):
    text = render_report({**_metrics(None), "cold_weights": weights})
    assert f"Served share of the acoustic source: {ACOUSTIC_SHARE_NOT_VALIDATED}." in text
