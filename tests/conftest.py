import os

# torch's OpenMP threads spin while they wait by default, which starves everything else on a
# 2-core machine; the CLI sets the same (pmrs.cli.main).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


import contextlib  # noqa: E402

import pytest  # noqa: E402


@contextlib.contextmanager
def running_fake(servicer):
    """Serve a Recommender servicer on a free local port; sets ``servicer.target``."""
    from concurrent import futures

    import grpc

    from pmrs.v1 import recommender_pb2_grpc as pb_grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_RecommenderServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    servicer.target = f"127.0.0.1:{port}"
    try:
        yield servicer
    finally:
        server.stop(None)


@pytest.fixture(scope="session")
def serving_workdir(tmp_path_factory):
    """A tiny work directory with everything `indexer build` reads: interactions, catalog, a WMF
    run (8 factors) and a CNN run with predictions (16-d embeddings, 4 genres, cold songs).
    Treat it as read-only: copy it (``shutil.copytree``) before building bundles in it."""
    from pmrs.cli import main

    root = tmp_path_factory.mktemp("serving")
    data, work = root / "data", root / "work"
    cfg = root / "c.toml"
    cfg.write_text("[wmf]\nfactors = 8\niterations = 3\n"
                   "[cnn]\nmax_epochs = 2\nwindows_per_song_per_epoch = 2\nchannels = [8, 16, 16, 16]\n"
                   "hidden = 32\nembedding_dim = 16\nthreads = 1\n"
                   "[extract]\nworkers = 1\n")
    assert main(["synth", str(data), "--users", "200", "--songs", "80", "--genres", "4",
                 "--clip-seconds", "4", "--cold-share", "0.2", "--audio-workers", "1", "-q"]) == 0
    for args in (["ingest", str(data)], ["train-wmf", "--run", "w1"], ["extract", str(data)],
                 ["train-cnn", "--run", "c1"], ["predict"]):
        assert main(args + ["--workdir", str(work), "--config", str(cfg), "-q"]) == 0, args
    return work
