"""``IndexerConfig``: the settings of ``indexer build`` (``[indexer]`` in a TOML config)."""

from __future__ import annotations

from dataclasses import dataclass

from ..serving.contract import (ACOUSTIC, DEFAULT_DIVERSITY, DEFAULT_K, DEFAULT_SHARES, METADATA, NEIGHBOURS,
                                 Defaults)

#: The metadata source's default share when the neighbourhood run records none chosen on
#: validation (``pmrs.collaborative.share``; docs/ARCHITECTURE.md, "The metadata source").
DEFAULT_METADATA_SHARE = 0.1
#: The neighbours source's share of the play-based part of a default list (collaborative +
#: neighbours) when its run records no share chosen on validation (``pmrs.serving_share``).
FALLBACK_NEIGHBOURS_SHARE = 0.5
#: Why the acoustic source's default share is the fixed ``default_acoustic_share``, not chosen on
#: validation as the neighbours and metadata shares are (recorded in the manifest, printed by
#: ``indexer build`` and the cold-start report; docs/ARCHITECTURE.md, "Cold songs").
ACOUSTIC_SHARE_NOT_VALIDATED = (
    "the acoustic share is the fixed default, not chosen on validation: a validation split can hold "
    "out only played songs, whose WMF factors trained the CNN and whose plays trained the WMF run, so "
    "it would score how well the CNN remembers its targets; what the source is for, songs nobody "
    "played, has no plays to score it by (the cold-start report measures their vectors instead)")


@dataclass(frozen=True)
class IndexerConfig:
    """Settings for ``indexer build`` (``[indexer]`` in a TOML config).

    exact_threshold: up to this many vectors an index is exact (``Flat``, i.e. ``IndexFlatIP``).
    collaborative_spec, acoustic_spec: a FAISS ``index_factory`` string overriding the automatic
        choice for that index (``Flat`` up to ``exact_threshold``, else ``IVF{nlist},Flat``).
        A graph spec (HNSW, NSG) is built as an L2 index over l2-augmented vectors.
    l2_reduction: build every approximate spec (anything but exact ``Flat``) as an L2 index over
        l2-augmented vectors, not only graphs. An inner-product IVF assigns queries to the lists
        whose centroids have the largest inner products, which favours long centroids; after the
        reduction every vector has the same norm and k-means lists follow direction. On the
        full-shape benchmark that took the lists probed for recall@10 0.95 from 12% to under 1%
        (docs/ARCHITECTURE.md). ``False`` keeps IVF and other non-graph specs inner-product.
    nlist: inverted lists of the automatic IVF spec; ``None``: about ``4 * sqrt(n)``.
    max_probe_fraction: when the *automatic* IVF spec needs more than this share of its lists
        probed to reach ``target_recall``, it scans about as much as exact search does: the
        index is rebuilt as ``Flat`` (exact) and the manifest records why (``fallback_from``).
    target_recall: recall@10 against exact search that the search parameter is raised to reach.
    recall_queries: sampled user queries for the recall measurement (and half as many song
        queries). 2,000 keeps the sampling error of recall@10 near 0.002: with 500, the smallest
        passing nprobe on the sample gave 0.942-0.946 on other users.
    keep: complete bundles kept after a build (the one ``CURRENT`` names is never deleted).
    seed: query sampling and k-means initialisation.
    default_lists: compute every known user's answer to the default Recommend request (the next
        three settings, no filters, played songs excluded) and every song's answer to the default
        SimilarSongs request (mixed mode, ``default_k`` and ``default_acoustic_share``, no
        re-ranking, no filters) into the bundle, so the server answers those requests by lookup
        (``pmrs.serving.default_lists``). A server whose default
        ``acoustic_share`` gives another acoustic quota, or whose default ``diversity`` differs,
        computes its answers as for any other request.
    default_k, default_acoustic_share, default_diversity: the request the lists answer (``k`` 0
        in a request means 10).
    list_workers: processes computing the default lists; ``None``: one per core, at most 2.
    acoustic: add the ``acoustic`` source from the latest (or the named) CNN run's predictions
        when the work directory has one (``False``: leave it out, as the hold-out report does).
    metadata: add the ``metadata`` source (song vectors from ``catalog.lmdb``'s metadata and
        tags, ``pmrs.metadata``, settings in ``[metadata]``) when the work directory has a catalog.
    metadata_spec: a FAISS ``index_factory`` string for the metadata index (``None``: automatic).
    default_metadata_share: the metadata source's share of a default list; ``None``: the share
        chosen on validation through the served blend and recorded in the neighbourhood run the
        bundle uses (``serving_share.metadata_share``), else ``DEFAULT_METADATA_SHARE``.
    neighbours: add the ``neighbours`` source (the sparse top-K song similarities of the latest
        ``pmrs train-neighbours`` run, or ``build_bundle``'s ``neighbours_run``) when the work
        directory has a neighbourhood run.
    default_neighbours_share: the neighbours source's share of a default list; ``None``: the
        share chosen on validation and recorded in the run (``serving_share`` in its
        ``train_log.json``), which is its share of the play-based part of a list, scaled by what
        the other non-primary sources' default shares leave.
    """

    exact_threshold: int = 50_000
    collaborative_spec: str | None = None
    acoustic_spec: str | None = None
    nlist: int | None = None
    l2_reduction: bool = True
    max_probe_fraction: float = 0.5
    target_recall: float = 0.95
    recall_queries: int = 2000
    keep: int = 3
    seed: int = 0
    default_lists: bool = True
    default_k: int = DEFAULT_K
    default_acoustic_share: float = DEFAULT_SHARES[ACOUSTIC]
    default_diversity: float = DEFAULT_DIVERSITY
    list_workers: int | None = None
    acoustic: bool = True
    metadata: bool = True
    metadata_spec: str | None = None
    default_metadata_share: float | None = None
    neighbours: bool = True
    default_neighbours_share: float | None = None

    def __post_init__(self) -> None:
        if self.keep < 1:
            raise ValueError("keep must be at least 1 (the bundle just built)")
        if not 0.0 < self.target_recall <= 1.0:
            raise ValueError("target_recall must be in (0, 1]")
        if self.recall_queries < 1 or self.exact_threshold < 0:
            raise ValueError("recall_queries must be >= 1 and exact_threshold >= 0")
        if self.nlist is not None and self.nlist < 1:
            raise ValueError("nlist must be at least 1")
        if not 0.0 < self.max_probe_fraction <= 1.0:
            raise ValueError("max_probe_fraction must be in (0, 1]")
        self.defaults({METADATA: self.default_metadata_share or 0.0,   # validates k, shares and diversity
                       **({} if self.default_neighbours_share is None
                          else {NEIGHBOURS: self.default_neighbours_share})})
        if self.list_workers is not None and self.list_workers < 1:
            raise ValueError("list_workers must be at least 1")

    def defaults(self, extra_shares: dict[str, float] | None = None) -> Defaults:
        """The request defaults a bundle built with these settings records (``extra_shares``: the
        default shares of sources besides the collaborative and acoustic ones)."""
        return Defaults(k=self.default_k, shares={ACOUSTIC: self.default_acoustic_share, **(extra_shares or {})},
                        diversity=self.default_diversity)
