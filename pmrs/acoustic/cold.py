"""A cold song's vector in the WMF space: its audio prediction combined with what the catalog knows.

A song nobody played has no WMF factors. Its vector is a weighted sum of *parts*, each a
``(k,)`` vector in the WMF run's space or missing:

- ``audio``: the CNN's prediction from its clip;
- ``artist``: the mean factors of the artist's played songs (artist by name, lower case, as a
  song added live names it);
- ``release``: the mean factors of the played songs of the same release by the same artist;
- ``tags``: for each Last.fm tag, the mean factors of the played songs carrying it (weighted by
  their tag weights), averaged over the song's tags by its own tag weights;
- ``similar``: the mean factors of its Last.fm similar songs that were played, weighted by
  similarity.

``combined = w_mean * m + sum_p w_p * (part_p if present else m)``, with ``m`` the mean factors of
the played songs. A missing part counts as ``m``, the answer of a predictor that knows nothing of
the song, so one set of weights serves every pattern of missing parts and none is renormalised.
The weights are chosen by non-negative least squares (scipy's ``nnls``) against the WMF factors of
*validation* songs: played songs the CNN did not train on, whose parts are computed as if they
were cold (a song's own factors never enter its own means). Non-negative, because every part is
an estimate of the same vector and a negative weight would only fit noise.

The evaluation (``pmrs evaluate --cold-start``), ``pmrs train-cnn`` (which chooses the weights a
bundle serves), ``indexer build`` (cold songs' acoustic vectors) and a song added live
(:class:`ColdModel`, stored in the bundle) all combine through :func:`combine`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ..artifacts import load_npy, read_json, save_npy, write_json
from ..catalog import Catalog

log = logging.getLogger(__name__)

#: The parts of a cold song's vector; ``KEY_PARTS`` are means over catalog keys (stored in a
#: bundle for songs added live), ``similar`` needs Last.fm's similars (not in bundles).
PARTS = ("audio", "artist", "release", "tags", "similar")
KEY_PARTS = ("artist", "release", "tags")
#: The parts without the audio prediction (the report's "metadata only").
METADATA_PARTS = tuple(p for p in PARTS if p != "audio")
#: Fewer validation songs than this choose no weights (five per weight fitted): on six songs the
#: fit put all the weight on one part and gave cold songs that share a similar one vector.
MIN_VALIDATION_SONGS = 30
#: Rows of a part's computation at a time (bounds the ``(rows, k)`` work arrays).
_CHUNK = 65_536


def artist_key(fields: Mapping) -> str | None:
    """The artist a song is filed under: its name, stripped, lower case; ``None`` when unnamed."""
    return str(fields.get("artist") or "").strip().lower() or None


def release_key(fields: Mapping) -> str | None:
    """The release of that artist (``"artist\\x1frelease"``); ``None`` without a release name."""
    release = str(fields.get("release") or "").strip().lower()
    return f"{artist_key(fields) or ''}\x1f{release}" if release else None


def tag_terms(tags: Mapping[str, float]) -> dict[str, float]:
    """Tags as keys: stripped, lower case, with their weights (0-100); weight 0 dropped."""
    return {str(t).strip().lower(): float(w) for t, w in tags.items() if float(w) > 0 and str(t).strip()}


@dataclass
class CatalogKnowledge:
    """What the catalog knows of each song, as keys: ``fields`` song id -> ``(artist key,
    release key, {tag: weight})`` and ``similars`` song id -> ``{song id: score}``."""

    keys: dict[str, tuple[str | None, str | None, dict[str, float]]]
    similars: dict[str, dict[str, float]] = field(default_factory=dict)

    @classmethod
    def from_songs(cls, fields: Mapping[str, Mapping], tags: Mapping[str, Mapping[str, float]] | None = None,
                   similars: Mapping[str, Mapping[str, float]] | None = None) -> CatalogKnowledge:
        tags = tags or {}
        return cls({s: (artist_key(f or {}), release_key(f or {}), tag_terms(tags.get(s) or {}))
                    for s, f in fields.items()},
                   {s: {o: float(w) for o, w in d.items() if o != s} for s, d in (similars or {}).items()})

    @classmethod
    def read(cls, catalog_path: str | os.PathLike) -> CatalogKnowledge:
        """Every song of ``catalog.lmdb`` (empty when there is no catalog)."""
        if not Path(catalog_path).is_file():
            return cls({})
        with Catalog(catalog_path) as cat:
            return cls.from_songs(dict(cat.items()), dict(cat.items_tags()), dict(cat.items_similars()))

    def incidence(self, part: str, song_ids: Sequence[str], vocab: dict[str, int] | None = None
                  ) -> tuple[sp.csr_matrix, dict[str, int]]:
        """``(songs x keys)`` weights of a key part (1 for an artist or release, the tag weight for
        a tag) and the vocabulary (grown from these songs when ``vocab`` is ``None``; keys
        outside a given one are dropped)."""
        grow = vocab is None
        vocab = {} if vocab is None else vocab
        rows, cols, vals = [], [], []
        i = KEY_PARTS.index(part)
        for r, s in enumerate(song_ids):
            got = self.keys.get(s)
            if got is None:
                continue
            items = got[2].items() if part == "tags" else ([(got[i], 1.0)] if got[i] else [])
            for key, w in items:
                c = vocab.get(key)
                if c is None:
                    if not grow:
                        continue
                    c = vocab[key] = len(vocab)
                rows.append(r)
                cols.append(c)
                vals.append(w)
        m = sp.csr_matrix((np.asarray(vals, np.float64), (np.asarray(rows, np.int64), np.asarray(cols, np.int64))),
                          shape=(len(song_ids), len(vocab)))
        m.sum_duplicates()
        return m, vocab


@dataclass
class Parts:
    """Parts of some songs' vectors: ``vectors[p]`` ``(n, k)`` float64 (rows of missing parts are
    0) and ``present[p]`` ``(n,)`` bool, for the parts computed; ``mean`` ``(k,)``."""

    vectors: dict[str, np.ndarray]
    present: dict[str, np.ndarray]
    mean: np.ndarray

    def coverage(self) -> dict[str, float]:
        """Share of the songs that have each part."""
        return {p: float(v.mean()) if len(v) else 0.0 for p, v in self.present.items()}


def _means(incidence: sp.csr_matrix, sums: np.ndarray, weight: np.ndarray, own: np.ndarray | None,
           own_in: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Per query row, the weighted average over its keys of each key's mean (``sums / weight``),
    a played query's own contribution left out of each key's mean (``own``: its factors,
    ``own_in``: whether it is played). Returns ``(vectors (n, k), present (n,))``."""
    n, k = incidence.shape[0], sums.shape[1]
    out = np.zeros((n, k))
    total = np.zeros(n)
    coo = incidence.tocoo()
    for a in range(0, coo.nnz, _CHUNK):
        r, c, w = coo.row[a:a + _CHUNK], coo.col[a:a + _CHUNK], coo.data[a:a + _CHUNK]
        s, wt = sums[c].copy(), weight[c].copy()
        if own is not None:
            mine = own_in[r]
            s[mine] -= w[mine, None] * own[r[mine]]
            wt[mine] -= w[mine]
        ok = wt > 1e-9
        r, w = r[ok], w[ok]
        np.add.at(out, r, w[:, None] * (s[ok] / wt[ok, None]))
        np.add.at(total, r, w)
    present = total > 0
    out[present] /= total[present, None]
    return out, present


