"""A cold song's vector from its audio and what the catalog knows (``pmrs.acoustic.cold``)."""

import numpy as np
import pytest

from pmrs.acoustic.cold import (
    CatalogKnowledge,
    ColdModel,
    choose_weights,
    cold_parts,
    combine,
    fit_weights,
)


def _world(rng, artists=30, per_artist=8, k=6):
    """Songs whose factors are their artist's centre plus noise; audio a noisier guess."""
    centre = rng.normal(size=(artists, k))
    ids, fields, factors = [], {}, []
    for a in range(artists):
        for j in range(per_artist):
            s = f"S{a:03d}{j:02d}"
            ids.append(s)
            fields[s] = {"artist": f"Artist {a}", "release": f"R{j % 2}"}
            factors.append(centre[a] + 0.3 * rng.normal(size=k))
    factors = np.asarray(factors)
    audio = factors + 1.5 * rng.normal(size=factors.shape)
    return ids, fields, factors, audio


def test_parts_leave_the_song_out_and_missing_parts_count_as_the_mean():
    fields = {"a": {"artist": "X"}, "b": {"artist": " x "}, "c": {"artist": "Y"}, "d": {"artist": "Z"}}
    know = CatalogKnowledge.from_songs(fields, tags={"a": {"rock": 100}, "d": {"Rock": 50}},
                                       similars={"d": {"a": 1.0, "c": 3.0}})
    y = np.array([[1.0, 0.0], [3.0, 0.0], [0.0, 5.0]])
    parts = cold_parts(know, ["a", "b", "c"], y, ["a", "d"])
    assert parts.vectors["artist"][0] == pytest.approx([3.0, 0.0])       # "a": only "b" (itself left out)
    assert parts.present["tags"].tolist() == [False, True]                # "a" is the only rock song played
    assert parts.vectors["tags"][1] == pytest.approx([1.0, 0.0])
    assert parts.vectors["similar"][1] == pytest.approx([0.25, 3.75])     # (1 * a + 3 * c) / 4
    assert not parts.present["artist"][1]
    v = combine(parts, {"artist": 1.0})
    assert v[1] == pytest.approx(y.mean(0))                               # a missing part: the mean


def test_weights_chosen_on_validation_favour_the_artist_when_audio_is_noisy():
    rng = np.random.default_rng(0)
    ids, fields, factors, audio = _world(rng)
    know = CatalogKnowledge.from_songs(fields)
    val = ids[::4]
    chosen = choose_weights(know, ids, factors, val, audio[::4])
    w = chosen["combined"]["weights"]
    assert w["artist"] > w["audio"] >= 0
    assert chosen["combined"]["loss"] < chosen["audio_only"]["loss"] < chosen["audio_only"]["loss_mean_predictor"]
    assert chosen["combined"]["loss"] <= chosen["metadata_only"]["loss"]


def test_a_saved_model_gives_a_song_added_live_the_vector_of_the_catalog(tmp_path):
    rng = np.random.default_rng(1)
    ids, fields, factors, audio = _world(rng, artists=10, per_artist=4)
    know = CatalogKnowledge.from_songs(fields, tags={s: {"t" + s[-1]: 80} for s in ids})
    played, cold = ids[1:], ids[:1]
    weights = fit_weights(cold_parts(know, played, factors[1:], played, audio[1:]), factors[1:])["weights"]
    model = ColdModel.fit(know, played, factors[1:], weights)
    model.save(tmp_path, "cold.json", "cold_")
    back = ColdModel.load(tmp_path, "cold.json")
    want = combine(cold_parts(know, played, factors[1:], cold, audio[:1]), weights)[0]
    got = back.vector({"artist": "artist 0", "release": "r0"}, {"T0": 80}, audio[0])
    assert got == pytest.approx(want, abs=1e-5)
