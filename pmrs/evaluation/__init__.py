"""Offline evaluation: holdout splits of the play-count matrix and ranking metrics."""