def cold_parts(knowledge: CatalogKnowledge, played_ids: Sequence[str], played_factors: np.ndarray,
               song_ids: Sequence[str], audio: np.ndarray | None = None) -> Parts:
    """The parts of ``song_ids``' vectors given the ``played_factors`` ``(n_played, k)`` of the
    songs ``played_ids`` (a WMF run's). A song that is itself played is treated as cold: its own
    factors are left out of every mean. ``audio``: the CNN's predictions ``(len(song_ids), k)``
    (``None``: no audio part)."""
    y = np.asarray(played_factors, np.float64)
    played_ids = list(played_ids)
    song_ids = list(song_ids)
    where = {s: i for i, s in enumerate(played_ids)}
    own_row = np.array([where.get(s, -1) for s in song_ids], np.int64)
    own_in = own_row >= 0
    own = np.zeros((len(song_ids), y.shape[1]))
    own[own_in] = y[own_row[own_in]]
    vectors, present = {}, {}
    if audio is not None:
        a = np.asarray(audio, np.float64)
        if a.shape != (len(song_ids), y.shape[1]):
            raise ValueError(f"audio predictions of shape {a.shape} for {len(song_ids)} songs of {y.shape[1]} factors")
        vectors["audio"], present["audio"] = a, np.ones(len(song_ids), bool)
    for part in KEY_PARTS:
        m_played, vocab = knowledge.incidence(part, played_ids)
        sums = np.asarray(m_played.T @ y)
        weight = np.asarray(m_played.sum(axis=0)).ravel()
        m_q, _ = knowledge.incidence(part, song_ids, vocab)
        vectors[part], present[part] = _means(m_q, sums, weight, own, own_in)
    rows, cols, vals = [], [], []
    for r, s in enumerate(song_ids):
        for other, w in knowledge.similars.get(s, {}).items():
            c = where.get(other)
            if c is not None and other != s and w > 0:
                rows.append(r)
                cols.append(c)
                vals.append(w)
    sim = sp.csr_matrix((np.asarray(vals, np.float64), (np.asarray(rows, np.int64), np.asarray(cols, np.int64))),
                        shape=(len(song_ids), len(played_ids)))
    total = np.asarray(sim.sum(axis=1)).ravel()
    present["similar"] = total > 0
    v = np.asarray(sim @ y)
    v[present["similar"]] /= total[present["similar"], None]
    vectors["similar"] = v
    return Parts(vectors, present, y.mean(axis=0) if len(y) else np.zeros(y.shape[1]))


