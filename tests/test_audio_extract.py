"""Tests for pmrs.audio.extract and pmrs.audio.store: a folder of good and bad clips -> features.lmdb."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import pmrs.audio.extract as extract_mod
from pmrs.audio.extract import ExtractConfig, extract
from pmrs.audio.features import ClipFeatures, FeatureConfig, clip_features
from pmrs.audio.store import FeatureStore, pack_record, unpack_record
from pmrs.catalog import write_catalog
from pmrs.cli import main
from pmrs.synth.audio import make_styles, render_clip

SR = 22050
STYLES = make_styles(3, seed=0)


def clip(i: int, seconds: float = 4.0, sr: int = SR) -> np.ndarray:
    return render_clip(STYLES[i % 3], song_seed=i, seconds=seconds, sample_rate_hz=sr)


def song(i: int) -> str:
    return f"SOTEST{i:012d}"


def track(i: int) -> str:
    return f"TRTEST{i:012d}"


@pytest.fixture
def messy(tmp_path) -> Path:
    """Good clips in three formats (one in a subfolder, one with an upper-case extension),
    a duplicate, and one of each kind of bad file."""
    audio = tmp_path / "data" / "audio"
    (audio / "sub").mkdir(parents=True)
    sf.write(audio / f"{song(0)}.wav", clip(0), SR, subtype="PCM_16")
    sf.write(audio / f"{song(1)}.flac", np.stack([clip(1, sr=44100)] * 2, axis=1), 44100)
    sf.write(audio / "sub" / f"{song(2)}.ogg", clip(2), SR, format="OGG", subtype="VORBIS")
    sf.write(audio / f"{song(3)}.WAV", clip(3), SR)
    sf.write(audio / f"{song(3)}.flac", clip(3), SR)  # same song again, sorts after ".WAV"
    # A FLAC cut in half: 8 s of which about 4 s decode (extracted from what is there).
    sf.write(audio / "full.flac", clip(4, seconds=8.0), SR)
    raw = (audio / "full.flac").read_bytes()
    (audio / "full.flac").unlink()
    (audio / f"{song(4)}.flac").write_bytes(raw[:len(raw) // 2])
    # A WAV cut to 1 s worth of bytes: what is left is too short.
    sf.write(audio / "cut.wav", clip(5), SR, subtype="PCM_16")
    raw = (audio / "cut.wav").read_bytes()
    (audio / "cut.wav").unlink()
    (audio / f"{song(5)}.wav").write_bytes(raw[:44 + 2 * SR])
    (audio / f"{song(6)}.wav").write_bytes(np.random.default_rng(0).bytes(5000))  # garbage
    (audio / f"{song(7)}.mp3").write_bytes(b"")  # empty
    sf.write(audio / f"{song(8)}.wav", np.zeros(4 * SR, np.float32), SR)  # silent
    sf.write(audio / f"{song(9)}.opus", clip(9, seconds=2.0, sr=48000), 48000, format="OGG",
             subtype="OPUS")  # too short
    (audio / "notes.txt").write_text("not audio")
    return tmp_path


EXPECTED_SKIPS = {f"{song(3)}.flac": "duplicate", f"{song(5)}.wav": "too-short",
                  f"{song(6)}.wav": "unreadable", f"{song(7)}.mp3": "empty",
                  f"{song(8)}.wav": "silent", f"{song(9)}.opus": "too-short"}


def test_extract_skips_bad_files_and_keeps_good_ones(messy):
    work = messy / "work"
    report = extract(messy / "data", work, ExtractConfig(workers=2), FeatureConfig(),
                     show_progress=False)
    assert report == json.loads((work / "features_report.json").read_text())
    c = report["counts"]
    assert c["found"] == 11 and c["extracted"] == 5 and c["already_stored"] == 0
    assert {s["file"]: s["reason"] for s in report["skipped"]} == EXPECTED_SKIPS
    assert c["skipped_by_reason"] == {"duplicate": 1, "empty": 1, "silent": 1, "too-short": 2,
                                      "unreadable": 1}
    assert [p["song_id"] for p in report["partial"]] == [song(4)]
    assert 1.0 < report["partial"][0]["seconds"] < 6.0
    t = report["timing"]
    assert t["audio_seconds"] > 16.0 and t["clips_per_second"] > 0 and t["workers"] == 2
    assert set(t["per_clip_seconds"]) == {"decode", "resample", "features", "write"}
    # every clip is shorter than max_seconds: nothing to seek past
    assert t["seek"] == {"none": 5} and t["decoded_to_skip_by_format"] == {}
    assert report["feature_config"] == dataclasses.asdict(FeatureConfig())

    with FeatureStore(work / "features.lmdb", readonly=True) as store:
        assert store.song_ids() == [song(i) for i in range(5)] and len(store) == 5
        assert store.config() == FeatureConfig()
        f = store.get(song(0))
        assert f.log_mel.shape == (128, 1 + 4 * SR // 512) and f.log_mel.dtype == np.float16
        assert f.seconds == pytest.approx(4.0)
        # Stored features are those of the decoded audio.
        ref = clip_features(sf.read(messy / "data" / "audio" / f"{song(0)}.wav", dtype="float32")[0])
        np.testing.assert_array_equal(f.log_mel, ref.log_mel)
        np.testing.assert_allclose(f.mfcc_summary, ref.mfcc_summary, rtol=1e-5, atol=1e-6)
        assert store.get_log_mel(song(1)).shape[0] == 128
        assert store.mfcc_summaries([song(2), song(0)]).shape == (2, 78)
        assert song(6) not in store and store.get(song(6)) is None


def test_extract_is_resumable(messy, monkeypatch):
    work = messy / "work"
    calls = []
    real = extract_mod.extract_one

    def interrupted(path, cfg):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(path)
        return real(path, cfg)

    monkeypatch.setattr(extract_mod, "extract_one", interrupted)
    with pytest.raises(KeyboardInterrupt):
        extract(messy / "data" / "audio", work, ExtractConfig(workers=1), show_progress=False)
    monkeypatch.undo()
    with FeatureStore(work / "features.lmdb", readonly=True) as store:
        assert len(store) == 2  # what was committed before the interruption
    assert not (work / "features_report.json").exists()

    first = extract(messy / "data", work, ExtractConfig(workers=1), show_progress=False)
    assert first["counts"]["already_stored"] == 2 and first["counts"]["extracted"] == 3
    again = extract(messy / "data", work, ExtractConfig(workers=2), show_progress=False)
    assert again["counts"]["extracted"] == 0 and again["counts"]["already_stored"] == 5
    assert again["counts"]["stored_total"] == 5 and again["timing"]["clips_per_second"] == 0


def test_track_ids_map_through_the_catalog(tmp_path):
    audio, work = tmp_path / "audio", tmp_path / "work"
    audio.mkdir()
    write_catalog(work / "catalog.lmdb",
                  songs=[(song(i), {"title": f"t{i}"}) for i in range(3)],
                  tracks=[(track(i), song(i)) for i in range(3)], info={})
    sf.write(audio / f"{track(0)}.wav", clip(0), SR)
    sf.write(audio / f"{song(1)}.wav", clip(1), SR)
    sf.write(audio / f"{track(1)}.wav", clip(1), SR)  # the same song under its track id
    sf.write(audio / "TRUNKNOWN000000000.wav", clip(2), SR)
    sf.write(audio / "my clip.wav", clip(2), SR)
    (audio / "mapping.tsv").write_text(f"# filename\tsong id\nmy clip.wav\t{track(2)}\n")
    report = extract(audio, work, ExtractConfig(workers=1), show_progress=False)
    assert {s["file"]: s["reason"] for s in report["skipped"]} == {
        "TRUNKNOWN000000000.wav": "unknown-id", f"{track(1)}.wav": "duplicate"}
    with FeatureStore(work / "features.lmdb", readonly=True) as store:
        assert store.song_ids() == [song(0), song(1), song(2)]

    # Without a catalog, track ids cannot be mapped and are said to be so.
    report = extract(audio, tmp_path / "bare", ExtractConfig(workers=1), show_progress=False)
    reasons = {s["file"]: s["reason"] for s in report["skipped"]}
    assert reasons == {f"{track(0)}.wav": "unmapped-track-id", f"{track(1)}.wav": "unmapped-track-id",
                       "TRUNKNOWN000000000.wav": "unmapped-track-id",
                       "my clip.wav": "unmapped-track-id"}  # mapped to a track id
    assert report["counts"]["extracted"] == 1
    with FeatureStore(tmp_path / "bare" / "features.lmdb", readonly=True) as store:
        assert song(1) in store


def test_a_played_song_without_a_catalog_row_is_a_song(tmp_path):
    # about one played song in nine has no metadata row in real data: its clip is still extracted
    import numpy as np
    import scipy.sparse as sp

    from pmrs.interactions import INTERACTIONS_DIR, Interactions

    audio, work = tmp_path / "audio", tmp_path / "work"
    audio.mkdir()
    write_catalog(work / "catalog.lmdb", songs=[(song(0), {"title": "t0"})], tracks=[], info={})
    played = np.array(sorted([song(0).encode(), song(1).encode()]))
    (work / INTERACTIONS_DIR).mkdir()
    Interactions(matrix=sp.csr_matrix(np.ones((1, 2), np.int32)), user_ids=np.array([b"u1"]),
                 song_ids=played).save(work / INTERACTIONS_DIR)
    for i in range(3):
        sf.write(audio / f"{song(i)}.wav", clip(i), SR)
    report = extract(audio, work, ExtractConfig(workers=1), show_progress=False)
    assert {s["file"]: s["reason"] for s in report["skipped"]} == {f"{song(2)}.wav": "unknown-id"}
    with FeatureStore(work / "features.lmdb", readonly=True) as store:
        assert store.song_ids() == [song(0), song(1)]


def _crashing_extract_one(path, cfg):
    if "CRASH" in os.path.basename(path):
        os._exit(3)  # a decoder taking its process down
    return extract_mod.__dict__["_real_extract_one"](path, cfg)


def test_a_file_that_kills_its_worker_is_skipped(tmp_path, monkeypatch):
    audio = tmp_path / "audio"
    audio.mkdir()
    for i in range(4):
        sf.write(audio / f"{song(i)}.wav", clip(i), SR)
    sf.write(audio / "SOCRASH.wav", clip(5), SR)
    monkeypatch.setitem(extract_mod.__dict__, "_real_extract_one", extract_mod.extract_one)
    monkeypatch.setattr(extract_mod, "extract_one", _crashing_extract_one)
    report = extract(audio, tmp_path / "work", ExtractConfig(workers=2), show_progress=False)
    assert report["counts"]["extracted"] == 4
    assert [(s["file"], s["reason"]) for s in report["skipped"]] == [("SOCRASH.wav", "crashed")]


def test_store_rejects_other_feature_settings(tmp_path, messy):
    path = tmp_path / "features.lmdb"
    with FeatureStore(path, config=FeatureConfig()) as store:
        store.put("SOA", clip_features(clip(0)))
    with pytest.raises(ValueError, match="n_mels"):
        FeatureStore(path, config=FeatureConfig(n_mels=64))
    with pytest.raises(ValueError, match="hop_length"):
        FeatureStore(path, readonly=True, config=FeatureConfig(hop_length=256))
    # Skip thresholds do not change stored values, so they may differ between runs.
    with FeatureStore(path, config=FeatureConfig(min_seconds=1.0)) as store:
        assert store.config() == FeatureConfig() and "SOA" in store
    work = messy / "work"
    extract(messy / "data", work, ExtractConfig(workers=1), show_progress=False)
    with pytest.raises(ValueError, match="n_fft"):
        extract(messy / "data", work, ExtractConfig(workers=1), FeatureConfig(n_fft=2048),
                show_progress=False)


def test_store_api(tmp_path):
    path = tmp_path / "features.lmdb"
    with pytest.raises(FileNotFoundError):
        FeatureStore(path, readonly=True)
    feats = {sid: clip_features(clip(i, seconds=3.0 + i)) for i, sid in enumerate(["SOC", "SOA", "SOB"])}
    with FeatureStore(path) as store:
        for sid, f in feats.items():
            store.put(sid, f)
        with pytest.raises(ValueError):
            store.put("SOX", ClipFeatures(np.zeros((64, 10), np.float16), np.zeros(78, np.float32), 1.0))
    with FeatureStore(path, readonly=True) as store:
        assert store.song_ids() == ["SOA", "SOB", "SOC"] and len(store) == 3
        assert "SOB" in store and "SOZ" not in store and 3 not in store
        for sid, f in feats.items():
            g = store.get(sid)
            np.testing.assert_array_equal(g.log_mel, f.log_mel)
            np.testing.assert_array_equal(g.mfcc_summary, f.mfcc_summary)
            assert g.seconds == f.seconds
            assert store.get_log_mel(sid).dtype == np.float16
        np.testing.assert_array_equal(store.mfcc_summaries(["SOC", "SOA"]),
                                      np.stack([feats["SOC"].mfcc_summary, feats["SOA"].mfcc_summary]))
        np.testing.assert_allclose(store.seconds(["SOA", "SOC"]), [4.0, 3.0])
        with pytest.raises(KeyError):
            store.get_log_mel("SOZ")
        with pytest.raises(KeyError):
            store.mfcc_summaries(["SOA", "SOZ"])
        with pytest.raises(PermissionError):
            store.put("SOD", feats["SOA"])


def test_records_hold_no_pickles():
    a = np.arange(12, dtype=np.float16).reshape(3, 4)
    raw = pack_record({"x": a, "y": np.ones(2, np.float32)}, seconds=1.5)
    arrays, fields = unpack_record(raw)
    np.testing.assert_array_equal(arrays["x"], a)
    assert arrays["x"].flags.writeable and fields == {"seconds": 1.5}
    with pytest.raises(TypeError):
        pack_record({"o": np.array([object()])})


def test_cli_extract(messy, capsys):
    work = messy / "work"
    assert main(["extract", str(messy / "data"), "--workdir", str(work), "--workers", "1", "-q"]) == 0
    out = capsys.readouterr().out
    assert "5 extracted" in out and "skipped too-short: 2" in out and "clips/s" in out
    report = json.loads((work / "features_report.json").read_text())
    assert report["extract_config"]["workers"] == 1


_HANGING_EXTRACT = """
import sys, time
import pmrs.audio.extract as m
from pmrs.cli import main

