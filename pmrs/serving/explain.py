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
    system, one pass over the stored neighbours, one batch of vectors), so that asking why costs
    a fraction of the answer."""
    profile = np.asarray(profile_rows, np.int64)
    rows = np.asarray([it.song_row for it in items], np.int64)
    fields = _fields(view, np.concatenate([profile, rows]))
    names = list(view.source_names)
    by_source: dict[str, dict[int, Reason]] = {}
    for bit, name in enumerate(names):
        mine = [i for i, it in enumerate(items) if it.sources >> bit & 1]
        if not mine or name not in lists:
            continue
        rank_of = {int(r): i + 1 for i, r in enumerate(np.asarray(lists[name]).tolist())}
        share = round(float(shares.get(name, 0.0)), 6)
        placed = rows[mine]
        texts = _source_evidence(view, name, placed, profile, counts, fields, vector)
        by_source[name] = {int(r): Reason(name, rank_of.get(int(r), 0), share, text, ev, shared)
                           for r, (text, ev, shared) in zip(placed.tolist(), texts)}
    return [tuple(by_source[n][int(it.song_row)] for bit, n in enumerate(names)
                  if n in by_source and it.sources >> bit & 1) for it in items]


def _source_evidence(view, name: str, placed: np.ndarray, profile: np.ndarray, counts, fields, vector
                     ) -> list[tuple[str, tuple[Evidence, ...], tuple[str, ...]]]:
    """``(text, evidence, shared)`` for each song of ``placed`` in source ``name``."""
    spec = view.sources[name]
    if spec.kind == SPARSE_NEIGHBOURS:
        sims = view.similarity(name, profile, placed) if profile.size else np.zeros((len(placed), 0), np.float32)
        out = []
        for s in sims:
            ev = tuple(_evidence(fields, int(profile[i]), float(s[i]))
                       for i in np.argsort(-s, kind="stable")[:EVIDENCE] if s[i] > 0)
            out.append((("often played with " + _names(ev)) if ev else "played with the listener's songs", ev, ()))
        return out
    if name == METADATA:
        mine = _Profile(fields, profile)
        out = []
        for r in placed.tolist():
            shared = tuple(mine.shared(fields.get(r) or {}))
            out.append((("shares " + "; ".join(shared)) if shared
                        else "close in tags and credits to the listener's songs", (), shared))
        return out
    if name == COLLABORATIVE and vector is not None and spec.space == WMF_SPACE:
        have, targets = view.song_vectors(name, placed)
        have = np.asarray(have, bool)
        out = [("people with the listener's taste play it", (), ())] * len(placed)
        if have.any() and profile.size:
            rows, terms = view.fold_in_terms(np.asarray(targets, np.float64), profile, counts)
            terms = np.atleast_2d(terms)
            for at, t in zip(np.flatnonzero(have).tolist(), terms):
                total = float(t.sum())
                ev = tuple(_evidence(fields, int(rows[i]), float(t[i] / total) if total else 0.0)
                           for i in np.argsort(-t, kind="stable")[:EVIDENCE] if t[i] > 0)
                if ev:
                    out[at] = ("listeners of " + _names(ev) + " play it too", ev, ())
        return out
    # any other vector source (and SimilarSongs' collaborative one): the nearest of the listener's
    # songs; in sound (the acoustic source), by the CNN's embeddings, which MMR compares too
    mine_v, mine_rows = _unit_vectors(view, name, profile)
    theirs, has = _unit_vectors(view, name, placed, keep_rows=False)
    fallback = "sounds like the listener's songs" if name == ACOUSTIC else f"close in {name}"
    if not len(mine_rows):
        return [(fallback, (), ())] * len(placed)
    cos = theirs @ mine_v.T                                       # (placed, profile songs with a vector)
    verb = ("sounds like " if name == ACOUSTIC else "played by the listeners of " if name == COLLABORATIVE
            else f"close in {name} to ")
    out = []
    for c, ok in zip(cos, has):
        if not ok:
            out.append((fallback, (), ()))
            continue
        ev = tuple(_evidence(fields, int(mine_rows[i]), float(c[i]))
                   for i in np.argsort(-c, kind="stable")[:1 if name == ACOUSTIC else EVIDENCE])
        out.append((verb + _names(ev), ev, ()))
    return out


def _unit_vectors(view, name: str, rows: np.ndarray, keep_rows: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors of ``rows`` in source ``name`` (the acoustic one: the CNN's embeddings).
    ``keep_rows``: ``(vectors of the rows that have one, those rows)``; otherwise ``(one vector
    per row, zeros where none, which rows have one)``."""
    if name == ACOUSTIC:
        v = np.asarray(view.embedding(rows), np.float64)
        have = np.linalg.norm(v, axis=1) > 0
    else:
        have, found = view.song_vectors(name, rows)
        have = np.asarray(have, bool)
        v = np.zeros((len(rows), np.shape(found)[1] if np.ndim(found) == 2 else 1))
        v[have] = found
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    return (v[have], rows[have]) if keep_rows else (v, have)


def _fields(view, rows: np.ndarray) -> dict[int, dict]:
    uniq = np.unique(rows)
    return dict(zip(uniq.tolist(), view.songs(uniq)))


def _evidence(fields, row: int, weight: float) -> Evidence:
    f = fields.get(row) or {}
    return Evidence(str(f.get("song_id", "")), str(f.get("title") or ""), str(f.get("artist") or ""), weight)


def _names(ev: Sequence[Evidence]) -> str:
    return ", ".join(f"{e.title or e.song_id}" + (f" ({e.artist})" if e.artist else "") for e in ev)


class _Profile:
    """The listener's songs' artists, genres and decades, counted once per request."""

    def __init__(self, fields, profile: np.ndarray):
        theirs = [fields.get(int(p)) or {} for p in profile.tolist()]
        self.n = len(theirs)
        self.counts = {key: Counter(str(t.get(key) or "").strip().casefold() for t in theirs)
                       for key in ("artist", "genre")}
        self.decades = Counter(int(t.get("year") or 0) // 10 * 10 for t in theirs)

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
