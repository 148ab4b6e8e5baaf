"""Serving logic (pmrs.serving.recommend) against brute-force numpy, on an in-memory stand-in for
``pmrs.serving.bundle.Bundle`` with exact search (the server tests run it on a real bundle)."""

import numpy as np
import pytest

from pmrs.serving.bundle import SourceSpec
from pmrs.serving.contract import Defaults, quotas
from pmrs.serving.recommend import (Filters, InvalidArgument, Item, NotFound, recommend_for_vector, check_k,
                                    similar_songs, user_query)

COLLAB, ACOUSTIC, BOTH = 1, 2, 3   # source masks: bit 0 collaborative, bit 1 acoustic


def acoustic_quota(k, share):
    return quotas(["collaborative", "acoustic"], {"acoustic": share}, k)["acoustic"]

GENRES = ["rock", "jazz", "Pop", "folk"]


class FakeBundle:
    """The parts of the Bundle API the serving logic uses, over random vectors, exact search."""

    def __init__(self, seed=0, n_songs=300, k=8, collab=None, acoustic=None):
        rng = np.random.default_rng(seed)
        self.version = f"fake-{seed}"
        self.song_ids = np.array([f"SO{i:016d}".encode() for i in range(n_songs)])
        self.collab_rows = np.arange(0, 240) if collab is None else np.asarray(collab)
        self.acoustic_rows = np.arange(30, 300) if acoustic is None else np.asarray(acoustic)
        self.collab_vectors = rng.normal(size=(len(self.collab_rows), k)).astype(np.float32)
        self.acoustic_vectors = rng.normal(size=(len(self.acoustic_rows), k)).astype(np.float32)
        both = np.isin(self.acoustic_rows, self.collab_rows)   # predictions near the true factors
        self.acoustic_vectors[both] = (self.collab_vectors[np.searchsorted(self.collab_rows, self.acoustic_rows[both])]
                                       + 0.5 * self.acoustic_vectors[both])
        # embeddings close to the predicted factors' directions, as a CNN's are: the most relevant
        # songs for a query then resemble each other, and diversity has something to undo
        emb = self.acoustic_vectors + 0.3 * rng.normal(size=self.acoustic_vectors.shape).astype(np.float32)
        self.embeddings = emb / np.linalg.norm(emb, axis=1, keepdims=True)
        self.catalog = [{"title": f"t{i}", "artist": f"Artist {i % 20}", "genre": GENRES[i % 4],
                         "year": 0 if i % 10 == 0 else 1990 + i % 21, "release": ""} for i in range(n_songs)]
        self.users = rng.normal(size=(5, k)).astype(np.float32)
        self.played_rows = [np.sort(rng.choice(240, 15, replace=False)) for _ in range(5)]
        self.searches = []
        self.kinds = []   # what each search said its queries are (contract.USER_QUERIES, SONG_QUERIES)
        self.sources = {"collaborative": SourceSpec("collaborative", 1, "wmf", False, {}),
                        "acoustic": SourceSpec("acoustic", 2, "wmf", True, {})}
        self.source_names = list(self.sources)
        self.stand_in_sources = ["acoustic"]
        self.defaults = Defaults()

    def source_size(self, name):
        return len(self._table(name)[0])

    def has_source(self, name):
        return name in self.sources

    def song_vector(self, name, row):
        return self._vec(name, row)

    def song_vectors(self, name, rows):
        vs = [self._vec(name, r) for r in rows]
        have = np.array([v is not None for v in vs], bool)
        return have, np.array([v for v in vs if v is not None], np.float32).reshape(-1, self.users.shape[1])

    def _table(self, name):
        return ((self.collab_rows, self.collab_vectors) if name == "collaborative"
                else (self.acoustic_rows, self.acoustic_vectors))

    def search(self, name, queries, top, kind="users"):
        self.searches.append((name, top))
        self.kinds.append(kind)
        rows, vecs = self._table(name)
        scores = queries @ vecs.T
        order = np.argsort(-scores, axis=1, kind="stable")[:, :top]
        out_s = np.full((len(queries), top), -np.inf, np.float32)
        out_r = np.full((len(queries), top), -1, np.int64)
        n = order.shape[1]
        out_s[:, :n] = np.take_along_axis(scores, order, axis=1)
        out_r[:, :n] = rows[order]
        return out_s, out_r

    def _vec(self, name, row):
        rows, vecs = self._table(name)
        i = np.searchsorted(rows, row)
        return vecs[i] if i < len(rows) and rows[i] == row else None

    def collab_vector(self, row):
        return self._vec("collaborative", row)

    def acoustic_vector(self, row):
        return self._vec("acoustic", row)

    def embedding(self, rows):
        out = np.zeros((len(rows), self.embeddings.shape[1]), np.float32)
        for j, r in enumerate(rows):
            i = np.searchsorted(self.acoustic_rows, r)
            if i < len(self.acoustic_rows) and self.acoustic_rows[i] == r:
                out[j] = self.embeddings[i]
        return out

    def songs(self, rows):
        return [self.catalog[int(r)] for r in rows]

    def user_row(self, user_id):
        return int(user_id[1:]) if user_id.startswith("u") and int(user_id[1:]) < 5 else None

    def user_vector(self, row):
        return self.users[row]

    def played(self, row):
        return self.played_rows[row]

    def song_rows(self, ids):
        lookup = {s.decode(): i for i, s in enumerate(self.song_ids)}
        return np.array([lookup.get(s, -1) for s in ids], np.int64)

    def fold_in(self, rows):
        return np.mean([v if (v := self.collab_vector(r)) is not None else self.acoustic_vector(r)
                        for r in rows], axis=0)


