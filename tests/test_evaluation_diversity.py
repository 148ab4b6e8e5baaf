"""`pmrs evaluate --diversity` on the tiny serving work directory."""

import json
import shutil

from pmrs.cli import main


def test_diversity_sweep_report(serving_workdir, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(serving_workdir, work, symlinks=True)
    cfg = tmp_path / "d.toml"
    cfg.write_text("[wmf]\nfactors = 8\niterations = 3\n"
                   "[cnn]\nmax_epochs = 2\nwindows_per_song_per_epoch = 2\nchannels = [8, 16, 16, 16]\n"
                   "hidden = 32\nembedding_dim = 16\nthreads = 1\n"
                   "[diversity]\nk = 10\nshares = [0.0, 0.5, 1.0]\nmmr_weights = [0.0, 0.8]\nmax_users = 40\n"
                   "[evaluate]\ntest_users = 0.3\n")
    assert main(["evaluate", "--diversity", "--workdir", str(work), "--config", str(cfg),
                 "--run", "div1", "-q"]) == 0
    out = work / "reports" / "div1"
    m = json.loads((out / "metrics.json").read_text())
    by_share = {r["acoustic_share"]: r for r in m["by_acoustic_share"]}
    assert set(by_share) == {0.0, 0.5, 1.0}
    for r in m["by_acoustic_share"] + m["by_mmr"]:
        assert 0.0 <= r["recall"] <= 1.0 and 0.0 <= r["coverage"] <= 1.0
        assert 0.0 <= r["cold_share"] <= 1.0 and r["genres_per_list"] >= 1
    # The collaborative index knows only played songs; the acoustic one also the cold ones.
    assert by_share[0.0]["cold_share"] == 0.0
    assert by_share[1.0]["cold_share"] > 0.0
    mmr = {r["diversity"]: r for r in m["by_mmr"]}
    assert mmr[0.8]["intra_list_distance"] >= mmr[0.0]["intra_list_distance"]
    assert (out / "tradeoff.png").stat().st_size > 0
    assert not any(p.name.startswith(".diversity-") for p in work.iterdir())  # scratch removed
