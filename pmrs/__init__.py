"""PMRS: a hybrid personalized music recommendation engine.

Collaborative side: weighted matrix factorization (WMF) of play counts.
Acoustic side: a CNN that predicts a song's WMF vector from its audio.
Serving: a bundle of FAISS indexes, one per source, answered through :class:`Recommender`.
"""

__version__ = "0.1.0"

from .recommender import (AlreadyExists, BundleInfo, Filters, InvalidArgument, LogUnavailable, NotFound,
                          ReadOnly, Recommendations, Recommender, ScoredSong, Song, SourceInfo)

__all__ = ["AlreadyExists", "BundleInfo", "Filters", "InvalidArgument", "LogUnavailable", "NotFound",
           "ReadOnly", "Recommendations", "Recommender", "ScoredSong", "Song", "SourceInfo", "__version__"]