def brute(bundle, name, query, exclude=(), keep=None):
    """(rows, scores) of one index, best first, after exclusions and a filter mask over rows."""
    rows, vecs = bundle._table(name)
    scores = vecs @ query
    ok = ~np.isin(rows, list(exclude))
    if keep is not None:
        ok &= keep[rows]
    rows, scores = rows[ok], scores[ok]
    order = np.argsort(-scores, kind="stable")
    return rows[order], scores[order]


def rows_of(items):
    return [it.song_row for it in items]


@pytest.fixture
def bundle():
    return FakeBundle()


@pytest.fixture
def query(bundle):
    return bundle.users[0]


def test_pure_collaborative_is_the_exact_top_k(bundle, query):
    items = recommend_for_vector(bundle, query, 10, shares={"acoustic": 0.0}, diversity=0.0)
    rows, scores = brute(bundle, "collaborative", query)
    assert rows_of(items) == list(rows[:10])
    assert all(isinstance(it, Item) and it.sources in (COLLAB, BOTH) for it in items)
    for it, s in zip(items, scores):        # a song both indexes returned scores the higher of two
        assert it.score == pytest.approx(float(s), abs=1e-5) if it.sources == COLLAB \
            else it.score >= s - 1e-5


def test_pure_acoustic_is_the_exact_top_k_cold_songs_included(bundle, query):
    items = recommend_for_vector(bundle, query, 25, shares={"acoustic": 1.0}, diversity=0.0)
    rows, _ = brute(bundle, "acoustic", query)
    assert rows_of(items) == list(rows[:25])
    assert all(it.sources in (ACOUSTIC, BOTH) for it in items)


def test_acoustic_quota_rounds_half_up():
    assert [acoustic_quota(10, s) for s in (0, 0.2, 0.25, 0.5, 1)] == [0, 2, 3, 5, 10]
    assert acoustic_quota(5, 0.5) == 3 and acoustic_quota(1, 0.2) == 0