def hang(path, cfg):  # a clip that takes forever: the workers are busy when the parent dies
    time.sleep(3600)

m.extract_one = hang
m._warm_up = lambda cfg: None
sys.exit(main(["extract", sys.argv[1], "--workdir", sys.argv[2], "--workers", "2", "-q"]))
"""


def test_kill_9_of_extract_leaves_no_worker_behind(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    psutil = pytest.importorskip("psutil")
    audio = tmp_path / "audio"
    audio.mkdir()
    for i in range(6):
        (audio / f"{song(i)}.wav").write_bytes(b"RIFF not read")
    script = tmp_path / "hanging_extract.py"
    script.write_text(_HANGING_EXTRACT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, str(script), str(audio), str(tmp_path / "work")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    parent = psutil.Process(proc.pid)
    workers: list = []
    try:
        for _ in range(1200):  # up to 60 s on a loaded machine for start-up and the pool
            workers = [p for p in parent.children(recursive=True) if p.is_running()]
            if len(workers) >= 2 or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()
        assert len(workers) >= 2
        time.sleep(1.0)  # let the workers reach the hanging clip
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        _, alive = psutil.wait_procs(workers, timeout=15)
        assert alive == [], f"workers still alive after kill -9 of their parent: {alive}"
    finally:
        for p in workers:  # only the processes this test started
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()


def test_every_folder_is_kept_with_its_report_and_found_from_anywhere(messy, tmp_path, monkeypatch):
    # extract from the data folder's parent with a relative path, then from another folder
    from pmrs.audio.extract import audio_folders
    from pmrs.web.data import WorkdirData

    monkeypatch.chdir(messy)
    work = Path("work")
    first = extract("data", work, ExtractConfig(workers=1), FeatureConfig(), show_progress=False)
    other = tmp_path / "more"
    other.mkdir()
    sf.write(other / "SOMORE00000000001.wav", clip(11), SR, subtype="PCM_16")
    second = extract(other, work, ExtractConfig(workers=1), FeatureConfig(), show_progress=False)
    audio = (messy / "data" / "audio").resolve()
    assert Path(first["audio_dir"]) == audio and Path(second["audio_dir"]) == other.resolve()
    # the first folder's report survives the second run, skipped clips included
    folders = json.loads((work / "features_report.json").read_text())["folders"]
    assert set(folders) == {str(audio), str(other.resolve())}
    assert {s["file"]: s["reason"] for s in folders[str(audio)]["skipped"]} == EXPECTED_SKIPS
    assert folders[str(other.resolve())]["counts"]["extracted"] == 1
    # read from another directory, the recorded folders mean the same
    monkeypatch.chdir(tmp_path.parent)
    assert audio_folders(messy / "work") == [audio, other.resolve()]
    web = WorkdirData(messy / "work")
    try:
        assert web.clip(song(0))[0] == audio / f"{song(0)}.wav"
        assert web.clip("SOMORE00000000001")[0] == other.resolve() / "SOMORE00000000001.wav"
    finally:
        web.close()


def test_a_relative_folder_an_older_report_recorded_is_taken_from_the_workdir_parent(tmp_path):
    from pmrs.audio.extract import audio_folders

    (tmp_path / "data" / "audio").mkdir(parents=True)
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "features_report.json").write_text(json.dumps({"audio_dir": "data/audio"}))
    assert audio_folders(tmp_path / "work") == [(tmp_path / "data" / "audio").resolve()]


def test_a_second_run_over_the_same_folder_keeps_the_folders_record(tmp_path, capsys):
    # a good clip, a truncated FLAC extracted from what decodes, and an unreadable file
    audio = tmp_path / "audio"
    audio.mkdir()
    sf.write(audio / f"{song(0)}.wav", clip(0), SR, subtype="PCM_16")
    sf.write(audio / "full.flac", clip(4, seconds=8.0), SR)
    raw = (audio / "full.flac").read_bytes()
    (audio / "full.flac").unlink()
    (audio / f"{song(4)}.flac").write_bytes(raw[:len(raw) // 2])
    (audio / f"{song(6)}.wav").write_bytes(np.random.default_rng(0).bytes(5000))
    work = tmp_path / "work"
    key = str(audio.resolve())

    def record() -> dict:
        return json.loads((work / "features_report.json").read_text())["folders"][key]

    first = extract(audio, work, ExtractConfig(workers=1), show_progress=False)
    assert first["counts"]["extracted"] == 2 and record()["counts"]["extracted"] == 2

    # the second run extracts nothing new; the folder's record still knows both bad files
    assert main(["extract", str(audio), "--workdir", str(work), "--workers", "1", "-q"]) == 0
    assert "the folder so far: 2 extracted (1 truncated), 1 skipped" in capsys.readouterr().out
    second = json.loads((work / "features_report.json").read_text())
    assert second["counts"]["extracted"] == 0 and second["counts"]["already_stored"] == 2
    rec = record()
    assert rec["counts"]["extracted"] == 2 and rec["counts"]["partial"] == 1
    assert rec["last_run"] == second["counts"]
    assert [(s["file"], s["reason"]) for s in rec["skipped"]] == [(f"{song(6)}.wav", "unreadable")]
    assert rec["skipped"][0]["detail"]
    assert [(p["file"], p["song_id"]) for p in rec["partial"]] == [(f"{song(4)}.flac", song(4))]
    assert rec["partial"][0] == first["partial"][0]   # its seconds and reason as found then

    # the unreadable file fixed: extracted, and off the folder's skipped list
    sf.write(audio / f"{song(6)}.wav", clip(6), SR, subtype="PCM_16")
    third = extract(audio, work, ExtractConfig(workers=1), show_progress=False)
    assert third["counts"]["extracted"] == 1 and third["skipped"] == []
    rec = record()
    assert rec["skipped"] == [] and rec["counts"]["extracted"] == 3 and rec["counts"]["skipped"] == 0
    assert [p["file"] for p in rec["partial"]] == [f"{song(4)}.flac"]
    with FeatureStore(work / "features.lmdb", readonly=True) as store:
        assert song(6) in store
