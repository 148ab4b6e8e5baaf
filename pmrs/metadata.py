"""Song vectors from metadata: the ``metadata`` source (content-based filtering by what is known
about a song, not by how it sounds or who played it).

A song's description has five *parts*, each a sparse vector over its own vocabulary:

- ``tags``: the Last.fm tags with their weights (0-100) as term frequencies, times the tag's
  inverse document frequency (scikit-learn's ``TfidfTransformer``, smooth idf), so "rock" on
  half the catalog says less than "shoegaze"; tags on fewer than ``min_tag_songs`` songs are
  dropped (most real tags are used once, and a tag on one song relates it to nothing);
- ``artist``: the artist (its MSD id, else its name), one-hot;
- ``release``: the release (album) of that artist, one-hot;
- ``genre``: the genre label, one-hot;
- ``decade``: the decade of the year (no entry for year 0, the MSD's "unknown").

Each part is L2-normalised per song and scaled by the square root of its weight, so the inner
product of two songs' full vectors is ``sum_p weight_p * cosine_p``: with the default weights,
sharing the artist counts half as much as having the same tags, sharing a release a quarter.
The full vector (one column per tag, artist, release, ...) is reduced to ``dimensions`` dense
float32 components by a truncated SVD (randomised, scikit-learn's ``TruncatedSVD``), and each
song's vector is L2-normalised, so an inner-product index returns cosine neighbours. A song with
no metadata at all has the zero vector. Why these choices (SVD against a random projection, the
number of dimensions): docs/ARCHITECTURE.md, "The metadata source"; the measurements are
docs/BENCHMARKS.md's ``metadata_*.json``.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from .catalog import CATALOG_FILE, Catalog

log = logging.getLogger(__name__)

#: The parts of a song's metadata, in the order of the full vector's columns.
PARTS = ("tags", "artist", "release", "genre", "decade")
REDUCTIONS = ("svd", "random")


@dataclass(frozen=True)
class MetadataConfig:
    """Settings of the metadata vectors (``[metadata]`` in a TOML config).

    dimensions: components of a song's dense vector.
    tags_weight, artist_weight, release_weight, genre_weight, decade_weight: each part's weight
        in the similarity of two songs (``sum_p weight_p * cosine_p``); 0 leaves a part out.
    min_tag_songs: a tag on fewer songs than this is dropped.
    reduction: ``"svd"`` (truncated SVD) or ``"random"`` (a Gaussian random projection).
    seed: the randomised SVD's (or the projection's) random state.
    """

    dimensions: int = 64
    tags_weight: float = 1.0
    artist_weight: float = 0.5
    release_weight: float = 0.25
    genre_weight: float = 0.5
    decade_weight: float = 0.25
    min_tag_songs: int = 2
    reduction: str = "svd"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.dimensions < 1:
            raise ValueError("metadata dimensions must be at least 1")
        if any(w < 0 or not np.isfinite(w) for w in self.weights().values()):
            raise ValueError("metadata weights must be finite and >= 0")
        if not any(self.weights().values()):
            raise ValueError("at least one metadata weight must be positive")
        if self.min_tag_songs < 1:
            raise ValueError("min_tag_songs must be at least 1")
        if self.reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {self.reduction!r}")

    def weights(self) -> dict[str, float]:
        return {part: float(getattr(self, f"{part}_weight")) for part in PARTS}


def _tokens(song: Mapping, part: str) -> str | None:
    """The one token of a one-hot part, or ``None`` when the song has none."""
    if part == "artist":
        artist = str(song.get("artist_id") or "").strip() or str(song.get("artist") or "").strip().lower()
        return artist or None
    if part == "release":
        release = str(song.get("release") or "").strip().lower()
        if not release:
            return None
        return f"{_tokens(song, 'artist') or ''}\x1f{release}"  # "Greatest Hits" of one artist
    if part == "genre":
        return str(song.get("genre") or "").strip().lower() or None
    if part == "decade":
        year = int(song.get("year") or 0)
        return f"{year // 10 * 10}s" if year > 0 else None
    raise ValueError(part)


def _one_hot(tokens: Sequence[str | None]) -> tuple[sp.csr_matrix, list[str]]:
    present = [i for i, t in enumerate(tokens) if t is not None]
    vocab, cols = np.unique(np.array([tokens[i] for i in present], dtype=object).astype(str),
                            return_inverse=True) if present else (np.array([], dtype=str), np.array([], int))
    m = sp.csr_matrix((np.ones(len(present), np.float32), (np.array(present, dtype=np.int64), cols)),
                      shape=(len(tokens), len(vocab)))
    return m, vocab.tolist()


def _tag_terms(d: Mapping[str, float]) -> dict[str, float]:
    return {t.strip().lower(): float(w) for t, w in d.items()}


def _tag_matrix(tags: Sequence[Mapping[str, float]], min_songs: int
                ) -> tuple[sp.csr_matrix, list[str], np.ndarray]:
    """TF-IDF of the tags kept, their names and their idf weights."""
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.feature_extraction.text import TfidfTransformer

    counts = DictVectorizer(dtype=np.float32, sort=True)
    m = counts.fit_transform([_tag_terms(d) for d in tags]).tocsc()
    names = counts.get_feature_names_out()
    keep = np.flatnonzero(np.diff(m.indptr) >= min_songs)
    m = m[:, keep].tocsr()
    m.eliminate_zeros()  # tags of weight 0 say nothing
    if m.shape[1] == 0:
        return sp.csr_matrix((len(tags), 0), dtype=np.float32), [], np.zeros(0, np.float32)
    tf = TfidfTransformer(norm=None, smooth_idf=True)
    tfidf = tf.fit_transform(m)
    return sp.csr_matrix(tfidf, dtype=np.float32), names[keep].tolist(), tf.idf_.astype(np.float32)


def _l2_rows(m: sp.csr_matrix) -> sp.csr_matrix:
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return sp.csr_matrix(sp.diags(scale.astype(np.float32)) @ m)


def metadata_matrix(songs: Sequence[Mapping], tags: Sequence[Mapping[str, float]],
                    cfg: MetadataConfig | None = None) -> tuple[sp.csr_matrix, dict[str, slice]]:
    """The full sparse vectors ``(n_songs, n_features)`` float32 of ``songs`` (catalog fields)
    with their ``tags`` (``{tag: weight}``, one dict per song), and the columns of each part.
    Row ``i`` dotted with row ``j`` is ``sum_p weight_p * cosine_p(i, j)``."""
    full, columns, _ = _fit_matrix(songs, tags, cfg or MetadataConfig())
    return full, columns


def _fit_matrix(songs, tags, cfg: MetadataConfig) -> tuple[sp.csr_matrix, dict[str, slice], list[dict]]:
    """:func:`metadata_matrix` and each part's vocabulary (and the tags' idf), for
    :class:`MetadataModel`."""
    if len(songs) != len(tags):
        raise ValueError(f"{len(songs)} songs but {len(tags)} tag sets")
    blocks, columns, parts, start = [], {}, [], 0
    for part, weight in cfg.weights().items():
        if weight <= 0:
            continue
        idf = None
        if part == "tags":
            m, vocab, idf = _tag_matrix(tags, cfg.min_tag_songs)
        else:
            m, vocab = _one_hot([_tokens(s, part) for s in songs])
        blocks.append(_l2_rows(m) * np.float32(np.sqrt(weight)))
        columns[part] = slice(start, start + m.shape[1])
        parts.append({"part": part, "weight": weight, "vocab": list(vocab),
                      "idf": None if idf is None else idf.tolist()})
        start += m.shape[1]
    return sp.hstack(blocks, format="csr", dtype=np.float32), columns, parts


@dataclass
class MetadataModel:
    """What turns a song's fields and tags into its metadata vector, for songs that were not in
    the catalog the vectors were made from (songs added live): each part's vocabulary (the
    tags' idf too) and weight, and the reduction's components ``(d, n_features)`` (``None``: the
    full vector was kept). ``vector(fields, tags)`` equals the song's row of
    :func:`metadata_vectors` had it been in that catalog (tests check it)."""

    parts: list[dict]
    components: np.ndarray | None
    dimensions: int
    artist_ids: dict = field(default_factory=dict)   # artist name (lower case) -> MSD artist id
    _indexes: list | None = field(default=None, init=False, repr=False, compare=False)

    def vector(self, fields: Mapping, tags: Mapping[str, float]) -> np.ndarray:
        if self._indexes is None:   # (token -> column per part; built once)
            self._indexes = [{t: i for i, t in enumerate(p["vocab"])} for p in self.parts]
        # a song added live names its artist, not the MSD's artist id the vocabulary holds
        named = fields
        alias = self.artist_ids.get(str(fields.get("artist") or "").strip().lower())
        if alias and not fields.get("artist_id"):
            named = {**fields, "artist_id": alias}
        blocks = []
        for p, index in zip(self.parts, self._indexes):
            x = np.zeros(len(index), np.float32)
            if p["part"] == "tags":
                idf = np.asarray(p["idf"], np.float32)
                for t, w in _tag_terms(tags).items():
                    i = index.get(t)
                    if i is not None and w:
                        x[i] = w * idf[i]
            else:
                i = index.get(_tokens(named, p["part"]))
                if i is not None:
                    x[i] = 1.0
            n = np.linalg.norm(x)
            blocks.append(x / n * np.float32(np.sqrt(p["weight"])) if n > 0 else x)
        full = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
        z = full if self.components is None else self.components @ full
        z = np.asarray(z, np.float32)[: self.dimensions]
        if len(z) < self.dimensions:
            z = np.pad(z, (0, self.dimensions - len(z)))
        n = np.linalg.norm(z)
        return z / n if n > 0 else z

    def to_json(self) -> dict:
        return {"parts": self.parts, "dimensions": self.dimensions, "artist_ids": self.artist_ids}

    @classmethod
    def from_json(cls, doc: Mapping, components: np.ndarray | None) -> "MetadataModel":
        return cls(list(doc["parts"]), components, int(doc["dimensions"]), dict(doc.get("artist_ids") or {}))


def reduce_vectors(full: sp.csr_matrix, cfg: MetadataConfig | None = None) -> np.ndarray:
    """Dense ``(n_songs, d)`` float32 L2-normalised rows (zero rows stay zero) from the full sparse
    vectors; ``d`` is ``cfg.dimensions``, or fewer when the matrix has fewer columns or rows."""
    return _reduce(full, cfg or MetadataConfig())[0]


def _reduce(full: sp.csr_matrix, cfg: MetadataConfig) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`reduce_vectors` and the components ``(d, n_features)`` that map a full vector to its
    reduced one before normalising (``None``: the full vector is kept)."""
    n, f = full.shape
    d = max(1, min(cfg.dimensions, f, n))
    if f == 0:
        return np.zeros((n, 1), np.float32), np.zeros((1, 0), np.float32)
    components = None
    if cfg.reduction == "random":
        from sklearn.random_projection import GaussianRandomProjection

        rp = GaussianRandomProjection(n_components=d, random_state=cfg.seed)
        z = rp.fit_transform(full)
        components = np.asarray(rp.components_.todense() if sp.issparse(rp.components_) else rp.components_)
    elif d >= min(f, n):  # nothing to reduce: the exact vectors, rotated by a dense SVD
        if f <= cfg.dimensions:
            z = full.toarray()
        else:
            _, sv, vh = np.linalg.svd(full.toarray(), full_matrices=False)
            components = vh[:d]
            z = full @ components.T
    else:
        from sklearn.decomposition import TruncatedSVD

        svd = TruncatedSVD(n_components=d, algorithm="randomized", n_iter=7, random_state=cfg.seed)
        z = svd.fit_transform(full)
        components = svd.components_
    z = np.asarray(z, dtype=np.float32)
    norms = np.linalg.norm(z, axis=1, keepdims=True)
    z = np.divide(z, norms, out=np.zeros_like(z), where=norms > 0)
    return z, None if components is None else np.ascontiguousarray(components, dtype=np.float32)


