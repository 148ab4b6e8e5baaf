"""pmrs_clients.cli (pmrs-client) against a fake server on a real port."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import running_fake
from fakeserver import FakeRecommender

from pmrs.v1 import recommender_pb2 as pb
from pmrs_clients import cli


@pytest.fixture
def fake():
    with running_fake(FakeRecommender()) as servicer:
        yield servicer
        servicer.release.set()


# -- command line --------------------------------------------------------------------------

def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_recommend_table(fake, capsys):
    code, out, err = run_cli(capsys, "--target", fake.target, "recommend", "u1", "-k", "3",
                             "--acoustic-share", "0.4", "--genre", "rock", "jazz")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].startswith("bundle v-test")
    header = lines[1].split()
    assert header[:7] == ["rank", "title", "artist", "genre", "year", "score", "sources"]
    assert lines[2].split() == ["1", "First", "Song", "Alpha", "rock", "1999", "2.500",
                                "collaborative", "SOAAA"]
    assert lines[3].split() == ["2", "Second", "Song", "Beta", "Band", "jazz", "-", "1.250",
                                "collaborative+acoustic", "SOBBB"]
    assert "SOCCC" in lines[4] and "acoustic" in lines[4]
    # aligned: every row's song id starts in the same column as the header's
    col = lines[1].index("song id")
    assert all(line[col:col + 2] == "SO" for line in lines[2:5])
    req = fake.requests["Recommend"]   # (--acoustic-share is --share acoustic=F)
    assert dict(req.shares) == {"acoustic": pytest.approx(0.4)} and list(req.filters.genres) == ["rock", "jazz"]


def test_cli_recommend_seeds_and_json(fake, capsys):
    code, out, _ = run_cli(capsys, "--target", fake.target, "--json", "recommend", "--seed",
                           "SOAAA", "SOBBB", "--include-played")
    assert code == 0
    obj = json.loads(out)
    assert obj["folded_in"] is True and obj["bundle_version"] == "v-test"
    assert obj["songs"][0] == {"song_id": "SOAAA", "title": "First Song", "artist": "Alpha",
                               "genre": "rock", "year": 1999, "score": 2.5, "sources": ["collaborative"],
                               "reasons": []}
    assert list(fake.requests["Recommend"].seed_song_ids) == ["SOAAA", "SOBBB"]


def test_cli_similar_song_info(fake, capsys):
    code, out, _ = run_cli(capsys, "similar", "SOAAA", "--mode", "acoustic", "-k", "2",
                           "--target", fake.target)  # flags after the command work too
    assert code == 0 and "SOBBB" in out and "Cold One" in out
    assert fake.requests["SimilarSongs"].mode == pb.SIMILARITY_MODE_ACOUSTIC
    code, out, _ = run_cli(capsys, "--target", fake.target, "song", "SOAAA")
    assert code == 0 and "First Song" in out and "rock 0.75" in out
    assert "tags          indie rock (100), 90s (42.5)" in out
    assert out.splitlines()[-2:] == ["warning: the genre head learned from too little: 2 genres",
                                     "warning: the acoustic model's factor prediction learned from too little: a test"]
    code, out, _ = run_cli(capsys, "--target", fake.target, "info")
    assert code == 0 and "v-test" in out and "IVF64,Flat" in out and "nprobe=8" in out
    assert "recommend lists  precomputed for k=10, shares collaborative=0.8 acoustic=0.2, diversity=0" in out
    acoustic_row = next(line for line in out.splitlines() if line.startswith("acoustic"))
    assert acoustic_row.split()[-2:] == ["0.20", "yes"]   # its default share, it holds cold songs
    code, out, _ = run_cli(capsys, "--target", fake.target, "info", "--json")
    assert code == 0 and json.loads(out)["sources"][0]["name"] == "collaborative"
    code, out, _ = run_cli(capsys, "--target", fake.target, "--json", "play", "u1", "SOAAA=2", "SOBBB")
    assert code == 0 and json.loads(out) == {"seq": 7, "duplicate": False}
    assert [(p.song_id, p.count) for p in fake.requests["RecordPlays"].plays] == [("SOAAA", 2), ("SOBBB", 1)]


def test_cli_errors(fake, capsys):
    code, out, err = run_cli(capsys, "--target", fake.target, "recommend", "nobody")
    assert code == 1 and out == ""
    assert err == "pmrs-client recommend: NOT_FOUND: unknown user 'nobody'\n"
    code, _, err = run_cli(capsys, "--target", fake.target, "song", "ERR_INVALID_ARGUMENT")
    assert code == 1 and err.startswith("pmrs-client song: INVALID_ARGUMENT: ")


@pytest.mark.parametrize("argv", [[], ["recommend", "u1", "--share", "acoustic"], ["recommend", "u1", "--share", "=0.2"],
                                  ["frobnicate"], ["recommend", "u1", "-k", "many"], ["--retries", "9", "info"],
                                  ["recommend", "u1", "--share", "acoustic=0.2", "--acoustic-share", "0.3"]])
def test_cli_usage_errors_exit_2(capsys, argv):
    assert cli.main(argv) == 2


def test_installed_entry_point(fake):
    exe = Path(sys.executable).parent / "pmrs-client"
    if not exe.exists():
        pytest.skip("pmrs-client not installed in this environment")
    done = subprocess.run([str(exe), "--target", fake.target, "song", "ERR_NOT_FOUND"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert done.stderr.strip() == "pmrs-client song: NOT_FOUND: fake NOT_FOUND for ERR_NOT_FOUND"
