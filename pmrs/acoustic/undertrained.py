"""When the acoustic model learned from too little, and why (``pmrs train-cnn``, ``indexer build``
and ``GetSong`` say so).

The rule, from a training history (``pmrs.acoustic.train.train_cnn``):

- the factor head is *undertrained* when its best validation loss is not at least
  ``FACTOR_MARGIN`` (5%) below the loss of predicting the training songs' mean factors for every
  song (``val_loss_mean_predictor``), or when no validation songs were held out to tell;
- the genre head is *undertrained* when a genre has fewer than ``MIN_SONGS_PER_GENRE`` (20)
  labelled training songs, or when its validation accuracy is not at least ``GENRE_MARGIN``
  (5 points) above the share of the most common genre among the labelled validation songs (what
  always answering that genre scores), or when no labelled validation song was held out to tell.

An undertrained genre head gives every song about the same confidences: its guesses are not used
to file songs under genres (``pmrs.Recommender.recommend_by_genre``), and a song's known genre
always wins over a guess.
"""

from __future__ import annotations

FACTOR_MARGIN = 0.05
MIN_SONGS_PER_GENRE = 20
GENRE_MARGIN = 0.05


def verdict(history: dict, genres: list[str] | None = None) -> dict:
    """``{"factors": {"undertrained", "reason"}, "genre_head": {...} or None}`` (``None``: no genre
    head); a reason is a sentence a user can act on, empty when the part is fine."""
    out = {"factors": _factors(history), "genre_head": None}
    counts = history.get("genre_train_songs") or []
    if counts:
        out["genre_head"] = _genre_head(history, counts, genres or [])
    return out


def _factors(h: dict) -> dict:
    best, base = h.get("best_val_loss"), h.get("val_loss_mean_predictor")
    if best is None or not base:
        return {"undertrained": True, "reason": "no validation songs were held out, so nothing shows that the "
                "CNN predicts better than the mean factors (train on more songs)"}
    if best > (1 - FACTOR_MARGIN) * base:
        return {"undertrained": True,
                "reason": f"its validation loss {best:.3f} is not {FACTOR_MARGIN:.0%} below the mean "
                          f"predictor's {base:.3f}: it predicts little more than the average song"}
    return {"undertrained": False, "reason": ""}


def _genre_head(h: dict, counts: list[int], genres: list[str]) -> dict:
    names = genres if len(genres) == len(counts) else [str(i) for i in range(len(counts))]
    few = [f"{n} ({c})" for n, c in zip(names, counts) if c < MIN_SONGS_PER_GENRE]
    if few:
        return {"undertrained": True,
                "reason": f"fewer than {MIN_SONGS_PER_GENRE} labelled training songs in "
                          f"{len(few)} of {len(counts)} genres: {', '.join(few[:5])}"
                          f"{', ...' if len(few) > 5 else ''}"}
    acc, majority = h.get("val_genre_accuracy"), h.get("val_genre_majority_share")
    if acc is None or majority is None:
        return {"undertrained": True, "reason": "no labelled validation song was held out to measure it"}
    if acc < majority + GENRE_MARGIN:
        return {"undertrained": True,
                "reason": f"its validation accuracy {acc:.2f} is not {GENRE_MARGIN * 100:.0f} points above "
                          f"always answering the most common genre ({majority:.2f})"}
    return {"undertrained": False, "reason": ""}
