"""PMRS: a hybrid personalized music recommendation engine.

Collaborative side: weighted matrix factorization (WMF) of play counts.
Acoustic side: a CNN that predicts a song's WMF vector from its audio.
Serving: a bundle of FAISS indexes, one per source, answered through :class:`Recommender` in
process, or by a ``pmrs-server`` through the remote recommender :func:`connect` gives: the same
verbs, the same result types (:mod:`pmrs.results`) and the same exceptions (:mod:`pmrs.errors`).

:class:`Recommender` and :func:`connect` are imported when first used, so that a remote client
loads neither FAISS nor torch, and the in-process API no gRPC.
"""

__version__ = "0.1.0"

from .errors import (AlreadyExists, AudioError, ContractError, DeadlineExceeded, IngestError, InvalidArgument,
                     LogUnavailable, NotFound, PermissionDenied, PMRSError, ReadOnly, ResourceExhausted,
                     Unauthenticated, Unavailable)
from .results import (AddedSong, Appended, BundleInfo, GenreList, GenreRecommendations, GenreScore, ListInfo,
                      RadioSongs, Recommendations, ScoredSong, Song, SourceInfo)
from .serving.contract import Defaults
from .serving.recommend import Filters

#: Names imported on first use: name -> module.
_LAZY = {"Recommender": "recommender", "RemoteRecommender": "remote", "connect": "remote"}

__all__ = ["AddedSong", "AlreadyExists", "Appended", "AudioError", "BundleInfo", "ContractError", "DeadlineExceeded",
           "Defaults", "Filters", "GenreList", "GenreRecommendations", "GenreScore", "IngestError", "InvalidArgument",
           "ListInfo", "LogUnavailable", "NotFound", "PMRSError", "PermissionDenied", "RadioSongs", "ReadOnly",
           "Recommendations",
           "Recommender", "RemoteRecommender", "ResourceExhausted", "ScoredSong", "Song", "SourceInfo",
           "Unauthenticated", "Unavailable", "__version__", "connect"]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pmrs' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
