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


def _openssl(*args: str) -> None:
    import subprocess

    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory):
    """PEM files made by openssl: a private CA (``ca``), a server certificate for localhost /
    127.0.0.1 (``cert``, ``key``) and a client certificate (``client_cert``, ``client_key``), both
    signed by the CA, and a second CA that signed neither (``other_ca``). Without openssl the
    tests that need it fail under CI and are skipped elsewhere."""
    import shutil

    if shutil.which("openssl") is None:
        if os.environ.get("CI"):
            pytest.fail("no openssl command in CI (Debian: apt-get install openssl)", pytrace=False)
        pytest.skip("no openssl command")
    d = tmp_path_factory.mktemp("tls")
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    for ca in ("ca", "other_ca"):
        _openssl("req", "-x509", *ec, "-keyout", str(d / f"{ca}.key"), "-out", str(d / f"{ca}.pem"),
                 "-days", "2", "-subj", f"/CN=PMRS test {ca}")
    ext = d / "server.ext"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name, extra in (("server", ("-extfile", str(ext))), ("client", ())):
        _openssl("req", *ec, "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.csr"),
                 "-subj", f"/CN={'localhost' if name == 'server' else 'pmrs-test-client'}")
        _openssl("x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / "ca.pem"),
                 "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-out", str(d / f"{name}.pem"),
                 "-days", "2", *extra)
    return {"ca": d / "ca.pem", "other_ca": d / "other_ca.pem", "cert": d / "server.pem",
            "key": d / "server.key", "client_cert": d / "client.pem", "client_key": d / "client.key"}