def test_blend_takes_each_share_from_its_ranking_on_disjoint_indexes(query):
    b = FakeBundle(seed=1, collab=np.arange(0, 150), acoustic=np.arange(150, 300))
    items = recommend_for_vector(b, query, 10, shares={"acoustic": 0.3}, diversity=0.0)
    co, _ = brute(b, "collaborative", query)
    ac, _ = brute(b, "acoustic", query)
    assert set(rows_of(items)) == set(co[:7]) | set(ac[:3])
    assert [it.sources for it in items].count(ACOUSTIC) == 3
    for source in (COLLAB, ACOUSTIC):  # each ranking keeps its own order
        scores = [it.score for it in items if it.sources == source]
        assert scores == sorted(scores, reverse=True)


def test_blend_with_overlap_counts_a_song_once_and_marks_both(bundle, query):
    k = 20
    items = recommend_for_vector(bundle, query, k, shares={"acoustic": 0.4}, diversity=0.0)
    rows = rows_of(items)
    assert len(rows) == len(set(rows)) == k
    co, co_s = brute(bundle, "collaborative", query)
    ac, ac_s = brute(bundle, "acoustic", query)
    # each ranking's head is in (picked from it, or already picked from the other)
    assert set(co[:k - 8]) | set(ac[:8]) <= set(rows)
    assert set(rows) <= set(co[:k]) | set(ac[:k])
    c = max(4 * k, 100)
    co_top = dict(zip(co[:c], co_s[:c]))
    ac_top = dict(zip(ac[:c], ac_s[:c]))
    both = [it for it in items if it.sources == BOTH]
    assert both, "the fixture should have songs in both candidate lists"
    for it in items:
        assert (it.sources == BOTH) == (it.song_row in co_top and it.song_row in ac_top)
        expected = max(co_top.get(it.song_row, -np.inf), ac_top.get(it.song_row, -np.inf))
        assert it.score == pytest.approx(float(expected), abs=1e-5)


def test_excluded_songs_never_come_back_and_the_search_widens(bundle, query):
    co, _ = brute(bundle, "collaborative", query)
    exclude = co[:200]                                      # more than the first 100 candidates
    items = recommend_for_vector(bundle, query, 10, shares={"acoustic": 0.0}, diversity=0.0, exclude_rows=exclude)
    expected, _ = brute(bundle, "collaborative", query, exclude)
    assert rows_of(items) == list(expected[:10])
    assert max(top for name, top in bundle.searches if name == "collaborative") > 100
    calls = []
    recommend_for_vector(bundle, query, 10, shares={"acoustic": 0.0}, exclude_rows=exclude,
                         before_widening=lambda: calls.append(1))
    assert calls                                            # the server checks its deadline there

    def out_of_time():
        raise TimeoutError
    with pytest.raises(TimeoutError):
        recommend_for_vector(bundle, query, 10, exclude_rows=exclude, before_widening=out_of_time)
    recommend_for_vector(bundle, query, 10, before_widening=out_of_time)  # no widening: not called


def test_filters_match_brute_force(bundle, query):
    f = Filters(genres=("ROCK", "pop"), min_year=1995, max_year=2005, exclude_artists=("artist 4",))
    keep = np.array(f.keep(bundle.catalog))
    cat = bundle.catalog
    for i, s in enumerate(cat):
        ok = (s["genre"].lower() in ("rock", "pop") and s["year"] and 1995 <= s["year"] <= 2005
              and s["artist"] != "Artist 4")
        assert keep[i] == ok
    items = recommend_for_vector(bundle, query, 10, shares={"acoustic": 0.0}, diversity=0.0, filters=f)
    expected, _ = brute(bundle, "collaborative", query, keep=keep)
    assert rows_of(items) == list(expected[:10])


def test_filters_leaving_fewer_than_k_return_every_match(bundle, query):
    f = Filters(genres=("jazz",), min_year=2000, max_year=2000)   # row % 4 == 1 and year 2000
    keep = np.array(f.keep(bundle.catalog))
    items = recommend_for_vector(bundle, query, 50, shares={"acoustic": 0.5}, diversity=0.3, filters=f)
    assert 0 < len(items) < 50
    assert set(rows_of(items)) == set(np.flatnonzero(keep))  # whole indexes searched