def metadata_vectors(songs: Sequence[Mapping], tags: Sequence[Mapping[str, float]],
                     cfg: MetadataConfig | None = None) -> np.ndarray:
    """``(n_songs, d)`` float32 metadata vectors (L2-normalised; zero for a song with no
    metadata): :func:`metadata_matrix` reduced by :func:`reduce_vectors`."""
    cfg = cfg or MetadataConfig()
    full, _ = metadata_matrix(songs, tags, cfg)
    return reduce_vectors(full, cfg)


@dataclass
class CatalogVectors:
    """Every catalog song's metadata vector. song_ids: ``(n,)`` sorted fixed-width bytes; vectors:
    ``(n, d)`` float32; ``songs_with_tags`` and ``seconds`` for the record."""

    song_ids: np.ndarray
    vectors: np.ndarray
    songs_with_tags: int
    features: dict[str, int]
    seconds: float
    settings: dict
    model: MetadataModel | None = None


def catalog_vectors(catalog_path: str | os.PathLike, cfg: MetadataConfig | None = None) -> CatalogVectors:
    """The metadata vector of every song in ``catalog.lmdb`` (cold songs included)."""
    cfg = cfg or MetadataConfig()
    import sklearn.decomposition  # noqa: F401  (imported before the clock starts: seconds of its own)
    import sklearn.feature_extraction.text  # noqa: F401

    t0 = time.perf_counter()
    with Catalog(catalog_path) as cat:
        items = list(cat.items())           # LMDB order: sorted by song id
        tag_of = dict(cat.items_tags())
    ids = [s for s, _ in items]
    tags = [tag_of.get(s, {}) for s in ids]
    if not tag_of:
        log.warning("%s has no Last.fm tags: the metadata vectors use artist, release, genre and "
                    "decade only (give `pmrs ingest` the Last.fm data to add them)", catalog_path)
    full, columns, parts = _fit_matrix([f for _, f in items], tags, cfg)
    vectors, components = _reduce(full, cfg)
    width = max((len(s.encode()) for s in ids), default=1)
    song_ids = np.array([s.encode() for s in ids], dtype=f"S{width}")
    seconds = time.perf_counter() - t0
    log.info("metadata vectors: %d songs (%d with tags), %d features -> %d dimensions in %.1f s",
             len(ids), len(tag_of), full.shape[1], vectors.shape[1], seconds)
    return CatalogVectors(song_ids, vectors, len(tag_of),
                          {p: c.stop - c.start for p, c in columns.items()}, round(seconds, 3),
                          {**asdict(cfg), "catalog": str(Path(catalog_path))},
                          MetadataModel(parts, components, int(vectors.shape[1]),
                                        {str(f.get("artist") or "").strip().lower(): f["artist_id"]
                                         for _, f in items if f.get("artist_id") and f.get("artist")}))


__all__ = ["CATALOG_FILE", "CatalogVectors", "MetadataConfig", "MetadataModel", "PARTS", "catalog_vectors",
           "metadata_matrix", "metadata_vectors", "reduce_vectors"]