def combine(parts: Parts, weights: Mapping[str, float]) -> np.ndarray:
    """``(n, k)`` float32: ``w_mean * mean + sum_p w_p * (part p, else mean)`` over the parts
    ``weights`` names (module docstring); a part it names that ``parts`` lacks counts as the mean."""
    n = len(next(iter(parts.present.values()))) if parts.present else 0
    out = np.tile(parts.mean * float(weights.get("mean", 0.0)), (n, 1))
    for p, w in weights.items():
        if p == "mean" or not w:
            continue
        if p not in parts.vectors:
            out += float(w) * parts.mean
            continue
        out += float(w) * np.where(parts.present[p][:, None], parts.vectors[p], parts.mean)
    return out.astype(np.float32)


def fit_weights(parts: Parts, target: np.ndarray, use: Sequence[str] = PARTS) -> dict:
    """The weights of ``use`` (those ``parts`` has) and ``mean`` minimising the squared error of
    :func:`combine` against ``target`` ``(n, k)`` (the songs' WMF factors), non-negative.
    Returns ``{"weights": {part: w, "mean": w}, "loss", "loss_mean_predictor", "songs",
    "coverage"}`` (losses: squared error summed over factors, averaged over songs)."""
    from scipy.optimize import nnls

    target = np.asarray(target, np.float64)
    names = [p for p in use if p in parts.vectors]
    n = len(target)
    if n == 0:
        raise ValueError("no validation song to choose the cold-start weights on")
    cols = [np.where(parts.present[p][:, None], parts.vectors[p], parts.mean).ravel() for p in names]
    cols.append(np.tile(parts.mean, n))
    w, _ = nnls(np.stack(cols, axis=1), target.ravel())
    weights = {p: round(float(x), 6) for p, x in zip(names + ["mean"], w)}
    loss = float(((combine(parts, weights).astype(np.float64) - target) ** 2).sum(1).mean())
    base = float(((target - target.mean(0)) ** 2).sum(1).mean())
    return {"weights": weights, "loss": loss, "loss_mean_predictor": base, "songs": int(n),
            "coverage": {p: parts.coverage()[p] for p in names}}