def test_unknown_year_is_dropped_only_when_a_bound_is_set(bundle):
    assert Filters().keep([{"year": 0}, {"year": None}, {}]).all()
    assert not Filters(min_year=1).keep([{"year": 0}, {"year": None}, {}]).any()


def _intra_list_similarity(bundle, items):
    e = bundle.embedding(rows_of(items))
    sim = e @ e.T
    n = len(items)
    return (sim.sum() - np.trace(sim)) / (n * (n - 1))


def reference_mmr(bundle, query, k, diversity, c=100):
    """Textbook MMR over the collaborative top-c list, one candidate at a time."""
    rows, scores = brute(bundle, "collaborative", query)
    rows, scores = rows[:c], scores[:c]
    rel = (scores - scores.min()) / (scores.max() - scores.min())
    emb = bundle.embedding(rows)
    picked = []
    for _ in range(k):
        best, best_j = -np.inf, None
        for j in range(len(rows)):
            if j in picked:
                continue
            penalty = max((float(emb[j] @ emb[p]) for p in picked), default=0.0)
            obj = (1 - diversity) * rel[j] - diversity * penalty
            if obj > best:
                best, best_j = obj, j
        picked.append(best_j)
    return [int(rows[j]) for j in picked]


@pytest.mark.parametrize("share", [0.0, 0.3, 0.5, 1.0])
def test_diversity_zero_scan_equals_the_greedy_loop(bundle, share):
    # the diversity-0 fast path (one merged pass) against the general greedy MMR loop with a
    # zero weight, including lists that cannot meet their quota (a filter leaves a few songs)
    from pmrs import blend
    from pmrs.serving import recommend as R

    rng = np.random.default_rng(3)
    for k, filters in ((10, Filters()), (40, Filters()), (30, Filters(genres=("jazz",), min_year=2000))):
        q = rng.normal(size=bundle.users.shape[1]).astype(np.float32)
        exclude = np.unique(rng.choice(300, 20, replace=False))
        cands = [R._Candidates(bundle, name, q, exclude, filters, {}, max(4 * k, 100))
                 for name in (R.COLLABORATIVE, R.ACOUSTIC)]
        cands = [c for c in cands if c.rows.size]
        quota = {R.ACOUSTIC: acoustic_quota(k, share)}
        quota[R.COLLABORATIVE] = k - quota[R.ACOUSTIC]
        left = [quota[c.name] for c in cands]
        rows = np.concatenate([c.rows for c in cands])
        src = np.concatenate([np.full(c.rows.size, i) for i, c in enumerate(cands)])
        rel = np.concatenate([blend.min_max(c.scores) for c in cands])
        greedy = blend._mmr_picks(bundle.embedding, rows, src, rel, list(left), k, 0.0)
        assert blend._quota_picks([(c.rows, c.scores) for c in cands], list(left), k) == greedy
        assert len(greedy) == min(k, np.unique(rows).size)


@pytest.mark.parametrize("diversity", [0.3, 0.7])
def test_mmr_matches_the_textbook_definition(bundle, query, diversity):
    items = recommend_for_vector(bundle, query, 12, shares={"acoustic": 0.0}, diversity=diversity)
    assert rows_of(items) == reference_mmr(bundle, query, 12, diversity)


def test_diversity_lowers_intra_list_similarity(bundle, query):
    base = recommend_for_vector(bundle, query, 15, shares={"acoustic": 0.2}, diversity=0.0)
    div = recommend_for_vector(bundle, query, 15, shares={"acoustic": 0.2}, diversity=0.6)
    assert len(div) == 15
    assert _intra_list_similarity(bundle, div) < _intra_list_similarity(bundle, base) - 0.05
    full = recommend_for_vector(bundle, query, 15, shares={"acoustic": 0.2}, diversity=1.0)
    assert full[0].song_row == base[0].song_row or full[0].score >= base[-1].score


