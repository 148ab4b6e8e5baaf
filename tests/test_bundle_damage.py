"""Damaged bundles are refused with a message that names the bundle and the damage, never served
(docs/SERVING.md, "Damaged bundles"). Each test damages a copy of the format fixture one way."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pmrs.serving.bundle import Bundle
from pmrs.serving.contract import ContractError

V1 = Path(__file__).parent / "fixtures" / "bundle_v1"


@pytest.fixture
def copy(tmp_path):
    out = tmp_path / V1.name
    shutil.copytree(V1, out)
    return out


def _rewrite(path: Path, change) -> None:
    a = np.load(path, allow_pickle=False)
    np.save(path, change(a.copy()), allow_pickle=False)


def _refused(path, match, **kwargs):
    with pytest.raises(ContractError, match=match):
        Bundle.open(path, **kwargs)


def test_the_undamaged_copy_opens(copy):
    Bundle.open(copy, verify=True).close()


def test_nan_user_factors(copy):
    def poison(a):
        a[3, 1] = np.nan
        return a
    _rewrite(copy / "user_factors.npy", poison)
    _refused(copy, "damaged: user_factors is not a finite")
    _refused(copy, "corrupt file.*user_factors.npy", verify=True)


def test_infinite_song_vectors(copy):
    def poison(a):
        a[0, 0] = np.inf
        return a
    _rewrite(copy / "acoustic_vectors.npy", poison)
    _refused(copy, "damaged: acoustic vectors are not finite")


def test_unsorted_ids(copy):
    _rewrite(copy / "user_ids.npy", lambda a: a[::-1])
    _refused(copy, "damaged: user_ids is not sorted")
    _rewrite(copy / "song_ids.npy", lambda a: np.concatenate([a[:1], a[:-1]]))   # a duplicate
    _refused(copy, "damaged: (user|song)_ids is not sorted")


def test_list_rows_out_of_range(copy):
    def poison(a):
        a[0, 0] = 10_000
        return a
    _rewrite(copy / "recommend_rows.npy", poison)
    _refused(copy, "default recommend lists name song rows out of range")


def test_list_sources_the_bundle_lacks(copy):
    def poison(a):
        a[1, 0] = 16
        return a
    _rewrite(copy / "similar_sources.npy", poison)
    _refused(copy, "default similar lists name sources")


def test_played_rows_out_of_range_or_unordered(copy):
    _rewrite(copy / "played_indices.npy", lambda a: a + 1000)
    _refused(copy, "played song rows out of")


def test_source_rows_out_of_range(copy):
    _rewrite(copy / "collab_rows.npy", lambda a: a * 100)
    _refused(copy, "collaborative rows are out of")


def test_truncated_array(copy):
    path = copy / "user_factors.npy"
    path.write_bytes(path.read_bytes()[:100])
    _refused(copy, "user_factors.npy is not a readable .npy file", in_memory=True)
    _refused(copy, "user_factors.npy is not a readable .npy file", in_memory=False)


def test_missing_file(copy):
    (copy / "played_indptr.npy").unlink()
    _refused(copy, "played_indptr.npy is missing")


def test_scribbled_index(copy):
    path = copy / "acoustic.faiss"
    data = bytearray(path.read_bytes())
    data[-40:] = b"\xff" * 40
    path.write_bytes(bytes(data))
    _refused(copy, "corrupt file.*acoustic.faiss", verify=True)


def test_garbage_index(copy):
    (copy / "collaborative.faiss").write_bytes(b"not an index")
    _refused(copy, "collaborative.faiss is not a readable FAISS index")


def test_manifest_that_is_not_json(copy):
    (copy / "manifest.json").write_bytes(b"\xff\xfe{")
    _refused(copy, "manifest.json is not valid JSON")


def test_pickled_array_is_not_unpickled(copy):
    np.save(copy / "user_ids.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    _refused(copy, "user_ids.npy is not a readable .npy file")


def test_manifest_whose_sources_do_not_start_with_collaborative(copy):
    m = json.loads((copy / "manifest.json").read_text())
    m["indexes"] = {"acoustic": m["indexes"]["acoustic"]}
    (copy / "manifest.json").write_text(json.dumps(m))
    _refused(copy, "first source must be 'collaborative'")


def test_a_mapped_bundle_truncated_under_a_reader_ends_it_and_is_refused_after(serving_workdir, tmp_path):
    # The failure mode chosen for bundles too large to copy (docs/SERVING.md, "Damaged bundles"):
    # a memory-mapped file truncated under a running process ends it with SIGBUS at the next read
    # of a lost page; the restarted process refuses the damaged bundle instead of serving it.
    import signal
    import subprocess
    import sys

    from pmrs.indexing import IndexerConfig, build_bundle

    work = tmp_path / "work"
    shutil.copytree(serving_workdir, work)
    copy = build_bundle(work, IndexerConfig(recall_queries=50), show_progress=False)
    assert (copy / "played_indices.npy").stat().st_size > 2 * 4096   # pages past the new end
    code = ("import sys, numpy as np\n"
            "from pmrs.serving.bundle import Bundle\n"
            "b = Bundle.open(sys.argv[1], in_memory=False)\n"
            "assert not b.in_memory\n"
            "print('open', flush=True)\n"
            "sys.stdin.readline()\n"                       # the file is truncated meanwhile
            "print(float(np.asarray(b.played_indices).sum()), flush=True)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(copy)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "open"
        with open(copy / "played_indices.npy", "r+b") as fh:
            fh.truncate(128)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.wait(timeout=60) == -signal.SIGBUS
    finally:
        if proc.poll() is None:
            proc.kill()
    _refused(copy, "played_indices.npy is not a readable .npy file")