@dataclass
class ColdModel:
    """What a bundle needs to give a song added live its combined vector: the weights, the mean
    factors, and each key part's vocabulary with each key's mean factors (``(n_keys, k)``)."""

    weights: dict[str, float]
    mean: np.ndarray
    tables: dict[str, tuple[list[str], np.ndarray]]

    @classmethod
    def fit(cls, knowledge: CatalogKnowledge, played_ids: Sequence[str], played_factors: np.ndarray,
            weights: Mapping[str, float]) -> ColdModel:
        y = np.asarray(played_factors, np.float64)
        tables = {}
        for part in KEY_PARTS:
            if not weights.get(part):
                continue   # (a part of weight 0 needs no table)
            m, vocab = knowledge.incidence(part, list(played_ids))
            weight = np.asarray(m.sum(axis=0)).ravel()
            keep = np.flatnonzero(weight > 0)
            means = (np.asarray(m.T @ y)[keep] / weight[keep, None]).astype(np.float32)
            names = sorted(vocab, key=vocab.get)
            tables[part] = ([names[i] for i in keep], means)
        return cls(dict(weights), y.mean(axis=0) if len(y) else np.zeros(y.shape[1]), tables)

    def parts(self, fields: Mapping, tags: Mapping[str, float], audio: np.ndarray | None) -> Parts:
        """One song's parts from its fields, tags and audio prediction (no similars: a song added
        live names none)."""
        keys = {"artist": {artist_key(fields): 1.0}, "release": {release_key(fields): 1.0}, "tags": tag_terms(tags)}
        vectors, present = {}, {}
        if audio is not None:
            vectors["audio"], present["audio"] = np.asarray(audio, np.float64)[None, :], np.ones(1, bool)
        for part, (vocab, means) in self.tables.items():
            index = {t: i for i, t in enumerate(vocab)}
            hits = [(index[t], w) for t, w in keys[part].items() if t in index]
            present[part] = np.array([bool(hits)])
            v = np.zeros((1, len(self.mean)))
            if hits:
                rows, w = zip(*hits)
                v[0] = np.average(means[list(rows)].astype(np.float64), axis=0, weights=w)
            vectors[part] = v
        return Parts(vectors, present, np.asarray(self.mean, np.float64))

    def vector(self, fields: Mapping, tags: Mapping[str, float], audio: np.ndarray | None) -> np.ndarray:
        """The song's combined ``(k,)`` float32 vector."""
        return combine(self.parts(fields, tags, audio), self.weights)[0]

    def save(self, directory: Path, json_name: str, arrays_prefix: str) -> dict:
        """Write ``json_name`` and one ``.npy`` per table into ``directory``; returns the files."""
        files = {"model": json_name}
        doc = {"weights": self.weights, "mean": [float(x) for x in self.mean], "tables": {}}
        for part, (vocab, means) in self.tables.items():
            name = f"{arrays_prefix}{part}.npy"
            save_npy(directory / name, np.ascontiguousarray(means, np.float32))
            doc["tables"][part] = {"vocab": vocab, "means": name}
            files[part] = name
        write_json(directory / json_name, doc)
        return files

    @classmethod
    def load(cls, directory: Path, json_name: str) -> ColdModel:
        doc = read_json(directory / json_name)
        tables = {part: (list(t["vocab"]), load_npy(directory / t["means"])) for part, t in doc["tables"].items()}
        return cls(dict(doc["weights"]), np.asarray(doc["mean"], np.float64), tables)


class TooFewSongs(ValueError):
    """Too few validation songs to choose the weights on (the message says how many)."""


#: The combinations compared and their parts: the CNN alone, the catalog alone, both.
COMBINATIONS = {"audio_only": ("audio",), "metadata_only": METADATA_PARTS, "combined": PARTS}


def choose_weights(knowledge: CatalogKnowledge, played_ids: Sequence[str], played_factors: np.ndarray,
                   validation_ids: Sequence[str], validation_audio: np.ndarray | None) -> dict:
    """Each of ``COMBINATIONS``' weights (:func:`fit_weights`) on the validation songs
    ``validation_ids`` (played songs the CNN did not train on; ``validation_audio`` its
    predictions for them, ``None``: only ``metadata_only``), scored as if they were cold.
    :class:`TooFewSongs` below ``MIN_VALIDATION_SONGS`` of them."""
    played_ids = list(played_ids)
    where = {s: i for i, s in enumerate(played_ids)}
    keep = [i for i, s in enumerate(validation_ids) if s in where]
    ids = [validation_ids[i] for i in keep]
    if len(ids) < MIN_VALIDATION_SONGS:
        raise TooFewSongs(f"{len(ids)} validation songs, fewer than the {MIN_VALIDATION_SONGS} that choose the "
                          "cold-start weights; cold songs get the CNN's prediction alone")
    audio = None if validation_audio is None else np.asarray(validation_audio)[keep]
    parts = cold_parts(knowledge, played_ids, played_factors, ids, audio)
    target = np.asarray(played_factors)[[where[s] for s in ids]]
    return {name: fit_weights(parts, target, use) for name, use in COMBINATIONS.items()
            if audio is not None or "audio" not in use}
