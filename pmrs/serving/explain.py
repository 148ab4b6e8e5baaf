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

from typing import Mapping, Sequence

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
    SimilarSongs, the collaborative source is explained like any vector source)."""
    profile = np.asarray(profile_rows, np.int64)
    fields = _fields(view, np.concatenate([profile, [it.song_row for it in items]]).astype(np.int64))
    rank_of = {name: {int(r): i + 1 for i, r in enumerate(np.asarray(rows).tolist())} for name, rows in lists.items()}
    names = list(view.source_names)
    out = []
    for it in items:
        reasons = []
        for bit, name in enumerate(names):
            if not it.sources >> bit & 1 or name not in rank_of:
                continue
            rank = rank_of[name].get(int(it.song_row), 0)
            share = round(float(shares.get(name, 0.0)), 6)
            reasons.append(_reason(view, name, it.song_row, rank, share, profile, counts, fields, vector))
        out.append(tuple(reasons))
    return out


def _reason(view, name: str, row: int, rank: int, share: float, profile: np.ndarray, counts, fields,
            vector) -> Reason:
    spec = view.sources[name]
    if spec.kind == SPARSE_NEIGHBOURS:
        sims = view.similarity(name, profile, int(row)) if profile.size else np.zeros(0, np.float32)
        order = [i for i in np.argsort(-sims, kind="stable")[:EVIDENCE] if sims[i] > 0]
        ev = tuple(_evidence(fields, int(profile[i]), float(sims[i])) for i in order)
        text = ("often played with " + _names(ev)) if ev else "played with the listener's songs"
        return Reason(name, rank, share, text, ev)
    if name == METADATA:
        shared = _shared(fields, int(row), profile)
        text = ("shares " + "; ".join(shared)) if shared else "close in tags and credits to the listener's songs"
        return Reason(name, rank, share, text, shared=tuple(shared))
    if name == COLLABORATIVE and vector is not None and spec.space == WMF_SPACE:
        target = view.song_vector(name, int(row))
        if target is not None and profile.size:
            rows, terms = view.fold_in_terms(target, profile, counts)
            total = float(terms.sum())
            order = np.argsort(-terms, kind="stable")[:EVIDENCE]
            ev = tuple(_evidence(fields, int(rows[i]), float(terms[i] / total) if total else 0.0)
                       for i in order if terms[i] > 0)
            if ev:
                return Reason(name, rank, share, "listeners of " + _names(ev) + " play it too", ev)
        return Reason(name, rank, share, "people with the listener's taste play it")
    # any other vector source (and SimilarSongs' collaborative one): the nearest of the listener's
    # songs; in sound (the acoustic source), by the CNN's embeddings, which MMR compares too
    both = np.concatenate([profile, [int(row)]]).astype(np.int64)
    if name == ACOUSTIC:
        vectors = np.asarray(view.embedding(both), np.float64)
        have = np.linalg.norm(vectors, axis=1) > 0
    else:
        have, found = view.song_vectors(name, both)
        have = np.asarray(have, bool)
        vectors = np.zeros((len(both), np.shape(found)[1] if np.ndim(found) == 2 else 1))
        vectors[have] = found
    if have.size and have[-1] and have[:-1].any():
        v = np.asarray(vectors, np.float64)
        mine, theirs = v[-1], v[:-1][have[:-1]]
        cos = theirs @ mine / np.maximum(np.linalg.norm(theirs, axis=1) * np.linalg.norm(mine), 1e-12)
        prof = profile[have[:-1]]
        order = np.argsort(-cos, kind="stable")[:1 if name == ACOUSTIC else EVIDENCE]
        ev = tuple(_evidence(fields, int(prof[i]), float(cos[i])) for i in order)
        verb = ("sounds like " if name == ACOUSTIC else "played by the listeners of " if name == COLLABORATIVE
                else f"close in {name} to ")
        return Reason(name, rank, share, verb + _names(ev), ev)
    return Reason(name, rank, share, "sounds like the listener's songs" if name == ACOUSTIC else f"close in {name}")


def _fields(view, rows: np.ndarray) -> dict[int, dict]:
    uniq = np.unique(rows)
    return dict(zip(uniq.tolist(), view.songs(uniq)))


def _evidence(fields, row: int, weight: float) -> Evidence:
    f = fields.get(row) or {}
    return Evidence(str(f.get("song_id", "")), str(f.get("title") or ""), str(f.get("artist") or ""), weight)


def _names(ev: Sequence[Evidence]) -> str:
    return ", ".join(f"{e.title or e.song_id}" + (f" ({e.artist})" if e.artist else "") for e in ev)


def _shared(fields, row: int, profile: np.ndarray) -> list[str]:
    """What the song at ``row`` shares with the profile's songs: artist, genre, decade (each with
    how many of them share it)."""
    me = fields.get(row) or {}
    theirs = [fields.get(int(p)) or {} for p in profile.tolist()]
    out = []
    for key, label in (("artist", "artist"), ("genre", "genre")):
        value = str(me.get(key) or "").strip()
        if value:
            n = sum(1 for t in theirs if str(t.get(key) or "").strip().casefold() == value.casefold())
            if n:
                out.append(f"{label}: {value} ({n} of {len(theirs)})")
    year = int(me.get("year") or 0)
    if year:
        decade = year // 10 * 10
        n = sum(1 for t in theirs if int(t.get("year") or 0) // 10 * 10 == decade)
        if n:
            out.append(f"decade: {decade}s ({n} of {len(theirs)})")
    return out
