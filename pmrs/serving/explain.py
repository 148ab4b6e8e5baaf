"""Why each song of an answer is there: one reason per source that placed it, with evidence a
person can check.

- ``collaborative``: the listener's songs that contribute most to the song's score. A WMF score
  is a sum over the listener's history (``FoldIn.contributions``: ``c_j * y_i' A^-1 y_j``, as
  implicit's ``explain`` computes it); each song's weight is its share of that sum.
- a ``neighbours`` source: the listener's songs (or the seed) most similar to it, with the stored
  similarity ``S[j, i]`` (the score is their sum).
- ``acoustic`` and every other vector source: the listener's song (or the seed) nearest to it in
  that source's space ("sounds like X" for the acoustic source), with the cosine.
- ``metadata``: what it shares with the listener's songs or the seed: the artist, the genre, the
  decade (with how many of the listener's songs share each).

Every reason also says the song's rank among that source's candidates for the request and the
source's share of the list, so a person can see why rank 4 sits above rank 5 although its raw
score is lower (scores of different sources are not on one scale; the blend interleaves ranks
under shares, ``pmrs.blend``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

from ..results import Evidence, Reason
from .contract import ACOUSTIC, COLLABORATIVE, METADATA, SPARSE_NEIGHBOURS, WMF_SPACE
from .recommend import Item

#: Songs of the listener named as evidence per reason.
EVIDENCE = 3


def explain(view, items: Sequence[Item], profile_rows: np.ndarray, counts: np.ndarray | None,
            lists: Mapping[str, np.ndarray], shares: Mapping[str, float],
            vector: np.ndarray | None = None) -> list[tuple[Reason, ...]]:
    """The reasons of each item (aligned with ``items``). ``profile_rows``: the listener's songs
    (played, or the seeds; for SimilarSongs the song itself) with their play ``counts`` (``None``:
    once each); ``lists``: each searched source's candidate rows, best first; ``shares``: each
    source's share of the list; ``vector``: the WMF-space query of a Recommend (the collaborative
    evidence then splits ``vector . y`` over the listener's songs; without it, as for
    SimilarSongs, the collaborative source is explained like any vector source).

    Each source's evidence is computed for all its songs of the answer at once (one fold-in
    system, one pass over the stored neighbours, one batch of vectors), and catalog fields are
    read only for the songs a reason names (and, when the metadata source placed a song, the
    listener's songs), so that asking why costs a fraction of the answer."""
    profile = np.asarray(profile_rows, np.int64)
    placed = [it.song_row for it in items]
    rows = np.asarray(placed, np.int64)
    found = []
    for bit, name in enumerate(view.source_names):
        if name in lists:
            mine = [i for i, it in enumerate(items) if it.sources >> bit & 1]
            if mine:
                found.append((name, mine, _source_evidence(view, name, rows[mine], profile, counts, vector)))
    named = {r for _, _, picks in found for p in picks if p is not None for r, _ in p[1]}
    metadata = any(name == METADATA for name, _, _ in found)
    if metadata:               # (what the placed songs share with the listener's songs)
        named.update(profile.tolist())
        named.update(placed)
    keys = list(named)
    fields = dict(zip(keys, view.songs(keys, copy=False))) if keys else {}
    songs = _Songs(fields)
    mine_meta = _Profile(fields, profile) if metadata else None
    out: list[list[Reason]] = [[] for _ in items]
    for name, at, picks in found:   # (in source order: each song's reasons follow its sources)
        ranks = _ranks(lists[name], rows[at])
        share = round(float(shares.get(name, 0.0)), 6)
        if name == METADATA:
            for i, rank in zip(at, ranks):
                shared = tuple(mine_meta.shared(fields.get(placed[i]) or {}))
                text = ("shares " + "; ".join(shared)) if shared else "close in tags and credits to the listener's songs"
                out[i].append(Reason(name, rank, share, text, (), shared))
            continue
        words = _sentence(view, name)
        for i, rank, pick in zip(at, ranks, picks):
            if pick is None:
                ev, kind = (), None
            else:
                kind, ev = pick[0], tuple([songs.evidence(r, w) for r, w in pick[1]])
            out[i].append(Reason(name, rank, share, words(kind, ev), ev, ()))
    return [tuple(r) for r in out]


class _Songs:
    """The catalog fields of the songs an answer's reasons name, each song's turned into
    evidence fields once however many reasons name it."""

    def __init__(self, fields: Mapping[int, dict]):
        self.fields = fields
        self.known: dict[int, tuple[str, str, str]] = {}

    def evidence(self, row: int, weight: float) -> Evidence:
        got = self.known.get(row)
        if got is None:
            f = self.fields.get(row) or {}
            got = self.known[row] = (str(f.get("song_id", "")), str(f.get("title") or ""), str(f.get("artist") or ""))
        return Evidence(got[0], got[1], got[2], weight)


def _sentence(view, name: str):
    """The sentence of source ``name``'s reason, from its evidence: ``words(kind, evidence)``
    (``kind``: what :func:`_source_evidence` found, ``None`` when nothing)."""
    if view.sources[name].kind == SPARSE_NEIGHBOURS:
        return lambda kind, ev: ("often played with " + _names(ev)) if ev else "played with the listener's songs"
    verb = ("sounds like " if name == ACOUSTIC else "played by the listeners of " if name == COLLABORATIVE
            else f"close in {name} to ")
    bare = "sounds like the listener's songs" if name == ACOUSTIC else f"close in {name}"

    def words(kind, ev):
        if kind == "terms":
            return ("listeners of " + _names(ev) + " play it too") if ev else "people with the listener's taste play it"
        if kind == "terms-predicted":
            return "close in taste to " + _names(ev) + " (as predicted from their sound: nobody has played them yet)"
        return verb + _names(ev) if ev else bare
    return words


def _ranks(candidates: np.ndarray, placed: np.ndarray) -> list[int]:
    """Each placed row's 1-based rank in ``candidates`` (0 where it is not there)."""
    cand = np.asarray(candidates).reshape(-1).tolist()
    out = []
    for r in placed.tolist():   # (a placed song sits near the top of its list: a short scan)
        try:
            out.append(cand.index(r) + 1)
        except ValueError:
            out.append(0)
    return out


def _top(weights: np.ndarray, n: int, positive: bool) -> list[list[tuple[int, float]]]:
    """Per row of ``weights`` ``(m, p)``, its ``n`` largest entries as ``(column, weight)``
    (only those > 0 when ``positive``), largest first; ties by column."""
    if not weights.shape[1]:
        return [[] for _ in range(len(weights))]
    order = np.argsort(-weights, axis=1, kind="stable")[:, :n]
    best = weights[np.arange(len(weights))[:, None], order].tolist()
    if not positive:
        return [list(zip(o, w)) for o, w in zip(order.tolist(), best)]
    return [[(j, x) for j, x in zip(o, w) if x > 0] for o, w in zip(order.tolist(), best)]


def _source_evidence(view, name: str, placed: np.ndarray, profile: np.ndarray, counts, vector) -> list:
    """The evidence of each song of ``placed`` in source ``name``, as rows and weights
    (:func:`_words` turns them into sentences): per song ``(kind, [(profile row, weight), ...])``,
    or ``None`` when none of the listener's songs supports it in that source."""
    spec = view.sources[name]
    if spec.kind == SPARSE_NEIGHBOURS:
        if not profile.size:
            return [None] * len(placed)
        mine = profile.tolist()
        return [("neighbours", [(mine[j], s) for j, s in top]) if top else None
                for top in _top(view.similarity(name, profile, placed), EVIDENCE, positive=True)]
    if name == METADATA:
        return [("metadata", [])] * len(placed)
    if name == COLLABORATIVE and vector is not None and spec.space == WMF_SPACE:
        out: list = [("terms", [])] * len(placed)
        have, targets = view.song_vectors(name, placed)
        if len(targets) and profile.size:
            rows, terms = view.fold_in_terms(np.asarray(targets, np.float64), profile, counts)
            terms = np.atleast_2d(terms)
            rows = rows.tolist()
            for at, total, top in zip(np.flatnonzero(have).tolist(), terms.sum(axis=1).tolist(),
                                      _top(terms, EVIDENCE, positive=True)):
                if top:
                    out[at] = ("terms", [(rows[j], t / total if total else 0.0) for j, t in top])
            named = sorted({r for p in out for r, _ in p[1]})
            if named:   # songs nobody played enter the fold-in by their predicted vectors
                played = view.covers(name, named).tolist()
                unplayed = {r for r, ok in zip(named, played) if not ok}
                if unplayed:
                    out = [("terms-predicted", p[1]) if p[1] and all(r in unplayed for r, _ in p[1]) else p
                           for p in out]
        return out
    # any other vector source (and SimilarSongs' collaborative one): the nearest of the listener's
    # songs; in sound (the acoustic source), by the CNN's embeddings, which MMR compares too
    mine_v, mine_rows = _unit_vectors(view, name, profile)
    if not len(mine_rows):
        return [None] * len(placed)
    theirs, has = _unit_vectors(view, name, placed, keep_rows=False)
    mine_rows = mine_rows.tolist()
    tops = _top(theirs @ mine_v.T, 1 if name == ACOUSTIC else EVIDENCE, positive=False)
    return [("nearest", [(mine_rows[j], c) for j, c in top]) if ok else None
            for ok, top in zip(has.tolist(), tops)]


def _unit_vectors(view, name: str, rows: np.ndarray, keep_rows: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors of ``rows`` in source ``name`` (the acoustic one: the CNN's embeddings).
    ``keep_rows``: ``(vectors of the rows that have one, those rows)``; otherwise ``(one vector
    per row, zeros where none, which rows have one)``."""
    if name == ACOUSTIC:   # (unit vectors already, zeros where a song has none)
        v = np.asarray(view.embedding(rows), np.float64)
        have = v.any(axis=1)
    else:
        have, found = view.song_vectors(name, rows)
        have = np.asarray(have, bool)
        v = np.zeros((len(rows), np.shape(found)[1] if np.ndim(found) == 2 else 1))
        v[have] = found
        v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    return (v[have], rows[have]) if keep_rows else (v, have)


def _names(ev: Sequence[Evidence]) -> str:
    return ", ".join(f"{e.title or e.song_id}" + (f" ({e.artist})" if e.artist else "") for e in ev)


class _Profile:
    """The listener's songs' artists, genres and decades, counted once per request."""

    def __init__(self, fields, profile: np.ndarray):
        theirs = [fields.get(p) or {} for p in profile.tolist()]
        self.n = len(theirs)
        self.counts = {key: Counter([str(t.get(key) or "").strip().casefold() for t in theirs])
                       for key in ("artist", "genre")}
        self.decades = Counter([int(t.get("year") or 0) // 10 * 10 for t in theirs])

    def shared(self, me: dict) -> list[str]:
        """What a song (its catalog fields ``me``) shares with the listener's songs: artist,
        genre, decade, each with how many of them share it."""
        out = []
        for key in ("artist", "genre"):
            value = str(me.get(key) or "").strip()
            n = self.counts[key][value.casefold()] if value else 0
            if n:
                out.append(f"{key}: {value} ({n} of {self.n})")
        year = int(me.get("year") or 0)
        n = self.decades[year // 10 * 10] if year else 0
        if n:
            out.append(f"decade: {year // 10 * 10}s ({n} of {self.n})")
        return out
