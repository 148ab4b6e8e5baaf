"""PMRS clients of the ``pmrs.v1.Recommender`` gRPC service.

- :mod:`clients.stub`: :class:`PMRSClient`, a typed Python client (plain dataclasses in,
  :class:`PMRSError` with the gRPC status code name on failure, per-call deadlines, retries with
  exponential backoff on ``UNAVAILABLE``);
- :mod:`clients.cli`: ``pmrs-client``, the command line over it;
- :mod:`clients.loadtest`: ``pmrs-loadtest`` and :func:`clients.loadtest.run_loadtest`, a
  closed-loop load test reporting QPS, latency percentiles and errors by status code.
"""

from .stub import (BundleInfo, DefaultListInfo, GenreScore, IndexInfo, PMRSClient, PMRSError,
                   Recommendations, SongInfo, SongResult)

__all__ = ["BundleInfo", "DefaultListInfo", "GenreScore", "IndexInfo", "PMRSClient", "PMRSError",
           "Recommendations", "SongInfo", "SongResult"]