def test_songs_without_audio_have_similarity_zero(query):
    b = FakeBundle(seed=2, collab=np.arange(0, 300), acoustic=np.arange(290, 300))
    items = recommend_for_vector(b, query, 10, shares={"acoustic": 0.0}, diversity=0.9)
    assert len(set(rows_of(items))) == 10                  # every embedding zero: pure relevance
    expected, _ = brute(b, "collaborative", query)
    assert rows_of(items) == reference_mmr(b, query, 10, 0.9)
    assert set(rows_of(items)) <= set(expected[:100])


def test_similar_songs_modes(bundle, query):
    warm_audio, cold = 100, 260                            # rows: both vectors / audio only
    for mode in ("collaborative", "acoustic", "mixed"):
        bundle.kinds.clear()
        items = similar_songs(bundle, warm_audio, 10, mode=mode)
        assert len(items) == 10 and warm_audio not in rows_of(items)
        assert bundle.kinds and set(bundle.kinds) == {"songs"}   # (a song's own vectors: song queries)
    bundle.kinds.clear()
    recommend_for_vector(bundle, query, 10)
    assert bundle.kinds and set(bundle.kinds) == {"users"}
    co, _ = brute(bundle, "collaborative", bundle.collab_vector(warm_audio), [warm_audio])
    assert rows_of(similar_songs(bundle, warm_audio, 10, "collaborative")) == list(co[:10])
    ac, _ = brute(bundle, "acoustic", bundle.acoustic_vector(cold), [cold])
    assert rows_of(similar_songs(bundle, cold, 10, "acoustic")) == list(ac[:10])
    assert rows_of(similar_songs(bundle, cold, 10, "mixed", shares={"acoustic": 0.0})) == list(ac[:10])
    with pytest.raises(NotFound, match="no plays"):
        similar_songs(bundle, cold, 10, "collaborative")
    with pytest.raises(NotFound, match="no audio"):
        similar_songs(bundle, 5, 10, "acoustic")
    with pytest.raises(InvalidArgument):
        similar_songs(bundle, 5, 10, "sideways")


def test_validation():
    assert check_k(1) == 1 and check_k(1000) == 1000
    for bad in (-1, 0, 1001):
        with pytest.raises(InvalidArgument, match="k must"):
            check_k(bad)
    b = FakeBundle()
    for kwargs in ({"shares": {"acoustic": 1.5}}, {"shares": {"acoustic": float("nan")}}, {"shares": {"metadata": 0.1}}, {"diversity": -0.1}):
        with pytest.raises(InvalidArgument):
            recommend_for_vector(b, b.users[0], 10, **kwargs)
    with pytest.raises(InvalidArgument, match="after max_year"):
        Filters(min_year=2001, max_year=2000)
    with pytest.raises(InvalidArgument):
        Filters(min_year=-1)


def test_user_query(bundle):
    q = user_query(bundle, "u1", ["SO0000000000000003"])
    assert not q.folded_in and np.array_equal(q.vector, bundle.users[1])
    assert set(q.exclude_rows) == set(bundle.played_rows[1])
    assert user_query(bundle, "u1", include_played=True).exclude_rows.size == 0
    q = user_query(bundle, "stranger", ["SO0000000000000003", "SO0000000000000007", "SOUNKNOWN"])
    assert q.folded_in and set(q.exclude_rows) == {3, 7}
    assert np.allclose(q.vector, (bundle.collab_vector(3) + bundle.collab_vector(7)) / 2)
    items = recommend_for_vector(bundle, q.vector, 10, exclude_rows=q.exclude_rows)
    assert not {3, 7} & set(rows_of(items))
    with pytest.raises(NotFound, match="unknown user"):
        user_query(bundle, "stranger")
    with pytest.raises(NotFound, match="seed"):
        user_query(bundle, "", ["SOUNKNOWN"])
    q = user_query(bundle, "", ["SO0000000000000290"])     # audio only: its predicted factors
    assert q.folded_in and np.allclose(q.vector, bundle.acoustic_vector(290))
    with pytest.raises(InvalidArgument, match="neither"):
        user_query(bundle, "")
    with pytest.raises(InvalidArgument, match="at most 500"):
        user_query(bundle, "", ["SO0000000000000003"] * 501)
